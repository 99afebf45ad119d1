"""Stage ``train-grid``: train one architecture on a non-robust set (X', Y1) or (X', Y2), on its
matched negative control (``--clean``: the set's clean images X with the same labels Y1 or Y2),
or on the original set (X, Y) as the baseline, over a grid of initial lr x batch size x
augmentation (section 4.2 chose these "by a grid search" it does not detail), and report the
clean test accuracy of the cell with the best accuracy on the clean held-out training images
(Table 2), and each cell's accuracy on its own training labels (does it fit them?).

The control answers what a learner gets from the random labels alone: Y1 is uniform over all ten
classes, the true one included, so a tenth of it is right and a control can rise above chance by
learning that tenth. A non-robust set teaches non-robust features only where it beats its control.
The learner's initial weights should come from a seed no zoo model uses, so that no learner starts
from its source's weights (``classaware profile`` refuses one that does).

Selection never sees the test set: the held-out images are the ``val_size`` clean training
images that ``construct`` left unattacked (the baseline holds out the same ones).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from ..checkpoint import load_model
from ..config import Options, data_field, device_field, help_field
from ..data import cifar10_labels, load_canonical
from ..draws import Draws
from ..environment import Environment
from ..models import ARCHITECTURES, pick_device
from ..progress import progress
from ..schema import GridCell, GridMetrics, NonRobustSet
from ..training import SECTION4_SCHEDULE, Recipe, Schedule, TrainSpec, accuracy, check_destination, train, work_units

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream

log = logging.getLogger(__name__)
AUGMENTATIONS = {"standard": {"crop_padding": 4, "flip": True}, "none": {"crop_padding": 0, "flip": False}}


@dataclass(frozen=True)
class Config(Options):
    arch: str = help_field(help=f"architecture, one of: {', '.join(ARCHITECTURES)}", choices=ARCHITECTURES)
    labelling: Literal["y1", "y2", "y"] = help_field(
        help="y1 / y2: a non-robust set's labelling; y: the original set (baseline)"
    )
    out: Path = help_field(help="folder for one sub-folder of checkpoints per grid cell", output="dir")
    results: Path = help_field(help="JSON file of every cell's accuracies and the selected one", output="file")
    train_set: Path | None = help_field(None, "non-robust set from `construct` (required unless --labelling y)")
    clean: bool = help_field(False, "the control: train on the set's clean images X with its labels, not on X'")
    schedule: Schedule = SECTION4_SCHEDULE
    grid_lr: tuple[float, ...] = help_field((0.01, 0.1), "initial learning rates to try", gt=0, nonempty=True)
    grid_batch_size: tuple[int, ...] = help_field((128,), "batch sizes to try", ge=1, nonempty=True)
    grid_augment: tuple[str, ...] = help_field(
        ("standard", "none"), f"augmentations to try: {', '.join(AUGMENTATIONS)}", choices=AUGMENTATIONS, nonempty=True
    )
    train_size: int = help_field(0, "baseline only: training images (0: all not held out), as `construct`", ge=0)
    val_size: int = help_field(5000, "baseline only: held-out clean training images, as `construct`", ge=0)
    init_seed: int = help_field(0, "seed of the initial weights", ge=0)
    data_seed: int = help_field(0, "seed of data order, augmentation and dropout", ge=0)
    eval_size: int = help_field(2000, "test images evaluated after every epoch for the log (0: all)", ge=0)
    test_size: int = help_field(0, "test images of the reported accuracy (0: all)", ge=0)
    data: Path = data_field()
    device: str = device_field()
    draws: Draws = Draws()  # --seed_shift: every draw of the stage goes through it
    bf16: bool = help_field(False, "bf16 autocast (CUDA or CPU)")

    def check(self) -> list[str]:
        if (self.labelling == "y") != (self.train_set is None):
            return ["--train_set is needed for labellings y1/y2 and not allowed for the original labels y"]
        if self.clean and self.train_set is None:
            return ["--clean (the control) needs the --train_set whose clean images and labels it trains on"]
        return []


def cells(cfg: Config) -> list[tuple[str, str, Recipe]]:
    """The grid's cells as (name, augmentation, recipe), in a fixed order."""
    out = []
    for lr, bs, aug in itertools.product(cfg.grid_lr, cfg.grid_batch_size, cfg.grid_augment):
        recipe = Recipe(**asdict(cfg.schedule), lr=lr, batch_size=bs, **AUGMENTATIONS[aug])
        out.append((f"lr{lr:g}-bs{bs}-{aug}", aug, recipe))
    return out


def baseline_split(cfg: Config, train_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The original set's training and held-out indices, as ``construct`` splits them."""
    return cfg.draws.split(train_y, cfg.train_size, cfg.val_size)


def test_subsets(cfg: Config, test_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the test images logged after every epoch and of those of the reported accuracy."""
    return cfg.draws.subset(test_y, cfg.eval_size), cfg.draws.subset(test_y, cfg.test_size)


def run(cfg: Config) -> None:
    for name, _, _ in cells(cfg):
        check_destination(cfg.out / name)
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    if cfg.train_set is None:
        idx, val_idx = baseline_split(cfg, data.train_y)
        x, y, pair, digest = data.train_x[idx], data.train_y[idx], None, None
    else:
        s = NonRobustSet.load(cfg.train_set)
        x = data.train_x[s.indices] if cfg.clean else s.x
        y, val_idx, pair, digest = (
            s.labels(cfg.labelling),
            s.val_indices,
            "+".join(s.pair),
            s.labels_digest(cfg.labelling),
        )
    x_val, y_val = data.train_x[val_idx], data.train_y[val_idx]
    eval_idx, test_idx = test_subsets(cfg, data.test_y)
    results = []
    for name, aug, recipe in progress(cells(cfg), f"{cfg.arch} grid cells", unit="cell"):
        what = "the original set" if pair is None else f"{pair}'s clean images (control)" if cfg.clean else pair
        log.info("%s on %s, labelling %s: grid cell %s", cfg.arch, what, cfg.labelling, name)
        meta = {"data": asdict(data.provenance), "train_set": str(cfg.train_set), "labelling": cfg.labelling,
                "clean": cfg.clean}  # fmt: skip
        model = train(
            TrainSpec(cfg.arch, cfg.draws.seed(cfg.init_seed), cfg.draws.seed(cfg.data_seed), recipe),
            x,
            y,
            data.test_x[eval_idx],
            data.test_y[eval_idx],
            cfg.out / name,
            meta=meta,
            device=device,
            bf16=cfg.bf16,
        )
        results.append(
            GridCell(
                cell=name,
                lr=recipe.lr,
                batch_size=recipe.batch_size,
                augment=aug,
                val_acc=accuracy(model, x_val, y_val) if len(y_val) else None,
                test_acc=accuracy(model, data.test_x[test_idx], data.test_y[test_idx]),
                fit=accuracy(model, x, y),
            )
        )
    best = max(results, key=lambda r: -1.0 if r.val_acc is None else r.val_acc)
    GridMetrics(
        arch=cfg.arch,
        labelling=cfg.labelling,
        pair=pair,
        clean=cfg.clean,
        labels_digest=digest,
        dataset=data.dataset,
        n_train=len(y),
        n_val=len(val_idx),
        n_test=len(test_idx),
        cells=tuple(results),
        selected=best.cell,
        val_acc=best.val_acc,
        test_acc=best.test_acc,
        environment=Environment.current(device),
    ).save(cfg.results)


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> Counter:
    """Each cell's training (:func:`classaware.training.work_units`), then its accuracy on the
    held-out images, on the test images and on its own training images (the fit)."""
    if cfg.train_set is None:
        n, n_val = map(len, baseline_split(cfg, cifar10_labels("train")))
    else:
        shape = upstream.shape(cfg.train_set)
        n, n_val = shape["images"], shape["held_out"]
    eval_idx, test_idx = test_subsets(cfg, cifar10_labels("test"))
    units = Counter()
    for _, _, recipe in cells(cfg):
        units.update(work_units(cfg.arch, n, recipe.epochs, len(eval_idx)))
        units["forward", cfg.arch] += n_val + len(test_idx) + n
    return units


def audit_checkpoints(cfg: Config, ctx: AuditContext) -> int:
    """Every cell's last checkpoint, re-evaluated, has the recorded test accuracy."""
    data = ctx.data(cfg.data)
    test_idx = test_subsets(cfg, data.test_y)[1]
    recorded = GridMetrics.load(cfg.results)
    for cell in recorded.cells:
        model, _ = load_model(max(Path(cfg.out, cell.cell).glob("epoch_*.pt")), cfg.arch, ctx.device)
        ours = accuracy(model, data.test_x[test_idx], data.test_y[test_idx])
        if not ctx.rates_equal(recorded.environment, ours, cell.test_acc):
            raise ctx.Mismatch(f"{cfg.out}/{cell.cell}: test accuracy {ours} here, {cell.test_acc} in {cfg.results}")
    return len(recorded.cells)


AUDIT = {"checkpoints": audit_checkpoints}
