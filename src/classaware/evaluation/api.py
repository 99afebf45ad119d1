"""``classaware.evaluate``: the class-aware view of any transfer attack in one call."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from ..boundary import model_distance
from ..models import pick_device
from ..search import DEFAULT_SEARCH, SearchSettings
from .attacks import Adversary, AttackError, AttackSpec, bind, callable_adversary
from .datasets import TARGET_MODES, ImageSet, _memory_set, load_data, select
from .manifest import manifest
from .measure import Cache, Plan, check_models, measure
from .models import LoadedModel, ModelError, as_model, ensemble
from .result import Evaluation
from .samples import OBJECTIVES, QUANTIZE, SetKey
from .saved import load_saved

log = logging.getLogger(__name__)
ModelLike = str | nn.Module | LoadedModel


def _data(data, image_size: int | None) -> ImageSet:
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, (str, Path)):
        return load_data(data, image_size)
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and all(isinstance(d, torch.Tensor) for d in data):
        x, y, *t = data
        return _memory_set(
            "images given in memory",
            x.detach().cpu(),
            y.detach().cpu().long(),
            t[0].detach().cpu().long() if t else None,
            None,
            {"source": "memory"},
        )
    raise ValueError("data must be a spec string or path, an ImageSet, or a tuple (x, y) or (x, y, t) of tensors")


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def evaluate(
    source: ModelLike | Sequence[ModelLike],
    targets: Sequence[ModelLike],
    attack: str | Callable | Sequence[str] | None = None,
    data: str | Path | ImageSet | tuple = "",
    *,
    eps: float | Sequence[float] | None = None,
    objective: str | Sequence[str] = "untargeted",
    targets_mode: str = "random",
    quantize: str | Sequence[str] = "none",
    saved: str | None = None,
    norm: str | None = None,
    n: int = 0,
    seed: int = 0,
    batch_size: int = 100,
    device: str = "auto",
    bf16: bool = False,
    ensemble_combine: str = "logits",
    image_size: int | None = None,
    cache: str | Path | None = None,
    dist: int = 0,
    dist_search: SearchSettings = DEFAULT_SEARCH,
) -> Evaluation:
    """Evaluate a transfer attack class-aware: from ``source`` F1 to every model of ``targets`` F2.

    Every input is checked (models load, class counts agree, labels fit, the attack is bound)
    before any attack runs; ValueError (or FileNotFoundError) naming the problem otherwise.

    Arguments:
        source (str | nn.Module | list): F1, a model spec (:mod:`classaware.evaluation.models`:
            ``tv:``, ``timm:``, ``zoo:``, ``state:``, ``script:``, ``py:``) or a module taking
            images in [0, 1]; a list is an ensemble whose prediction is the argmax of the mean of
            its members' logits (``ensemble_combine="logits"``) or probabilities (``"probs"``).
        targets (list): the F2s, as specs or modules; names must differ.
        attack (str | callable | list | None): a spec (:mod:`classaware.evaluation.attacks`), a
            list of specs, or a callable ``f(x, y, t=None) -> x'``; None with ``saved``.
        data (str | ImageSet | tuple): a data spec (:mod:`classaware.evaluation.datasets`), or
            ``(x, y)`` / ``(x, y, t)`` tensors: x float (N, C, H, W) in [0, 1] or uint8, y (N,).
        eps (float | list | None): the attack's eps, or a sweep of them (pixel units of [0, 1]
            images; l2 or linf as the attack's norm). None: as the attack spec gives it. Default: None.
        objective (str | list): ``"untargeted"``, ``"targeted"`` or both. Default: "untargeted".
        targets_mode (str): target classes of the targeted objective: ``random`` (seeded by
            ``seed``, never the true class), ``file`` (the data's), ``least_likely`` (F1's
            least likely class on x other than y). Default: "random".
        quantize (str | list): evaluate x' as is (``none``) or as an 8-bit file holds it
            (``round``, ``floor``), and count the x' whose class changes. Default: "none".
        saved (str | None): adversarial examples on disk instead of an attack
            (:mod:`classaware.evaluation.saved`: ``transferattack:DIR``, ``tabench:DIR``,
            ``torchattacks:FILE.pt``). Default: None.
        norm (str | None): ``l2`` or ``linf`` for a callable or saved set's eps-ball check. Default: None.
        n (int): a class-balanced subset of this many images (0: all). Default: 0.
        seed (int): seed of the subset and the random target classes. Default: 0.
        batch_size (int): images per batch. Default: 100.
        device (str): ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. Default: "auto".
        bf16 (bool): predictions under bf16 autocast (the attack runs as the attack does). Default: False.
        image_size (int | None): resize images of a folder to this square size on reading. Default: None.
        cache (str | Path | None): folder of the per-batch cache (resumable runs). Default: None.
        dist (int): measure Dist(F1, F2) (eq. 4) on the first ``dist`` images (0: no). Default: 0.
        dist_search (SearchSettings): the boundary search of Dist. Default: the library's.

    Shape:
        - images: (N, C, H, W), float in [0, 1] (uint8 is divided by 255); labels: (N,) int64.
        - per-image labels in the result: y, F1(x), F1(x') (N,); F2(x), F2(x') (M, N).

    Returns:
        Evaluation: ``.table()``, ``.per_class()``, ``.pairs()``, ``.compare(other)``, ``.save(dir)``.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> import classaware
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> f1, f2 = (nn.Sequential(nn.Flatten(), nn.Linear(48, 3)) for _ in range(2))
        >>> x, y = torch.rand(30, 3, 4, 4), torch.randint(0, 3, (30,))
        >>> ev = classaware.evaluate(f1, [f2], "pgd(eps=0.5, alpha=0.1, steps=5)", (x, y), device="cpu")
        >>> sorted({r.metric for r in ev.table()} & {"unfooled", "different", "same"})
        ['different', 'same', 'unfooled']
    """
    objectives = _as_list(objective)
    quantizes = _as_list(quantize)
    eps_values = [None] if eps is None else [float(e) for e in _as_list(eps)]
    for name, values, allowed in (
        ("objective", objectives, OBJECTIVES),
        ("quantize", quantizes, QUANTIZE),
        ("targets_mode", [targets_mode], TARGET_MODES),
    ):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{name} must be among {', '.join(allowed)}, got {bad}")
    if (attack is None) == (saved is None):
        raise ValueError("give exactly one of attack (to run) and saved (adversarial examples on disk)")
    if data == "" and saved is None:
        raise ValueError("data is required: a data spec or path, an ImageSet, or (x, y) tensors")
    specs = (
        []
        if attack is None or callable(attack)
        else [AttackSpec.parse(a) if isinstance(a, str) else a for a in _as_list(attack)]
    )
    dev = pick_device(device)
    data_set = select(_data(data, image_size), n, seed) if data != "" or saved is None else None
    sources = [as_model(s, dev) for s in _as_list(source)]
    f1 = sources[0] if len(sources) == 1 else ensemble(sources, ensemble_combine)
    f2 = [as_model(t, dev) for t in _as_list(targets)]
    names = [m.name for m in f2]
    if not f2 or len(set(names)) != len(names):
        raise ModelError(f"targets must be one or more models with different names, got {names}")
    plans: list[Plan] = []
    if saved is not None:
        if n:
            raise ValueError("saved adversarial examples are evaluated whole: leave n at 0")
        saved_set = load_saved(saved, data_set, eps=None if eps is None else eps_values[0], norm=norm)
        data_set = saved_set.clean if data_set is None or saved.startswith("transferattack") else data_set
        adversaries = [(saved_set.adversary, None)]
        if len(objectives) != 1:
            raise ValueError("saved adversarial examples have one objective: give objective untargeted or targeted")
    num_classes = check_models(f1, f2, data_set)
    for spec in specs:
        for e in eps_values:
            for obj in objectives:
                adversary = bind(spec, f1.module, obj == "targeted", e, norm)
                plans += [
                    Plan(SetKey(spec.with_eps(e).text(), e if e is not None else spec.eps, obj, q), adversary)
                    for q in quantizes
                ]
    if callable(attack):
        name = getattr(attack, "__qualname__", type(attack).__name__)
        for obj in objectives:
            adversary = callable_adversary(attack, name, obj == "targeted", eps_values[0], norm)
            plans += [Plan(SetKey(name, eps_values[0], obj, q), adversary) for q in quantizes]
    if saved is not None:
        adversary: Adversary = adversaries[0][0]
        plans += [Plan(SetKey(adversary.name, adversary.eps, objectives[0], q), adversary) for q in quantizes]
    if not plans:
        raise AttackError("no attack to evaluate")
    samples = measure(f1, f2, data_set, plans, targets_mode=targets_mode, seed=seed, batch_size=batch_size, bf16=bf16,
                      cache=None if cache is None else Cache(cache), num_classes=num_classes)  # fmt: skip
    dists = {}
    if dist > 0:
        idx = torch.arange(min(dist, len(data_set)))
        x, y = data_set.images(idx).to(dev), data_set.y[idx].to(dev)
        for m in f2:
            try:
                dists[m.name] = model_distance(f1.module, m.module, x, y, dist_search, batch_size)
            except ValueError as exc:
                log.warning("Dist(F1, %s) not measured: %s", m.name, exc)
    attacks = [
        {"set": p.key.label(), "identity": p.adversary.identity, "eps": p.adversary.eps, "norm": p.adversary.norm}
        for p in plans
    ]
    settings = {"objective": objectives, "targets_mode": targets_mode, "quantize": quantizes, "n": n, "seed": seed,
                "batch_size": batch_size, "bf16": bf16, "ensemble_combine": ensemble_combine, "image_size": image_size,
                "dist_images": dist, "dist_search": vars(dist_search) if dist else None}  # fmt: skip
    return Evaluation(samples, dists, manifest(f1, f2, data_set, num_classes, attacks, settings, dev))
