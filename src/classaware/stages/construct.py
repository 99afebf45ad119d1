"""Stage ``construct``: the non-robust set of one model pair (section 4, Fig. 6, Table 1).

Per training image, target classes Y1 and Y2 are drawn uniformly over all ten classes (section 4.2:
a target may equal the other target or the true class); the N-targeted attack (eq. 5) leads F1
toward Y1 and F2 toward Y2 at once, and X' is stored losslessly as float32 with Y1, Y2, the
true labels and the image indices. Table 1's row is P[F1(X') = Y1], P[F2(X') = Y2] and both.
A clean, class-balanced part of the training set (``val_size`` images) is held out and never
attacked: the grid search of ``train-grid`` chooses its cell on it.

``probe_eps`` reruns the attack at other budgets on the first ``probe_size`` images and
records Table 1's rates there too: section 4.2 says eps = 0.1 while Fig. 8 says 1.0, and the
probe is the evidence for which one Table 1 was made with (REPRODUCE.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from ..attacks import n_targeted_pgd, random_target_classes
from ..batching import map_batches
from ..checkpoint import load_refs
from ..config import Options, data_field, device_field, help_field, models_dir_field
from ..data import cifar10_labels, load_canonical, to_float
from ..draws import Draws
from ..environment import Environment
from ..metrics import Proportion
from ..models import pick_device, predict
from ..schema import ConstructMetrics, NonRobustSet, Probe, Table1Rates, eps_key

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream

log = logging.getLogger(__name__)


def parse_pair(pair: str) -> tuple[str, str]:
    """'F1+F2' -> (F1, F2)."""
    parts = pair.split("+")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a pair is written F1+F2 with two zoo references, got {pair!r}")
    return parts[0], parts[1]


@dataclass(frozen=True)
class Config(Options):
    pair: str = help_field(help="the attacked models, written F1+F2 (zoo references)")
    out: Path = help_field(help="file for X', Y1, Y2 and the original labels", output="file")
    results: Path = help_field(help="JSON file of Table 1's row (and the probes)", output="file")
    eps: float = help_field(1.0, "l2 (or linf) budget of the N-targeted attack", gt=0)
    alpha: float = help_field(0.1, "step size", gt=0)
    steps: int = help_field(100, "PGD steps", ge=1)
    norm: Literal["l2", "linf"] = help_field("l2", "threat model")
    train_size: int = help_field(0, "attack this many training images (0: all not held out)", ge=0)
    val_size: int = help_field(5000, "clean training images held out for the grid search", ge=0)
    target_class_seed: int = help_field(1, "seed of the target classes Y1 and Y2", ge=0)
    batch_size: int = help_field(500, "images per attack batch", ge=1)
    probe_eps: tuple[float, ...] = help_field((), "also measure Table 1's rates at these eps", gt=0)
    probe_size: int = help_field(1000, "images for each probe", ge=1)
    data: Path = data_field()
    models_dir: Path = models_dir_field()
    device: str = device_field()
    draws: Draws = Draws()  # --seed_shift: every draw of the stage goes through it

    def check(self) -> list[str]:
        try:
            parse_pair(self.pair)
        except ValueError as exc:
            return [str(exc)]
        return []


def table1_rates(f1_adv: torch.Tensor, f2_adv: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor) -> Table1Rates:
    """Table 1: P[F1(X') = Y1], P[F2(X') = Y2] and P[both], with 95% Wilson intervals."""
    hit1, hit2 = f1_adv == y1, f2_adv == y2
    n = len(y1)
    return Table1Rates(
        f1_hits_y1=Proportion.of(int(hit1.sum()), n),
        f2_hits_y2=Proportion.of(int(hit2.sum()), n),
        both=Proportion.of(int((hit1 & hit2).sum()), n),
    )


def n_targeted_examples(
    models: list,
    x: torch.Tensor,
    target_classes: list[torch.Tensor],
    eps: float,
    alpha: float,
    steps: int,
    norm: str,
    batch_size: int,
    device: torch.device,
    desc: str = "N-targeted batches",
) -> torch.Tensor:
    """X' = the N-targeted attack (eq. 5) on every image of ``x`` (CPU), in batches on ``device``;
    model i is led toward ``target_classes[i]``."""

    def batch(xb, *tb):
        return n_targeted_pgd(models, xb.to(device), [t.to(device) for t in tb], eps, alpha, steps, norm).cpu()

    return map_batches(batch, x, *target_classes, batch_size=batch_size, desc=desc)


def split(cfg: Config, train_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the attacked training images and of the clean ones held out (class-balanced,
    shifted by the replicate)."""
    return cfg.draws.split(train_y, cfg.train_size, cfg.val_size)


def target_classes(cfg: Config, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Y1 and Y2: uniform over all ten classes, drawn in that order from the target-class seed."""
    g = cfg.draws.generator(cfg.target_class_seed)
    y1 = random_target_classes(y, 10, g, exclude_true=False)
    y2 = random_target_classes(y, 10, g, exclude_true=False)
    return y1, y2


def rates(models: list, x_adv: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor) -> Table1Rates:
    """Table 1's rates of X' for the pair ``models`` = [F1, F2]."""
    return table1_rates(predict(models[0], x_adv), predict(models[1], x_adv), y1, y2)


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    pair = parse_pair(cfg.pair)
    loaded = load_refs(cfg.models_dir, list(pair), device)
    models = [loaded[ref][0] for ref in pair]
    idx, val_idx = split(cfg, data.train_y)
    x, y = to_float(data.train_x[idx]), data.train_y[idx]
    y1, y2 = target_classes(cfg, y)

    def attack(eps: float, k: int, desc: str) -> torch.Tensor:  # X' of the first k images
        return n_targeted_examples(
            models, x[:k], [y1[:k], y2[:k]], eps, cfg.alpha, cfg.steps, cfg.norm, cfg.batch_size, device, desc
        )

    probes = {}
    for eps in cfg.probe_eps:
        k = min(cfg.probe_size, len(y))
        probe = Probe(n_images=k, rates=rates(models, attack(eps, k, f"{cfg.pair} probe eps={eps:g}"), y1[:k], y2[:k]))
        probes[eps_key(eps)] = probe
        log.info("%s probe eps=%g: both hit %.3f", cfg.pair, eps, probe.rates.both.ratio)
    x_adv = attack(cfg.eps, len(y), f"{cfg.pair} eps={cfg.eps:g}")
    row = rates(models, x_adv, y1, y2)
    log.info(
        "%s eps=%g: F1->Y1 %.3f  F2->Y2 %.3f  both %.3f",
        cfg.pair,
        cfg.eps,
        row.f1_hits_y1.ratio,
        row.f2_hits_y2.ratio,
        row.both.ratio,
    )
    environment = Environment.current(device)
    NonRobustSet(
        pair=pair, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps, norm=cfg.norm, indices=idx, val_indices=val_idx,
        y=y, y1=y1, y2=y2, x=x_adv, provenance=data.provenance, environment=environment,
    ).save(cfg.out)  # fmt: skip
    ConstructMetrics(
        pair=cfg.pair, f1=pair[0], f2=pair[1], dataset=data.dataset, n_images=len(y), eps=cfg.eps, alpha=cfg.alpha,
        steps=cfg.steps, rates=row, probes=probes, targets_equal_true=(y1 == y).float().mean().item(),
        targets_equal_each_other=(y1 == y2).float().mean().item(), environment=environment,
    ).save(cfg.results)  # fmt: skip


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> Counter:
    """Every step of the attack differentiates both models, on the set and on each probe; then
    Table 1's predictions."""
    n = len(split(cfg, cifar10_labels("train"))[0])
    attacked = n + min(cfg.probe_size, n) * len(cfg.probe_eps)
    units = Counter()
    for ref in parse_pair(cfg.pair):
        units["grad", upstream.arch(cfg.models_dir, ref)] += attacked * cfg.steps
        units["forward", upstream.arch(cfg.models_dir, ref)] += attacked
    return units


def shapes(cfg: Config) -> dict[Path, dict]:
    idx, val_idx = split(cfg, cifar10_labels("train"))
    return {cfg.out: {"images": len(idx), "held_out": len(val_idx)}}


CHECKS = {"nonrobust-sets": "examples in their eps-ball and [0, 1]; Table 1's rates re-predicted"}


def audit_set(cfg: Config, ctx: AuditContext) -> int:
    """Every example of X' in its eps-ball and [0, 1]; Table 1's rates predicted again on all of X'."""
    s, recorded = NonRobustSet.load(cfg.out), ConstructMetrics.load(cfg.results)
    ctx.in_ball(s.x, to_float(ctx.data(cfg.data).train_x[s.indices]), s.eps, s.norm, str(cfg.out))
    loaded = load_refs(cfg.models_dir, list(s.pair), ctx.device)
    ours = rates([loaded[ref][0] for ref in s.pair], s.x, s.y1, s.y2)
    for name in ("f1_hits_y1", "f2_hits_y2", "both"):
        mine, theirs = getattr(ours, name).ratio, getattr(recorded.rates, name).ratio
        if not ctx.rates_equal(s.environment, mine, theirs):
            raise ctx.Mismatch(f"{cfg.results}: Table 1's {name} is {mine} re-predicted, {theirs} recorded")
    return len(s.y)


AUDIT = {"nonrobust-sets": audit_set}
