"""Training: the paper's SGD recipes, reproducible from two seeds, resumable, fast on a GPU.

Seeds. ``init_seed`` alone draws the initial weights; ``data_seed`` alone draws, for every
epoch, the data order, the augmentation and the dropout masks (each epoch from its own seed
``SeedSequence([data_seed, epoch])``). So "w:same" models share ``init_seed`` and differ in
``data_seed``, "w:diff" models differ in both, and a run resumed after epoch k continues
exactly as if never interrupted: nothing random carries over from one epoch to the next.

Speed. The whole uint8 training set sits on the device; each epoch draws its permutation and
augmentation parameters once on the CPU (so CPU and GPU runs see the same batches) and moves
them over in one copy; crops and flips are batched tensor ops; the model runs channels_last,
optionally under bf16 autocast (CUDA, or the CPU's autocast on a CPU: one meaning on both, so
the CPU test suite runs the code path a GPU run takes); loss and accuracy accumulate on the
device and are read once per epoch, so no step waits on the host.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import save_checkpoint
from .codec import JsonRecord
from .config import Options, help_field
from .contracts import as_labels
from .data import to_float
from .environment import Environment
from .files import load_tensors, save_tensors
from .models import build, predict
from .progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule(Options):
    """SGD with momentum and weight decay, the learning rate multiplied by ``gamma`` at each
    milestone. The defaults are section 3.2's (x0.1 at epoch 50 of 100)."""

    epochs: int = help_field(100, "training epochs", ge=1)
    milestones: tuple[int, ...] = help_field((50,), "epochs at which the learning rate is multiplied by gamma", ge=1)
    gamma: float = help_field(0.1, "learning-rate decay factor", gt=0)
    momentum: float = help_field(0.9, "SGD momentum", ge=0, le=1)
    weight_decay: float = help_field(5e-4, "SGD weight decay", ge=0)

    def check(self) -> list[str]:
        if list(self.milestones) != sorted(set(self.milestones)) or any(m >= self.epochs for m in self.milestones):
            return [f"milestones must be increasing epochs inside (0, {self.epochs}), got {list(self.milestones)}"]
        return []


# Section 4.2: x0.1 at epochs 100 and 150 of 200; the initial lr, batch size and augmentation
# come from a grid search (stage train-grid).
SECTION4_SCHEDULE = Schedule(epochs=200, milestones=(100, 150))


@dataclass(frozen=True)
class Recipe(Schedule):
    """A schedule with its initial learning rate, batch size and augmentation:
    lr(e) = lr * gamma ** #{m in milestones : m <= e}.

    The defaults are section 3.2's (lr 0.01). ``batch_size``, ``crop_padding`` and ``flip``
    are not stated in the paper; the defaults (128, random 32x32 crop of the image
    zero-padded by 4, horizontal flip) are the standard CIFAR-10 choices. ``crop_padding=0``
    and ``flip=False`` disable augmentation.
    """

    lr: float = help_field(0.01, "initial learning rate", gt=0)
    batch_size: int = help_field(128, "batch size", ge=1)
    crop_padding: int = help_field(4, "random-crop padding in pixels (0: no crop)", ge=0)
    flip: bool = help_field(True, "random horizontal flips")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        return self.lr * self.gamma ** sum(m <= epoch for m in self.milestones)


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines a trained model's weights, given the data."""

    arch: str
    init_seed: int
    data_seed: int
    recipe: Recipe = Recipe()

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainMetrics(JsonRecord):
    """Clean test accuracy of each saved checkpoint of one zoo member, by epoch."""

    FORMAT = "classaware-train-metrics/1"
    WHAT = "training metrics"
    arch: str
    dataset: str
    n_train: int
    n_test: int
    test_acc: dict[str, float]  # epoch (as a string) -> accuracy
    environment: Environment  # what computed it (see classaware.environment)

    def final(self) -> tuple[int, float]:
        """(last epoch, its accuracy)."""
        epoch = max(map(int, self.test_acc))
        return epoch, self.test_acc[str(epoch)]


def epoch_seed(data_seed: int, epoch: int) -> int:
    """The seed of one epoch's data order, augmentation and dropout."""
    return int(np.random.SeedSequence([data_seed, epoch]).generate_state(1)[0])


def augment(x: torch.Tensor, shift: torch.Tensor, flip: torch.Tensor, padding: int) -> torch.Tensor:
    """Batched random crop and flip: image i is zero-padded by ``padding``, cropped back to
    its size at offset ``shift[i] = (dy, dx)`` in [0, 2*padding], then mirrored if ``flip[i]``."""
    b, _, h, w = x.shape
    if padding:
        x = F.pad(x, (padding,) * 4)
        rows = (shift[:, 0, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (shift[:, 1, None] + torch.arange(w, device=x.device))[:, None, None, :]
        x = x[
            torch.arange(b, device=x.device)[:, None, None, None],
            torch.arange(3, device=x.device)[None, :, None, None],
            rows,
            cols,
        ]
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def _epoch_plan(n: int, recipe: Recipe, seed: int, device: torch.device):
    """This epoch's permutation, crop offsets and flips, drawn on the CPU and copied over once."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    shift = torch.randint(0, 2 * recipe.crop_padding + 1, (n, 2), generator=g)
    flip = torch.rand(n, generator=g) < (0.5 if recipe.flip else 0.0)
    return perm.to(device), shift.to(device), flip.to(device)


def train_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: Recipe,
    seed: int,
    bf16: bool = False,
    desc: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of SGD on images ``x`` (uint8 or float, on the model's device) with labels ``y``,
    batches in the order, augmentation and dropout masks drawn from ``seed``. Returns the summed
    loss and the number of correct training predictions as device tensors (read them once, after)."""
    device = x.device
    torch.manual_seed(seed)  # dropout masks
    perm, shift, flip = _epoch_plan(len(y), recipe, seed, device)
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for i in progress(range(0, len(y), recipe.batch_size), desc or "training batches", unit="batch"):
        idx = perm[i : i + recipe.batch_size]
        xb = augment(to_float(x[idx]), shift[idx], flip[idx], recipe.crop_padding).contiguous(
            memory_format=torch.channels_last
        )
        yb = y[idx]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach().float() * len(idx)
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum, correct


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy on uint8 images ``x`` (N, C, H, W) (any device) with integer labels ``y``
    (N,); nan for N = 0. ValueError for labels outside the contract (:mod:`classaware.contracts`)."""
    y = as_labels(y, len(x), name="y")
    if len(y) == 0:
        return float("nan")
    pred = predict(model, to_float(x))
    return (pred == y.to(pred.device)).float().mean().item()


def train(
    spec: TrainSpec,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    out_dir: str | Path,
    *,
    save_epochs: tuple[int, ...] = (),
    meta: dict | None = None,
    device: str | torch.device = "cpu",
    bf16: bool = False,
) -> torch.nn.Module:
    """Train ``spec`` on uint8 images and write ``out_dir/epoch_EEE.pt`` for each 1-based epoch
    in ``save_epochs`` and for the last epoch.

    Work in progress lives in ``<out_dir>.partial/`` (a resume state, see :func:`state_epochs`,
    plus the checkpoints saved so far); a rerun with the same spec and data resumes from it and
    writes byte-identical checkpoints. When done, the checkpoints replace ``out_dir``, which must be
    new or hold only checkpoints of an earlier run: nothing else is ever deleted (see
    :func:`check_destination`). ``test_x``/``test_y`` are evaluated after every epoch for the
    log. ``meta`` (e.g. the data's hash) is stored in every checkpoint.
    """
    recipe, device = spec.recipe, torch.device(device)
    save_epochs = checkpoint_epochs(recipe.epochs, save_epochs)
    state_at = state_epochs(recipe.epochs, save_epochs)
    out_dir = Path(out_dir)
    partial = _work_folder(out_dir)
    check_destination(out_dir)
    identity = {"spec": spec.as_dict(), "meta": dict(meta or {}), "n_train": len(train_y)}
    model, opt = _initial(spec, device)
    start, history = _resume(partial, identity, model, opt)

    x_train, y_train = train_x.to(device), train_y.to(device)
    x_test, y_test = test_x.to(device), test_y.to(device)
    for epoch in progress(range(start, recipe.epochs), f"{spec.arch} epochs", unit="epoch"):
        history.append(_epoch(model, opt, spec, epoch, (x_train, y_train), (x_test, y_test), bf16))
        if epoch + 1 in save_epochs:
            save_checkpoint(
                partial / _checkpoint_name(epoch + 1), model, _checkpoint_meta(identity, epoch + 1, history, device)
            )
        if epoch + 1 in state_at:
            _save_state(partial, identity, epoch + 1, history, model, opt)
    _publish(partial, out_dir)
    return model.eval()


def checkpoint_epochs(epochs: int, save_epochs: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The 1-based epochs :func:`train` writes a checkpoint after: ``save_epochs`` and the last,
    sorted; ValueError for one outside 1..epochs."""
    saved = tuple(sorted({int(e) for e in save_epochs} | {epochs}))
    if any(not 1 <= e <= epochs for e in saved):
        raise ValueError(f"save_epochs must lie in 1..{epochs}, got {list(saved)}")
    return saved


def work_units(arch: str, n: int, epochs: int, eval_n: int, save_epochs: tuple[int, ...] = ()) -> Counter:
    """The images one call of :func:`train` puts through each kind of work of
    :mod:`classaware.workflow.estimate`, ``{(kind, arch): count}``: ``epochs`` epochs of SGD over ``n``
    images, ``eval_n`` test images evaluated after each, and one write per resume state and
    checkpoint."""
    saved = checkpoint_epochs(epochs, save_epochs)
    return Counter(
        {
            ("train", arch): n * epochs,
            ("forward", arch): eval_n * epochs,
            ("save", arch): len(state_epochs(epochs, saved)) + len(saved),
        }
    )


def _initial(spec: TrainSpec, device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The model of ``init_seed`` and its SGD optimizer, before the first epoch."""
    torch.manual_seed(spec.init_seed)
    model = build(spec.arch)  # initialised on the CPU: the same weights whatever the device
    model = model.to(device, memory_format=torch.channels_last)
    recipe = spec.recipe
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    return model, opt


def _epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    spec: TrainSpec,
    epoch: int,
    train_set: tuple[torch.Tensor, torch.Tensor],
    test_set: tuple[torch.Tensor, torch.Tensor],
    bf16: bool,
) -> dict:
    """0-based ``epoch`` of SGD, logged; its record for the history (no timings: checkpoints
    must hash the same on reruns)."""
    recipe = spec.recipe
    t0 = time.perf_counter()
    for group in opt.param_groups:
        group["lr"] = recipe.lr_at(epoch)
    desc = f"{spec.arch} epoch {epoch + 1}/{recipe.epochs}"
    loss_sum, correct = train_epoch(model, opt, *train_set, recipe, epoch_seed(spec.data_seed, epoch), bf16, desc)
    n = len(train_set[1])
    record = {
        "epoch": epoch + 1,
        "lr": recipe.lr_at(epoch),
        "loss": loss_sum.item() / n,
        "train_acc": correct.item() / n,
    }
    images_per_s = n / (time.perf_counter() - t0)  # training only (.item() waited for the device)
    record["test_acc"] = accuracy(model, *test_set)
    log.info(
        "%s epoch %d/%d  loss %.4f  train acc %.4f  test acc %.4f  %.0f img/s",
        spec.arch,
        epoch + 1,
        recipe.epochs,
        record["loss"],
        record["train_acc"],
        record["test_acc"],
        images_per_s,
    )
    return record


def _checkpoint_meta(identity: dict, epoch: int, history: list[dict], device: torch.device) -> dict:
    """What a checkpoint after 1-based ``epoch`` records beside its weights: the caller's meta,
    the spec, the epoch, the number of training images, the log so far and the environment."""
    return {
        **identity["meta"],
        **identity["spec"],
        "epoch": epoch,
        "n_train": identity["n_train"],
        "history": list(history),
        "environment": asdict(Environment.current(device)),
    }


STATE = "state.pt"
STATE_EVERY = 10  # epochs between resume states (see state_epochs)


def state_epochs(epochs: int, save_epochs: tuple[int, ...] = ()) -> set[int]:
    """The 1-based epochs after which training writes its resume state: every
    ``STATE_EVERY``-th and every one that saved a checkpoint, never the last (training is done).

    A state is a full copy of the weights and the SGD momentum, 0.3-0.6 s per write for the
    paper's models on a local disk: written after every epoch, the paper profile's 12,790 epochs
    would spend about an hour on them. Every tenth epoch, an interrupted run loses at most ten
    epochs and resumes exactly as before (every epoch draws from its own seed)."""
    return {e for e in range(1, epochs) if e % STATE_EVERY == 0 or e in save_epochs}


_CHECKPOINT = re.compile(r"epoch_\d{3,}\.pt")
# what training writes in its work folder: the resume state, checkpoints, and the temporaries
# of their atomic writes (which a killed run leaves behind)
_WORK_FILE = re.compile(r"(state\.pt|epoch_\d{3,}\.pt)|\.(state\.pt|epoch_\d{3,}\.pt)\.\w+\.tmp")


def _checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch:03d}.pt"


def check_destination(out_dir: Path) -> None:
    """Refuse, before any training, an ``out_dir`` that is not a folder of checkpoints (or
    absent), or a ``<out_dir>.partial`` holding anything training does not write there."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output {out_dir} is a file; give a folder for the checkpoints")
    if out_dir.is_dir():
        foreign = sorted(p.name for p in out_dir.iterdir() if not (p.is_file() and _CHECKPOINT.fullmatch(p.name)))
        if foreign:
            raise ValueError(
                f"output folder {out_dir} holds files that are not classaware checkpoints ({', '.join(foreign[:5])}); "
                "training replaces the folder, so give a new or empty folder, or move those files out"
            )
    work = _work_folder(out_dir)
    if work.is_dir():
        foreign = sorted(p.name for p in work.iterdir() if not (p.is_file() and _WORK_FILE.fullmatch(p.name)))
        if foreign:
            raise ValueError(
                f"work folder {work} holds files training did not write ({', '.join(foreign[:5])}); "
                f"move them out, or delete the folder with `rm -r {work}` to start over"
            )


def _work_folder(out_dir: Path) -> Path:
    """Where training keeps its work in progress: ``<out_dir>.partial`` beside ``out_dir``."""
    return out_dir.with_name(out_dir.name + ".partial")


def _save_state(
    work: Path, identity: dict, epoch: int, history: list, model: torch.nn.Module, opt: torch.optim.Optimizer
) -> None:
    """The resume state after 1-based ``epoch``: the weights, the SGD momentum and the log, with
    the identity of the run they belong to (:func:`_resume`)."""
    state = {
        "identity": identity,
        "epoch": epoch,
        "history": history,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
    }
    save_tensors(state, work / STATE)


def _publish(work: Path, out_dir: Path) -> None:
    """The finished checkpoints of ``work`` replace ``out_dir`` (only ever a folder of
    checkpoints, checked again: something may have appeared while training)."""
    (work / STATE).unlink(missing_ok=True)
    check_destination(out_dir)
    if out_dir.exists():
        for old in out_dir.iterdir():
            old.unlink()
        out_dir.rmdir()
    os.replace(work, out_dir)


def _resume(work: Path, identity: dict, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, list]:
    """Restore model and optimizer from ``work/state.pt`` if it belongs to this very run;
    return (epochs already done, their log). A state of another run is discarded."""
    state_path = work / STATE
    if state_path.exists():
        try:
            state = load_tensors(state_path, "resume state")
            if not isinstance(state, dict) or not {"identity", "epoch", "history", "model", "optimizer"} <= set(state):
                raise ValueError(f"resume state {state_path} is not a classaware resume state")
        except ValueError as exc:
            raise ValueError(
                f"{exc}; the interrupted run cannot be resumed: delete it with `rm -r {work}` and rerun"
            ) from exc
        if state["identity"] == identity:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            log.info("resuming %s from epoch %d", work, state["epoch"])
            return state["epoch"], list(state["history"])
        log.warning("discarding %s: it belongs to another run (different spec or data)", work)
    if work.exists():
        shutil.rmtree(work)  # check_destination made sure it holds only what training wrote
    work.mkdir(parents=True)
    return 0, []
