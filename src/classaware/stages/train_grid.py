"""Stage ``train-grid``: train one architecture on a non-robust set (X', Y1) or (X', Y2), or on
the original set (X, Y) as the baseline, over a grid of initial lr x batch size x augmentation
(section 4.2 chose these "by a grid search" it does not detail), and report the clean test
accuracy of the cell with the best accuracy on the clean held-out training images (Table 2).

Selection never sees the test set: the held-out images are the ``val_size`` clean training
images that ``construct`` left unattacked (the baseline holds out the same ones).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..artifacts import load_tensors, save_json
from ..config import Options, device_field, help_field
from ..data import balanced_split, balanced_subset, load_canonical
from ..models import ARCHITECTURES, pick_device
from ..training import PRESETS, Recipe, TrainSpec, accuracy, check_destination, train

log = logging.getLogger(__name__)
AUGMENTATIONS = {"standard": {"crop_padding": 4, "flip": True}, "none": {"crop_padding": 0, "flip": False}}


@dataclass(frozen=True)
class Config(Options):
    arch: str = help_field(help=f"architecture, one of: {', '.join(ARCHITECTURES)}", choices=ARCHITECTURES)
    label: Literal["y1", "y2", "y"] = help_field(help="y1 / y2: a non-robust set's labelling; y: the original set (baseline)")
    out: Path = help_field(help="folder for one sub-folder of checkpoints per grid cell", output="dir")
    metrics: Path = help_field(help="JSON file of every cell's accuracies and the selected one", output="file")
    train_set: Path | None = help_field(None, "non-robust set from `construct` (required unless --label y)")
    recipe: Recipe = PRESETS["paper-sec4"]
    grid_lr: tuple[float, ...] = help_field((0.01, 0.1), "initial learning rates to try", gt=0, nonempty=True)
    grid_batch_size: tuple[int, ...] = help_field((128,), "batch sizes to try", ge=1, nonempty=True)
    grid_augment: tuple[str, ...] = help_field(
        ("standard", "none"), f"augmentations to try: {', '.join(AUGMENTATIONS)}", choices=AUGMENTATIONS, nonempty=True)
    train_size: int = help_field(0, "baseline only: training images (0: all not held out), as `construct`", ge=0)
    val_size: int = help_field(5000, "baseline only: held-out clean training images, as `construct`", ge=0)
    init_seed: int = help_field(0, "seed of the initial weights", ge=0)
    data_seed: int = help_field(0, "seed of data order, augmentation and dropout", ge=0)
    eval_size: int = help_field(2000, "test images evaluated after every epoch for the log (0: all)", ge=0)
    test_size: int = help_field(0, "test images of the reported accuracy (0: all)", ge=0)
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    device: str = device_field()
    bf16: bool = help_field(False, "bf16 autocast (CUDA or CPU)")

    def check(self) -> list[str]:
        if (self.label == "y") != (self.train_set is None):
            return ["--train_set is needed for labels y1/y2 and not allowed for the original labels y"]
        return []


def cells(cfg: Config) -> list[tuple[str, str, Recipe]]:
    """The grid's cells as (name, augmentation, recipe), in a fixed order."""
    out = []
    for lr, bs, aug in itertools.product(cfg.grid_lr, cfg.grid_batch_size, cfg.grid_augment):
        recipe = dataclasses.replace(cfg.recipe, lr=lr, batch_size=bs, **AUGMENTATIONS[aug])
        out.append((f"lr{lr:g}-bs{bs}-{aug}", aug, recipe))
    return out


def run(cfg: Config) -> None:
    for name, _, _ in cells(cfg):
        check_destination(cfg.out / name)
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    if cfg.train_set is None:
        idx, val_idx = balanced_split(data.train_y, cfg.train_size, cfg.val_size)
        x, y, pair = data.train_x[idx], data.train_y[idx], None
    else:
        s = load_tensors(cfg.train_set, "non-robust set")
        x, y, val_idx, pair = s["x"], s[cfg.label], s["val_indices"], "+".join(s["pair"])
    x_val, y_val = data.train_x[val_idx], data.train_y[val_idx]
    eval_idx = balanced_subset(data.test_y, cfg.eval_size)
    test_idx = balanced_subset(data.test_y, cfg.test_size)
    results = []
    for name, aug, recipe in cells(cfg):
        log.info("%s on %s labels %s: grid cell %s", cfg.arch, pair or "the original set", cfg.label, name)
        model = train(
            TrainSpec(cfg.arch, cfg.init_seed, cfg.data_seed, recipe), x, y, data.test_x[eval_idx], data.test_y[eval_idx],
            cfg.out / name, meta={"data": data.source, "train_set": str(cfg.train_set), "label": cfg.label}, device=device, bf16=cfg.bf16,
        )
        results.append({
            "cell": name, "lr": recipe.lr, "batch_size": recipe.batch_size, "augment": aug,
            "val_acc": accuracy(model, x_val, y_val) if len(y_val) else None,
            "test_acc": accuracy(model, data.test_x[test_idx], data.test_y[test_idx]),
        })
    best = max(range(len(results)), key=lambda i: -1.0 if results[i]["val_acc"] is None else results[i]["val_acc"])
    save_json(
        {
            "arch": cfg.arch, "label": cfg.label, "pair": pair, "dataset": data.label,
            "n_train": len(y), "n_val": len(val_idx), "n_test": len(test_idx),
            "cells": results, "selected": results[best]["cell"], "val_acc": results[best]["val_acc"], "test_acc": results[best]["test_acc"],
        },
        cfg.metrics,
    )
