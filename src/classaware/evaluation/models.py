"""Models from anywhere, each wrapped to the library's contract: images in [0, 1], (N, C) logits.

A model is named by a spec string (the command line's ``--source`` and ``--targets``) or given as
an ``nn.Module`` (the Python API). Specs:

=================================  ==================================================================
``tv:NAME[:WEIGHTS]``              torchvision ``NAME`` with weights ``WEIGHTS`` (default ``DEFAULT``;
                                   ``random``: no weights, the default weights' preprocessing); the
                                   weights' own preprocessing (resize, centre crop, interpolation,
                                   mean/std) is wrapped inside, and their category names kept
``timm:NAME[:random]``             timm ``NAME`` (pretrained unless ``random``), preprocessing from its
                                   ``pretrained_cfg`` (input size, crop_pct, interpolation, mean/std)
``zoo:PATH[@EPOCH]``               a ``classaware train`` folder (its last epoch, or ``epoch_EEE.pt``
                                   at EPOCH) or one checkpoint file; ``weights_only=True``
``state:MODULE:FACTORY@PATH``      ``MODULE.FACTORY()`` builds the architecture (taking [0, 1] images),
                                   then the state dict at PATH is loaded strictly, ``weights_only=True``
``script:PATH``                    a TorchScript file (``torch.jit.load``): a TorchScript file *is*
                                   code (its graph runs when called); load only files you trust
``py:MODULE:OBJECT``               an ``nn.Module`` (or a function returning one) you name in Python
=================================  ==================================================================

Nothing from a file runs as code unless the spec names the code (``state:`` and ``py:`` name a
module you installed; ``script:`` is code by definition, and says so). Several sources form an
ensemble (:class:`Ensemble`): its prediction, the source's y1, is the argmax of the mean of the
members' logits (``combine="logits"``) or of their softmax probabilities (``"probs"``).
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError, load_model, ref_path
from ..contracts import eval_mode, logits

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


class ModelError(ValueError):
    """A model spec that names nothing loadable, or weights that do not fit their architecture."""


@dataclass(frozen=True)
class Preprocessing:
    """What a model does to an image in [0, 1] before its network: resize the shorter side to
    ``resize`` pixels (None: no resize), centre-crop ``crop`` x ``crop`` (None: no crop), with
    ``interpolation`` (antialiased when shrinking), then (x - mean) / std per channel."""

    resize: int | None
    crop: int | None
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of_torchvision(cls, weights) -> Preprocessing:
        """From a torchvision weights enum's ``transforms()`` (``ImageClassification``)."""
        t = weights.transforms()
        return cls(
            resize=int(t.resize_size[0]),
            crop=int(t.crop_size[0]),
            interpolation=t.interpolation.value,
            mean=tuple(float(m) for m in t.mean),
            std=tuple(float(s) for s in t.std),
        )

    @classmethod
    def of_timm(cls, config: dict) -> Preprocessing:
        """From timm's resolved data config (``timm.data.resolve_model_data_config``): the image is
        resized to floor(size / crop_pct), then centre-cropped to the input size, as timm's eval
        transform does."""
        size = int(config["input_size"][-1])
        crop_pct = float(config.get("crop_pct") or 1.0)
        return cls(
            resize=math.floor(size / crop_pct),
            crop=size,
            interpolation=str(config.get("interpolation") or "bilinear"),
            mean=tuple(float(m) for m in config["mean"]),
            std=tuple(float(s) for s in config["std"]),
        )


class Preprocessed(nn.Module):
    """net(normalise(crop(resize(x)))): a network that expects preprocessed input, as a classifier
    of images in [0, 1]. Differentiable, so attacks see the whole pipeline."""

    def __init__(self, net: nn.Module, preprocessing: Preprocessing):
        super().__init__()
        if preprocessing.interpolation not in INTERPOLATIONS:
            raise ModelError(f"interpolation must be one of {INTERPOLATIONS}, got {preprocessing.interpolation!r}")
        self.net = net
        self.preprocessing = preprocessing
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(preprocessing.std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.preprocessing
        if p.resize is not None and min(x.shape[-2:]) != p.resize:
            h, w = x.shape[-2:]
            size = (
                (p.resize, int(w * p.resize / h)) if h <= w else (int(h * p.resize / w), p.resize)
            )  # torchvision's rounding
            mode = p.interpolation
            x = F.interpolate(x, size=size, mode=mode, antialias=mode != "nearest", align_corners=None)
        if p.crop is not None:
            h, w = x.shape[-2:]
            if h < p.crop or w < p.crop:  # torchvision pads; a bilinear upscale keeps the model's input size
                x = F.interpolate(x, size=(max(h, p.crop), max(w, p.crop)), mode="bilinear")
                h, w = x.shape[-2:]
            top, left = int(round((h - p.crop) / 2.0)), int(round((w - p.crop) / 2.0))  # as torchvision's center_crop
            x = x[..., top : top + p.crop, left : left + p.crop]
        return self.net((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))


class Ensemble(nn.Module):
    """Several classifiers of [0, 1] images as one: returns log of the mean softmax
    (``combine="probs"``) or the mean of the logits (``"logits"``), so its argmax is the ensemble's
    prediction and it can be attacked as one model."""

    def __init__(self, members: Sequence[nn.Module], combine: str = "logits"):
        super().__init__()
        if combine not in ("logits", "probs"):
            raise ModelError(f"an ensemble combines 'logits' or 'probs', got {combine!r}")
        if len(members) < 2:
            raise ModelError("an ensemble needs at least two models")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([logits(m, x).float() for m in self.members])
        if self.combine == "logits":
            return outs.mean(0)
        return outs.softmax(-1).mean(0).clamp_min(1e-30).log()


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for the evaluation: ``module`` takes [0, 1] images and returns logits.

    ``identity`` says which weights these are (a weights enum, timm's pretrained tag, a file's
    sha256), for the manifest and the prediction cache; ``class_names`` are the weights' category
    names when known."""

    name: str
    module: nn.Module = field(repr=False, compare=False)
    kind: str
    identity: dict
    preprocessing: Preprocessing | None = None
    class_names: tuple[str, ...] | None = None


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _import_object(module: str, name: str, what: str):
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"{what}: cannot import module {module!r}: {exc}") from exc
    obj = mod
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"{what}: module {module!r} has no {name!r}")
        obj = getattr(obj, part)
    return obj


def torchvision_model(name: str, weights: str | None = "DEFAULT", num_classes: int | None = None) -> LoadedModel:
    """torchvision's ``name`` with ``weights`` (an enum member name such as ``IMAGENET1K_V2``,
    ``DEFAULT``, or None for random weights), wrapped with the weights' preprocessing (with None:
    the DEFAULT weights' preprocessing and categories, which describe the architecture's inputs).
    ModelError for a name torchvision does not have, or weights it does not know."""
    from torchvision import models as tvm

    if name not in tvm.list_models():
        raise ModelError(f"unknown torchvision model {name!r} (see torchvision.models.list_models())")
    enum = tvm.get_model_weights(name)
    if weights is None:
        meta_weights, loaded = enum.DEFAULT, None
    else:
        try:
            meta_weights = loaded = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
        except KeyError:
            known = ", ".join(w.name for w in enum)
            raise ModelError(
                f"torchvision model {name!r} has no weights {weights!r}; known: DEFAULT, {known}"
            ) from None
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    net = tvm.get_model(name, weights=loaded, **kwargs)
    preprocessing = Preprocessing.of_torchvision(meta_weights)
    categories = meta_weights.meta.get("categories")
    if num_classes is not None and categories is not None and len(categories) != num_classes:
        categories = None
    identity = {"torchvision": name, "weights": None if loaded is None else str(loaded)}
    return LoadedModel(
        f"tv:{name}" + ("" if weights == "DEFAULT" else f":{weights or 'random'}"),
        Preprocessed(net, preprocessing).eval(),
        "torchvision",
        identity,
        preprocessing,
        tuple(categories) if categories else None,
    )


def timm_model(name: str, pretrained: bool = True, num_classes: int | None = None) -> LoadedModel:
    """timm's ``name`` (pretrained weights through timm's own download unless ``pretrained`` is
    False), wrapped with the preprocessing its ``pretrained_cfg`` resolves to, and ImageNet's
    category names when its classes are ImageNet's. ModelError for a name timm does not have."""
    try:
        import timm
    except ImportError as exc:
        raise ModelError("timm: models need the timm package (pip install timm)") from exc
    if not timm.is_model(name):
        raise ModelError(f"unknown timm model {name!r} (see timm.list_models())")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    net = timm.create_model(name, pretrained=pretrained, **kwargs)
    config = timm.data.resolve_model_data_config(net)
    preprocessing = Preprocessing.of_timm(config)
    names = None
    subset = timm.data.infer_imagenet_subset(net)
    if subset is not None and net.num_classes in (1000, 11821, 21841, 21843, 12000):
        names = tuple(timm.data.ImageNetInfo(subset).label_descriptions())
        names = names if len(names) == net.num_classes else None
    tag = getattr(net, "pretrained_cfg", {}).get("tag") if pretrained else None
    identity = {"timm": name, "pretrained": pretrained, "tag": tag}
    suffix = "" if pretrained else ":random"
    return LoadedModel(
        f"timm:{name}{suffix}", Preprocessed(net, preprocessing).eval(), "timm", identity, preprocessing, names
    )


def zoo_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """A ``classaware train`` checkpoint: a file, a member folder (its last epoch) or
    ``FOLDER@EPOCH``; loaded with ``weights_only=True`` and checked against its architecture."""
    text = str(path)
    folder, _, epoch = text.rpartition("@") if "@" in text else (text, "", "")
    p = Path(folder)
    try:
        file = p if p.is_file() else ref_path(p.parent, p.name + (f"@{epoch}" if epoch else ""))
        model, meta = load_model(file, device=device)
    except CheckpointError as exc:
        raise ModelError(f"zoo:{text}: {exc}") from exc
    from ..data import CLASSES

    names = CLASSES if meta.get("num_classes", 10) == 10 else None
    identity = {"file": str(file), "sha256": file_sha256(file), "arch": meta["arch"], "epoch": meta.get("epoch")}
    return LoadedModel(f"zoo:{text}", model, "zoo", identity, None, names)


def state_dict_model(factory: str, path: str | Path) -> LoadedModel:
    """``MODULE:FACTORY`` builds the architecture (a classifier of [0, 1] images), then the state
    dict in ``path`` (a plain state dict, or a dict holding one under ``state_dict``/``model``) is
    loaded strictly with ``weights_only=True``. ModelError naming the keys when they do not fit."""
    module, _, name = factory.partition(":")
    if not module or not name:
        raise ModelError(f"state: expected MODULE:FACTORY@PATH, got factory {factory!r}")
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"state:{factory}@{path}: no such file")
    build = _import_object(module, name, f"state:{factory}")
    net = build() if callable(build) and not isinstance(build, nn.Module) else build
    if not isinstance(net, nn.Module):
        raise ModelError(f"state:{factory}: {factory}() returned {type(net).__name__}, not an nn.Module")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error to the user
        raise ModelError(f"state:{factory}@{path}: not a weights-only state dict: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"state:{factory}@{path}: the weights do not fit {factory}(): {exc}") from exc
    identity = {"factory": factory, "file": str(path), "sha256": file_sha256(path)}
    return LoadedModel(f"state:{factory}@{path}", net.eval(), "state_dict", identity)


def torchscript_model(path: str | Path) -> LoadedModel:
    """A TorchScript file, loaded with ``torch.jit.load`` on the CPU. Its graph is code that runs
    when the model is called: load only files you trust."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"script:{path}: no such file")
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"script:{path}: not a TorchScript file: {exc}") from exc
    return LoadedModel(f"script:{path}", net.eval(), "torchscript", {"file": str(path), "sha256": file_sha256(path)})


def python_model(target: str) -> LoadedModel:
    """``MODULE:OBJECT``: an ``nn.Module`` or a function of no arguments returning one."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ModelError(f"py: expected MODULE:OBJECT, got {target!r}")
    obj = _import_object(module, name, f"py:{target}")
    net = obj if isinstance(obj, nn.Module) else obj() if callable(obj) else obj
    if not isinstance(net, nn.Module):
        raise ModelError(f"py:{target} is a {type(net).__name__}, not an nn.Module (or a function returning one)")
    return LoadedModel(f"py:{target}", net.eval(), "python", {"object": target})


def wrap(module: nn.Module, name: str | None = None) -> LoadedModel:
    """A model given as an ``nn.Module`` (the Python API), named ``name`` (default: its class and id)."""
    if not isinstance(module, nn.Module):
        raise ModelError(f"a model must be an nn.Module or a spec string, got {type(module).__name__}")
    name = name or f"{type(module).__name__}#{id(module):x}"
    return LoadedModel(name, module, "module", {"module": type(module).__qualname__})


def load_spec(spec: str, device: str | torch.device = "cpu") -> LoadedModel:
    """The model a spec names (see the module docstring); ModelError naming the problem."""
    if not isinstance(spec, str):
        raise ModelError(f"a model spec is a string, got {type(spec).__name__}")
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ModelError(f"model spec {spec!r}: expected KIND:..., KIND one of tv, timm, zoo, state, script, py")
    if kind == "tv":
        name, _, weights = rest.partition(":")
        loaded = torchvision_model(name, None if weights == "random" else (weights or "DEFAULT"))
    elif kind == "timm":
        name, _, flag = rest.partition(":")
        if flag not in ("", "random"):
            raise ModelError(f"model spec {spec!r}: timm:NAME or timm:NAME:random")
        loaded = timm_model(name, pretrained=flag != "random")
    elif kind == "zoo":
        loaded = zoo_model(rest, device)
    elif kind == "state":
        factory, at, path = rest.rpartition("@")
        if not at:
            raise ModelError(f"model spec {spec!r}: expected state:MODULE:FACTORY@PATH")
        loaded = state_dict_model(factory, path)
    elif kind == "script":
        loaded = torchscript_model(rest)
    elif kind == "py":
        loaded = python_model(rest)
    else:
        raise ModelError(f"model spec {spec!r}: unknown kind {kind!r}; known: tv, timm, zoo, state, script, py")
    return LoadedModel(
        spec, loaded.module.to(device), loaded.kind, loaded.identity, loaded.preprocessing, loaded.class_names
    )


def as_model(model, device: str | torch.device = "cpu", name: str | None = None) -> LoadedModel:
    """A spec string, an ``nn.Module`` or a :class:`LoadedModel`, as a :class:`LoadedModel` on ``device``."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str):
        return load_spec(model, device)
    loaded = wrap(model, name)
    return LoadedModel(loaded.name, loaded.module.to(device), loaded.kind, loaded.identity)


def ensemble(members: Sequence[LoadedModel], combine: str = "logits") -> LoadedModel:
    """One source made of several models (see :class:`Ensemble`)."""
    module = Ensemble([m.module for m in members], combine)
    names = {m.class_names for m in members}
    return LoadedModel(
        "ensemble(" + ", ".join(m.name for m in members) + f"; mean of {combine})",
        module,
        "ensemble",
        {"combine": combine, "members": [m.identity for m in members]},
        None,
        names.pop() if len(names) == 1 else None,
    )


@torch.no_grad()
def num_classes_of(model: LoadedModel, x: torch.Tensor) -> int:
    """The number of logits ``model`` gives on images ``x`` (one forward pass of one image)."""
    with eval_mode(model.module):
        try:
            return logits(model.module, x[:1]).shape[1]
        except ValueError as exc:
            raise ModelError(f"model {model.name}: {exc}") from exc
        except RuntimeError as exc:
            raise ModelError(f"model {model.name} fails on images of shape {tuple(x.shape[1:])}: {exc}") from exc
