"""Stage ``attack``: adversarial examples of one source model for one attack and objective,
at every eps of the sweep, on (a class-balanced subset of) the test set (section 3.2)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from ..attacks import fgm, pgd, random_target_classes
from ..batching import map_batches
from ..checkpoint import load_refs
from ..config import Options, device_field, help_field, seed_shift_field, shifted
from ..data import balanced_subset, load_canonical, to_float
from ..environment import Environment
from ..models import pick_device
from ..results import AdversarialSet, ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    source: str = help_field(help="zoo reference of the source model F1 (member or member@epoch)")
    method: Literal["fgm", "pgd"] = help_field(help="FGM (one step of size eps) or PGD")
    objective: Literal["untargeted", "targeted"] = help_field(help="eq. (2) or eq. (3) with random target classes")
    out: Path = help_field(help="file for the adversarial examples", output="file")
    eps: tuple[float, ...] = help_field((1.0,), "perturbation budgets ||x' - x|| <= eps", gt=0, nonempty=True)
    steps: int = help_field(10, "PGD steps", ge=1)
    alpha_ratio: float = help_field(0.2, "PGD step size as a fraction of eps (paper: alpha = eps/5)", gt=0)
    norm: Literal["l2", "linf"] = help_field("l2", "threat model")
    test_size: int = help_field(0, "attack a class-balanced subset of this many test images (0: all)", ge=0)
    target_class_seed: int = help_field(0, "seed of the random target classes of targeted attacks", ge=0)
    batch_size: int = help_field(500, "images per attack batch", ge=1)
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    models_dir: Path = help_field(Path("models"), "folder of the zoo's checkpoints")
    device: str = device_field()
    seed_shift: int = seed_shift_field()


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    ((model, meta),) = load_refs(cfg.models_dir, [cfg.source], device).values()
    idx = balanced_subset(data.test_y, cfg.test_size, cfg.seed_shift)
    x, y = to_float(data.test_x[idx]), data.test_y[idx]
    generator = torch.Generator().manual_seed(shifted(cfg.target_class_seed, cfg.seed_shift))
    target_classes = random_target_classes(y, 10, generator) if cfg.objective == "targeted" else None

    def run_batch(attack, xb, yb, tb):
        return attack(
            xb.to(device), yb.to(device), target_classes=None if target_classes is None else tb.to(device)
        ).cpu()

    advs = []
    for eps in cfg.eps:
        if cfg.method == "fgm":
            attack = partial(fgm, model, eps=eps, norm=cfg.norm)
        else:
            attack = partial(pgd, model, eps=eps, alpha=cfg.alpha_ratio * eps, steps=cfg.steps, norm=cfg.norm)
        desc = f"{cfg.source} {cfg.method}-{cfg.objective} eps={eps:g}"
        # untargeted: y stands in for the unused target classes so both objectives batch alike
        classes = y if target_classes is None else target_classes
        advs.append(map_batches(partial(run_batch, attack), x, y, classes, batch_size=cfg.batch_size, desc=desc))
        log.info("%s: done", desc)
    AdversarialSet(
        source=cfg.source,
        source_info=ModelInfo.of(meta, meta),
        method=cfg.method,
        objective=cfg.objective,
        norm=cfg.norm,
        eps=cfg.eps,
        steps=cfg.steps if cfg.method == "pgd" else 1,
        alpha_ratio=cfg.alpha_ratio if cfg.method == "pgd" else 1.0,
        indices=idx,
        y=y,
        target_classes=target_classes,
        x_adv=torch.stack(advs),
        provenance=data.provenance,
        environment=Environment.current(device),
    ).save(cfg.out)
