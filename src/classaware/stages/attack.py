"""Stage ``attack``: adversarial examples of one source model for one attack and objective,
at every eps of the sweep, on (a class-balanced subset of) the test set (section 3.2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from ..attacks import fgm, pgd, random_target_classes
from ..batching import map_batches
from ..checkpoint import load_refs
from ..config import Options, data_field, device_field, help_field, models_dir_field
from ..data import cifar10_labels, load_canonical, to_float
from ..draws import Draws
from ..environment import Environment
from ..models import pick_device
from ..schema import AdversarialSet, ModelInfo

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream


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
    data: Path = data_field()
    models_dir: Path = models_dir_field()
    device: str = device_field()
    draws: Draws = Draws()  # --seed_shift: every draw of the stage goes through it


def subset(cfg: Config, test_y: torch.Tensor) -> torch.Tensor:
    """Indices of the attacked test images (class-balanced, shifted by the replicate)."""
    return cfg.draws.subset(test_y, cfg.test_size)


def batch_attack(cfg: Config, model: torch.nn.Module, eps: float, device: torch.device) -> Callable:
    """The attack at ``eps`` on one batch: (images, labels, target classes) on the CPU -> the
    examples on the CPU, computed on ``device``; untargeted, the target classes are ignored."""
    if cfg.method == "fgm":
        attack = partial(fgm, model, eps=eps, norm=cfg.norm)
    else:
        attack = partial(pgd, model, eps=eps, alpha=cfg.alpha_ratio * eps, steps=cfg.steps, norm=cfg.norm)
    targeted = cfg.objective == "targeted"

    def run_batch(xb: torch.Tensor, yb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        return attack(xb.to(device), yb.to(device), target_classes=tb.to(device) if targeted else None).cpu()

    return run_batch


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    ((model, meta),) = load_refs(cfg.models_dir, [cfg.source], device).values()
    idx = subset(cfg, data.test_y)
    x, y = to_float(data.test_x[idx]), data.test_y[idx]
    generator = cfg.draws.generator(cfg.target_class_seed)
    target_classes = random_target_classes(y, 10, generator) if cfg.objective == "targeted" else None
    # untargeted: y stands in for the unused target classes so both objectives batch alike
    classes = y if target_classes is None else target_classes
    advs = []
    for eps in cfg.eps:
        desc = f"{cfg.source} {cfg.method}-{cfg.objective} eps={eps:g}"
        advs.append(
            map_batches(batch_attack(cfg, model, eps, device), x, y, classes, batch_size=cfg.batch_size, desc=desc)
        )
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


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> dict:
    """One gradient per image, eps and step (FGM: one step)."""
    steps = cfg.steps if cfg.method == "pgd" else 1
    n = len(subset(cfg, cifar10_labels("test")))
    return {("grad", upstream.arch(cfg.models_dir, cfg.source)): n * len(cfg.eps) * steps}


def shapes(cfg: Config) -> dict[Path, dict]:
    return {cfg.out: {"images": len(subset(cfg, cifar10_labels("test"))), "eps": len(cfg.eps)}}


CHECKS = {"adversarial-sets": "examples in their eps-ball and [0, 1]; sampled batches re-attacked"}


def audit_set(cfg: Config, ctx: AuditContext) -> int:
    """Every example in its eps-ball and [0, 1]; randomly chosen batches attacked again."""
    s = AdversarialSet.load(cfg.out)
    x, y = to_float(ctx.data(cfg.data).test_x[s.indices]), s.y
    ((model, _),) = load_refs(cfg.models_dir, [s.source], ctx.device).values()
    classes = y if s.target_classes is None else s.target_classes
    n = 0
    for e, eps in enumerate(s.eps):
        ctx.in_ball(s.x_adv[e], x, eps, s.norm, f"{cfg.out} eps {eps:g}")
        attack = batch_attack(cfg, model, eps, ctx.device)
        for b in ctx.batches(len(y), cfg.batch_size):
            ours = attack(x[b], y[b], classes[b])
            if not ctx.pixels_equal(s.environment, ours, s.x_adv[e][b]):
                diff = float((ours - s.x_adv[e][b]).abs().max())
                raise ctx.Mismatch(
                    f"{cfg.out} eps {eps:g}: re-attacked images {b.start}-{b.stop} differ by up to {diff:.2e}"
                )
            n += b.stop - b.start
    return n


AUDIT = {"adversarial-sets": audit_set}
