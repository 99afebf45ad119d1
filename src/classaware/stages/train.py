"""Stage ``train``: one zoo member, trained on (a class-balanced subset of) the training set."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..checkpoint import load_model
from ..config import Options, data_field, device_field, help_field
from ..data import Cifar10, cifar10_labels, load_canonical
from ..draws import Draws
from ..environment import Environment
from ..files import save_json
from ..models import ARCHITECTURES, pick_device
from ..training import (
    Recipe,
    TrainMetrics,
    TrainSpec,
    accuracy,
    check_destination,
    checkpoint_epochs,
    train,
    work_units,
)

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    arch: str = help_field(help=f"architecture, one of: {', '.join(ARCHITECTURES)}", choices=ARCHITECTURES)
    init_seed: int = help_field(help="seed of the initial weights (same value = the paper's 'w:same')", ge=0)
    data_seed: int = help_field(help="seed of data order, augmentation and dropout", ge=0)
    out: Path = help_field(help="folder for the checkpoints epoch_EEE.pt", output="dir")
    recipe: Recipe = Recipe()
    data: Path = data_field()
    results: Path | None = help_field(None, "JSON file of the test accuracy of every saved checkpoint", output="file")
    metrics: Path | None = help_field(
        None, "JSON file of the final test accuracy, for `dvc metrics show`", output="file"
    )
    train_size: int = help_field(0, "train on a class-balanced subset of this many images (0: all)", ge=0)
    eval_size: int = help_field(1000, "test images evaluated after every epoch for the log (0: all)", ge=0)
    test_size: int = help_field(0, "test images of the final accuracy of every saved checkpoint (0: all)", ge=0)
    save_epochs: tuple[int, ...] = help_field(
        (), "also save a checkpoint after these epochs (the last is always saved)", ge=1
    )
    device: str = device_field()
    draws: Draws = Draws()  # --seed_shift: every draw of the stage goes through it
    bf16: bool = help_field(False, "bf16 autocast (CUDA or CPU)")

    def check(self) -> list[str]:
        if any(e > self.recipe.epochs for e in self.save_epochs):
            return [f"save_epochs must lie in 1..{self.recipe.epochs}, got {list(self.save_epochs)}"]
        return []


def subsets(cfg: Config, train_y: torch.Tensor, test_y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Indices of the training images, of the test images logged after every epoch, and of those
    of every checkpoint's reported accuracy (class-balanced, shifted by the replicate)."""
    return (
        cfg.draws.subset(train_y, cfg.train_size),
        cfg.draws.subset(test_y, cfg.eval_size),
        cfg.draws.subset(test_y, cfg.test_size),
    )


def test_accuracies(cfg: Config, data: Cifar10, device: torch.device) -> dict[Path, tuple[str, float]]:
    """{checkpoint: (its epoch, its test accuracy)} of every checkpoint in ``cfg.out``."""
    test_idx = subsets(cfg, data.train_y, data.test_y)[2]
    found = {}
    for path in sorted(cfg.out.glob("epoch_*.pt")):
        model, meta = load_model(path, cfg.arch, device)
        found[path] = (str(meta["epoch"]), accuracy(model, data.test_x[test_idx], data.test_y[test_idx]))
    return found


def headline(results: TrainMetrics) -> dict:
    """What `dvc metrics show` shows of a training: the last checkpoint's test accuracy."""
    return {"test_acc": results.final()[1]}


def run(cfg: Config) -> None:
    check_destination(cfg.out)
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    idx, eval_idx, test_idx = subsets(cfg, data.train_y, data.test_y)
    spec = TrainSpec(cfg.arch, cfg.draws.seed(cfg.init_seed), cfg.draws.seed(cfg.data_seed), cfg.recipe)
    log.info("training %s on %d images of %s (%s)", cfg.arch, len(idx), data.dataset, device)
    meta = {"data": asdict(data.provenance), "train_size": cfg.train_size}
    train(
        spec,
        data.train_x[idx],
        data.train_y[idx],
        data.test_x[eval_idx],
        data.test_y[eval_idx],
        cfg.out,
        save_epochs=cfg.save_epochs,
        meta=meta,
        device=device,
        bf16=cfg.bf16,
    )
    if cfg.results is None and cfg.metrics is None:
        return
    results = TrainMetrics(
        arch=cfg.arch,
        dataset=data.dataset,
        n_train=len(idx),
        n_test=len(test_idx),
        test_acc=dict(test_accuracies(cfg, data, device).values()),
        environment=Environment.current(device),
    )
    if cfg.results is not None:
        results.save(cfg.results)
    if cfg.metrics is not None:
        save_json(headline(results), cfg.metrics)


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> Counter:
    """The training (:func:`classaware.training.work_units`) and every checkpoint's test accuracy."""
    idx, eval_idx, test_idx = subsets(cfg, cifar10_labels("train"), cifar10_labels("test"))
    units = work_units(cfg.arch, len(idx), cfg.recipe.epochs, len(eval_idx), cfg.save_epochs)
    if cfg.results is not None or cfg.metrics is not None:
        units["forward", cfg.arch] += len(test_idx) * len(checkpoint_epochs(cfg.recipe.epochs, cfg.save_epochs))
    return units


def shapes(cfg: Config) -> dict[Path, dict]:
    return {cfg.out: {"arch": cfg.arch}}


def audit_checkpoints(cfg: Config, ctx: AuditContext) -> int:
    """Every checkpoint's test accuracy, re-evaluated, is the recorded one."""
    if cfg.results is None:
        return 0
    recorded = TrainMetrics.load(cfg.results)
    ours = test_accuracies(cfg, ctx.data(cfg.data), ctx.device)
    for path, (epoch, accuracy_here) in ours.items():
        stored = recorded.test_acc.get(epoch)
        if stored is None or not ctx.rates_equal(recorded.environment, accuracy_here, stored):
            raise ctx.Mismatch(f"{path}: test accuracy {accuracy_here} here, {stored} in {cfg.results}")
    return len(ours)


def audit_headline(cfg: Config, ctx: AuditContext) -> int:
    """The metrics file holds what the results record."""
    if cfg.metrics is None or cfg.results is None:
        return 0
    ctx.same_json(cfg.metrics, headline(TrainMetrics.load(cfg.results)))
    return 1


AUDIT = {"checkpoints": audit_checkpoints, "derived": audit_headline}
