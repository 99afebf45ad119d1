"""Stage ``attack``: adversarial examples of one source model for one attack and objective,
at every eps of the sweep, on (a class-balanced subset of) the test set (section 3.2)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from ..artifacts import save_tensors
from ..attacks import fgm, pgd, random_targets
from ..batching import map_batches
from ..checkpoint import load_refs
from ..config import Options, device_field, help_field
from ..data import balanced_subset, load_canonical, to_float
from ..models import pick_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    source: str = help_field(help="zoo reference of the source model F1 (member or member@epoch)")
    method: Literal["fgm", "pgd"] = help_field(help="FGM (one step of size eps) or PGD")
    objective: Literal["untargeted", "targeted"] = help_field(help="eq. (2) or eq. (3) with random targets")
    out: Path = help_field(help="file for the adversarial examples", output="file")
    eps: tuple[float, ...] = help_field((1.0,), "perturbation budgets ||x' - x|| <= eps", gt=0, nonempty=True)
    steps: int = help_field(10, "PGD steps", ge=1)
    alpha_ratio: float = help_field(0.2, "PGD step size as a fraction of eps (paper: alpha = eps/5)", gt=0)
    norm: Literal["l2", "linf"] = help_field("l2", "threat model")
    test_size: int = help_field(0, "attack a class-balanced subset of this many test images (0: all)", ge=0)
    target_seed: int = help_field(0, "seed of the random target classes of targeted attacks", ge=0)
    batch_size: int = help_field(500, "images per attack batch", ge=1)
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    models_dir: Path = help_field(Path("models"), "folder of the zoo's checkpoints")
    device: str = device_field()


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    ((model, meta),) = load_refs(cfg.models_dir, [cfg.source], device).values()
    idx = balanced_subset(data.test_y, cfg.test_size)
    x, y = to_float(data.test_x[idx]), data.test_y[idx]
    targets = random_targets(y, 10, torch.Generator().manual_seed(cfg.target_seed)) if cfg.objective == "targeted" else None
    advs = []
    for eps in cfg.eps:
        if cfg.method == "fgm":
            attack = partial(fgm, model, eps=eps, norm=cfg.norm)
        else:
            attack = partial(pgd, model, eps=eps, alpha=cfg.alpha_ratio * eps, steps=cfg.steps, norm=cfg.norm)
        label = f"{cfg.source} {cfg.method}-{cfg.objective} eps={eps:g}"

        def run_batch(xb, yb, tb):
            return attack(xb.to(device), yb.to(device), targets=None if targets is None else tb.to(device)).cpu()

        # untargeted: y stands in for the unused targets so both objectives batch alike
        advs.append(map_batches(run_batch, x, y, y if targets is None else targets, batch_size=cfg.batch_size, desc=label))
        log.info("%s: done", label)
    save_tensors(
        {
            "x_adv": torch.stack(advs), "eps": list(cfg.eps), "indices": idx, "y": y, "targets": targets,
            "method": cfg.method, "objective": cfg.objective, "norm": cfg.norm, "steps": cfg.steps if cfg.method == "pgd" else 1,
            "alpha_ratio": cfg.alpha_ratio if cfg.method == "pgd" else 1.0, "source": cfg.source,
            "source_meta": {k: meta[k] for k in ("arch", "init_seed", "data_seed", "epoch")}, "data_source": data.source,
        },
        cfg.out,
    )
