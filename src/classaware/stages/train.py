"""Stage ``train``: one zoo member, trained on (a class-balanced subset of) the training set."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import save_json
from ..checkpoint import load_model
from ..config import Options, device_field, help_field
from ..data import balanced_subset, load_canonical
from ..models import ARCHITECTURES, pick_device
from ..training import Recipe, TrainSpec, accuracy, check_destination, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    arch: str = help_field(help=f"architecture, one of: {', '.join(ARCHITECTURES)}", choices=ARCHITECTURES)
    init_seed: int = help_field(help="seed of the initial weights (same value = the paper's 'w:same')", ge=0)
    data_seed: int = help_field(help="seed of data order, augmentation and dropout", ge=0)
    out: Path = help_field(help="folder for the checkpoints epoch_EEE.pt", output="dir")
    recipe: Recipe = Recipe()
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    metrics: Path | None = help_field(None, "JSON file for the test accuracy of every saved checkpoint", output="file")
    train_size: int = help_field(0, "train on a class-balanced subset of this many images (0: all)", ge=0)
    eval_size: int = help_field(1000, "test images evaluated after every epoch for the log (0: all)", ge=0)
    test_size: int = help_field(0, "test images of the final accuracy of every saved checkpoint (0: all)", ge=0)
    save_epochs: tuple[int, ...] = help_field((), "also save a checkpoint after these epochs (the last is always saved)", ge=1)
    device: str = device_field()
    bf16: bool = help_field(False, "bf16 autocast (CUDA or CPU)")

    def check(self) -> list[str]:
        if any(e > self.recipe.epochs for e in self.save_epochs):
            return [f"save_epochs must lie in 1..{self.recipe.epochs}, got {list(self.save_epochs)}"]
        return []


def run(cfg: Config) -> None:
    check_destination(cfg.out)
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
