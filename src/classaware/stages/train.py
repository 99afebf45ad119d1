"""Stage ``train``: one zoo member, trained on (a class-balanced subset of) the training set."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import save_json
from ..checkpoint import load_model
from ..config import help_field
from ..data import balanced_subset, load_canonical
from ..models import ARCHITECTURES, pick_device
from ..training import Recipe, TrainSpec, accuracy, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    arch: str = help_field(help=f"architecture, one of: {', '.join(ARCHITECTURES)}")
    init_seed: int = help_field(help="seed of the initial weights (same value = the paper's 'w:same')")
    data_seed: int = help_field(help="seed of data order, augmentation and dropout")
    out: Path = help_field(help="folder for the checkpoints epoch_EEE.pt")
    recipe: Recipe = Recipe()
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    metrics: Path | None = help_field(None, "JSON file for the test accuracy of every saved checkpoint")
    train_size: int = help_field(0, "train on a class-balanced subset of this many images (0: all)")
    eval_size: int = help_field(1000, "test images evaluated after every epoch for the log (0: all)")
    test_size: int = help_field(0, "test images of the final accuracy of every saved checkpoint (0: all)")
    save_epochs: tuple[int, ...] = help_field((), "also save a checkpoint after these epochs (the last is always saved)")
    device: str = help_field("auto", "auto, cpu, cuda or cuda:N")
    bf16: bool = help_field(False, "bf16 autocast on CUDA")

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
        if min(self.train_size, self.eval_size, self.test_size) < 0:
            raise ValueError("train_size, eval_size and test_size must be >= 0")
        if any(not 1 <= e <= self.recipe.epochs for e in self.save_epochs):
            raise ValueError(f"save_epochs must lie in 1..{self.recipe.epochs}, got {list(self.save_epochs)}")


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    idx = balanced_subset(data.train_y, cfg.train_size)
    eval_idx = balanced_subset(data.test_y, cfg.eval_size)
    spec = TrainSpec(cfg.arch, cfg.init_seed, cfg.data_seed, cfg.recipe)
    log.info("training %s on %d images of %s (%s)", cfg.arch, len(idx), data.label, device)
    train(
        spec, data.train_x[idx], data.train_y[idx], data.test_x[eval_idx], data.test_y[eval_idx], cfg.out,
        save_epochs=cfg.save_epochs, meta={"data": data.source, "train_size": cfg.train_size}, device=device, bf16=cfg.bf16,
    )
    if cfg.metrics is not None:
        test_idx = balanced_subset(data.test_y, cfg.test_size)
        results = {}
        for path in sorted(cfg.out.glob("epoch_*.pt")):
            model, meta = load_model(path, cfg.arch, device)
            results[f"epoch_{meta['epoch']}"] = {"test_acc": accuracy(model, data.test_x[test_idx], data.test_y[test_idx])}
        save_json({"arch": cfg.arch, "dataset": data.label, "n_train": len(idx), "n_test": len(test_idx), "checkpoints": results}, cfg.metrics)
