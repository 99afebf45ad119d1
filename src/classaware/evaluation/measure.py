"""The measurement: stream the data in batches, attack, and keep only each model's predicted labels.

Per batch of images x (read from the :class:`~.datasets.ImageSet`, moved to the source's device):
F1(x) and every F2(x) once; then per adversarial set, x' = attack(x, y, t) (checked by the
adversary), and F1 and every F2 on x' (or on its quantisation, with the unquantised predictions
kept beside). Only labels stay in memory: (3 + 2M) N integers per set, so 50,000 images and
1,000 classes cost megabytes, never logits.

Resumable (:class:`Cache`): each batch's x' and each model's labels on it are written to the cache
folder, keyed by the identity of what made them (model, data, attack, eps, objective, target
classes, batch), atomically; a rerun reads what is there, so an interrupted run continues at
the batch it stopped at, and adding a target computes only that target's predictions (the
attack's x' come from the cache). The cache holds x' in float32: 12 KiB per CIFAR-10 image, 588
KiB per 224 x 224 image (so 50,000 ImageNet images need about 29 GB; ``cache=None`` keeps nothing).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..attacks import random_target_classes
from ..contracts import eval_mode, logits, model_device
from ..files import load_tensors, save_tensors
from ..progress import progress
from .attacks import Adversary
from .datasets import DataSourceError, ImageSet
from .models import LoadedModel, ModelError, num_classes_of
from .samples import AdversarialLabels, Samples, SetKey

log = logging.getLogger(__name__)


def key_of(identity) -> str:
    """A short stable hash of a JSON-able identity."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


class Cache:
    """Per-batch tensors under ``root``, one file per key (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = self.misses = 0

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts).with_suffix(".pt")

    def get(self, *parts: str) -> torch.Tensor | None:
        p = self.path(*parts)
        if not p.is_file():
            self.misses += 1
            return None
        self.hits += 1
        return load_tensors(p, "evaluation cache entry")

    def put(self, value: torch.Tensor, *parts: str) -> None:
        save_tensors(value.detach().cpu(), self.path(*parts))


@dataclass(frozen=True)
class Plan:
    """One adversarial set to make: its key, the adversary, and whether it is targeted."""

    key: SetKey
    adversary: Adversary


def quantized(x: torch.Tensor, mode: str) -> torch.Tensor:
    """What an 8-bit image file would hold: round(255 x)/255 (``round``), floor(255 x)/255
    (``floor``: ``(x * 255).astype(uint8)``), x itself (``none``)."""
    if mode == "none":
        return x
    scaled = x * 255
    return (scaled.round() if mode == "round" else scaled.floor()).clamp(0, 255) / 255


@torch.no_grad()
def _labels_of(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    device = model_device(model, x.device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = logits(model, x.to(device))
    return out.argmax(1).cpu(), out


def check_models(source: LoadedModel, targets: Sequence[LoadedModel], data: ImageSet) -> int:
    """The number of classes every model gives on the data's first image, checked to agree and to
    cover the data's labels (and target classes); ModelError / DataSourceError naming the problem.
    Runs before any attack."""
    if len(data) == 0:
        raise DataSourceError("the data holds no image")
    probe = data.images(torch.arange(1))
    counts = {m.name: num_classes_of(m, probe.to(model_device(m.module))) for m in (source, *targets)}
    if len(set(counts.values())) > 1:
        raise ModelError(
            "the models give different numbers of classes: " + ", ".join(f"{k}: {v}" for k, v in counts.items())
        )
    c = counts[source.name]
    for what, labels in (("true label", data.y), ("target class", data.targets)):
        if labels is not None and len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= c):
            raise DataSourceError(
                f"the data's {what}s lie in {int(labels.min())}..{int(labels.max())}, outside the models' 0..{c - 1}"
            )
    return c


def target_classes(
    mode: str, data: ImageSet, num_classes: int, seed: int, least_likely: torch.Tensor | None
) -> torch.Tensor | None:
    """Targets for the targeted objective: ``random`` (seeded, never the true class:
    :func:`classaware.attacks.random_target_classes`, as the paper), ``file`` (the data's own),
    ``least_likely`` (F1's least likely class on x other than y), ``none``."""
    if mode == "none":
        return None
    if mode == "random":
        return random_target_classes(data.y, num_classes, torch.Generator().manual_seed(seed))
    if mode == "file":
        if data.targets is None:
            raise DataSourceError(
                f"{data.name} gives no target classes (targets_mode file needs a targeted_label / TargetClass column or 't')"
            )
        same = int((data.targets == data.y).sum())
        if same:
            raise DataSourceError(f"{data.name}: {same} target class(es) equal the true label")
        return data.targets
    if mode == "least_likely":
        return least_likely
    raise ValueError(f"targets mode must be one of none, random, file, least_likely, got {mode!r}")


def measure(
    source: LoadedModel,
    targets: Sequence[LoadedModel],
    data: ImageSet,
    plans: Sequence[Plan],
    *,
    targets_mode: str = "random",
    seed: int = 0,
    batch_size: int = 100,
    bf16: bool = False,
    cache: Cache | None = None,
    num_classes: int | None = None,
) -> Samples:
    """Every model's labels on the clean images and on every planned adversarial set (see the
    module docstring). ``targets_mode`` picks t for the targeted plans. Errors in the inputs
    are raised before any attack runs."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    c = num_classes or check_models(source, targets, data)
    n, device = len(data), model_device(source.module)
    data_key = key_of(data.identity)
    model_keys = {m.name: key_of([m.name, m.identity]) for m in (source, *targets)}
    starts = list(range(0, n, batch_size))

    def batch_index(start: int) -> torch.Tensor:
        return torch.arange(start, min(start + batch_size, n))

    def predict(model: LoadedModel, get_x, *where: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model's labels on ``get_x()`` (called only when the cache lacks them) and its logits
        (None when the labels came from the cache)."""
        parts = (model_keys[model.name], data_key, *where)
        found = cache.get(*parts) if cache else None
        if found is not None:
            return found, None
        labels, out = _labels_of(model.module, get_x(), bf16)
        if cache:
            cache.put(labels, *parts)
        return labels, out

    # clean pass: F1(x) (and its least likely class), every F2(x)
    y = data.y
    source_clean = torch.empty(n, dtype=torch.int64)
    target_clean = torch.empty(len(targets), n, dtype=torch.int64)
    least = torch.empty(n, dtype=torch.int64)
    need_least = targets_mode == "least_likely" and any(p.key.objective == "targeted" for p in plans)
    with eval_mode(source.module, *(t.module for t in targets)):
        for start in progress(starts, "clean predictions", unit="batch"):
            idx, name, x = batch_index(start), f"{start:08d}", []

            def images(idx=idx, x=x):
                if not x:
                    x.append(data.images(idx).to(device))
                return x[0]

            source_clean[idx], out = predict(source, images, "clean", name)
            if need_least:
                scores = (out if out is not None else _labels_of(source.module, images(), bf16)[1]).float().clone()
                scores[torch.arange(len(idx)), y[idx].to(scores.device)] = float("inf")
                least[idx] = scores.argmin(1).cpu()
            for j, target in enumerate(targets):
                target_clean[j, idx] = predict(target, images, "clean", name)[0]
    t_targeted = target_classes(targets_mode, data, c, seed, least if need_least else None)
    if any(p.key.objective == "targeted" for p in plans) and t_targeted is None:
        raise ValueError("a targeted objective needs target classes: targets_mode random, file or least_likely")

    sets = []
    with eval_mode(source.module, *(t.module for t in targets)):
        for plan in plans:
            sets.append(
                _attack_set(
                    plan, source, targets, data, data_key, t_targeted, starts, batch_index, predict, cache, device
                )
            )
    return Samples(
        data.name,
        source.name,
        tuple(t.name for t in targets),
        c,
        source.class_names,
        y,
        source_clean,
        target_clean,
        tuple(sets),
    )


def _attack_set(
    plan, source, targets, data, data_key, t_targeted, starts, batch_index, predict, cache, device
) -> AdversarialLabels:
    key = plan.key
    targeted = key.objective == "targeted"
    t = t_targeted if targeted else None
    set_key = key_of(
        [
            plan.adversary.identity,
            key.attack,
            key.eps,
            key.objective,
            None if t is None else t.tolist(),
            data_key,
            source.name,
        ]
    )
    n = len(data)
    quantize = key.quantize
    src_adv, tgt_adv = torch.empty(n, dtype=torch.int64), torch.empty(len(targets), n, dtype=torch.int64)
    src_raw = torch.empty(n, dtype=torch.int64) if quantize != "none" else None
    tgt_raw = torch.empty(len(targets), n, dtype=torch.int64) if quantize != "none" else None
    for start in progress(starts, f"attack {key.label()}", unit="batch"):
        idx, name, memo = batch_index(start), f"{start:08d}", []

        def adversarial(idx=idx, name=name, memo=memo) -> torch.Tensor:
            """x' of this batch: from the cache, else made by the attack (and cached)."""
            if not memo:
                found = cache.get("adv", set_key, name) if cache else None
                if found is None:
                    x = data.images(idx).to(device)
                    tb = None if t is None else t[idx].to(device)
                    found = plan.adversary.generate(x, data.y[idx].to(device), tb, idx)
                    if cache:
                        cache.put(found, "adv", set_key, name)
                memo.append(found.to(device))
            return memo[0]

        for model, row in ((source, None), *((m, j) for j, m in enumerate(targets))):
            labels = predict(
                model,
                lambda adversarial=adversarial: quantized(adversarial(), quantize),
                "adv",
                set_key,
                quantize,
                name,
            )[0]
            if row is None:
                src_adv[idx] = labels
            else:
                tgt_adv[row, idx] = labels
            if quantize != "none":
                raw = predict(model, adversarial, "adv", set_key, "none", name)[0]
                if row is None:
                    src_raw[idx] = raw
                else:
                    tgt_raw[row, idx] = raw
    return AdversarialLabels(key, t, src_adv, tgt_adv, src_raw, tgt_raw)
