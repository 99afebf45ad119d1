"""Adversarial examples other tools saved to disk, read as an :class:`~.attacks.Adversary`.

Layouts (``--saved KIND:PATH``), as each tool writes them:

================================  ===========================================================================
``transferattack:ADV_DIR``        TransferAttack's ``main.py``: one PNG per image in ``--output_dir`` under the
                                  file name of its clean image ``input_dir/images/NAME`` (written as
                                  ``(x * 255).astype(np.uint8)``: truncated); labels from ``input_dir/labels.csv``
                                  (``filename,label[,targeted_label]``). The clean images are the data
                                  (``--data nips:INPUT_DIR``), resized to the adversarial images' size on reading,
                                  as TransferAttack's loader resizes both to 224
``tabench:DIR``                   TA-Bench's ``attacker.py``: ``batch_0.npy``, ``batch_1.npy``, ... (uint8 N x C x H x W,
                                  ``round(x * 255)``) and ``labels.npy``, in the data's order; the clean images are
                                  the data, whose labels must equal ``labels.npy``
``torchattacks:FILE.pt``          ``torchattacks.Attack.save``: ``{"adv_inputs", "labels", "save_type"}`` (+
                                  ``"clean_inputs"``, ``"preds"``); uint8 when ``save_type="int"``
                                  (``(x * 255).type(torch.uint8)``: truncated). Its clean inputs are the data when
                                  saved, else ``--data`` (labels must agree)
================================  ===========================================================================

All are read lazily where the format allows (PNG files one by one, ``.npy`` memory-mapped), loaded
with ``weights_only=True`` (``.pt``), and checked like any attack's output (shape, [0, 1], the eps
ball when an eps and norm are given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import to_float
from .attacks import Adversary
from .datasets import DataSourceError, ImageSet, _memory_set, nips_set

LAYOUTS = ("transferattack", "tabench", "torchattacks")


class SavedSetError(ValueError):
    """Saved adversarial examples that cannot be paired with their clean images and labels."""


@dataclass(frozen=True)
class SavedSet:
    """Saved adversarial examples and the clean set they belong to (None: give ``--data``)."""

    layout: str
    path: Path
    adversary: Adversary
    clean: ImageSet | None
    y: torch.Tensor


def _check_labels(saved: torch.Tensor, data: ImageSet, what: str) -> None:
    if len(saved) != len(data):
        raise SavedSetError(f"{what} holds {len(saved)} adversarial examples, the data {len(data)} images")
    if not torch.equal(saved.long(), data.y):
        k = int((saved.long() != data.y).nonzero()[0])
        raise SavedSetError(
            f"{what}: its labels differ from the data's at image {k} ({int(saved[k])} vs {int(data.y[k])}): not the same images in the same order"
        )


def _adversary(layout: str, path: Path, read, eps, norm, digest: str, eight_bit: bool = True) -> Adversary:
    """The saved set as an Adversary; 8-bit files get 1/255 of slack in the eps-ball check (their
    rounding can move a pixel that far past eps)."""
    identity = {"saved": layout, "path": str(path), "content": digest}
    name = f"saved {layout} {path.name}"
    return Adversary(name, identity, eps, norm, lambda x, y, t, index: read(index), 1 / 255 if eight_bit else 0.0)


def _png_reader(files: list[Path]):
    def read(index: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        return to_float(
            torch.stack(
                [
                    torch.from_numpy(np.asarray(Image.open(files[i]).convert("RGB")).copy()).permute(2, 0, 1)
                    for i in index.tolist()
                ]
            )
        )

    return read


def transferattack_set(adv_dir: str | Path, input_dir: str | Path, eps=None, norm=None) -> SavedSet:
    """TransferAttack's output folder beside its input folder (see the module docstring)."""
    adv_dir = Path(adv_dir)
    if not adv_dir.is_dir():
        raise SavedSetError(f"TransferAttack output folder {adv_dir} does not exist")
    probe = nips_set(input_dir)
    files = [adv_dir / name for name in probe.files]
    absent = [f for f in files if not f.is_file()]
    if absent:
        raise SavedSetError(
            f"{adv_dir} lacks {len(absent)} adversarial image(s) of {input_dir}/labels.csv, e.g. {absent[0].name}"
        )
    from PIL import Image

    size = Image.open(files[0]).size
    clean = nips_set(input_dir, image_size=size[0] if size[0] == size[1] else None)
    digest = _files_digest(files)
    return SavedSet(
        "transferattack",
        adv_dir,
        _adversary("transferattack", adv_dir, _png_reader(files), eps, norm, digest),
        clean,
        clean.y,
    )


def _files_digest(files: list[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def tabench_set(folder: str | Path, data: ImageSet | None, eps=None, norm=None) -> SavedSet:
    """TA-Bench's ``batch_*.npy`` + ``labels.npy`` (see the module docstring)."""
    folder = Path(folder)
    batches = sorted(
        (p for p in folder.glob("batch_*.npy") if re.fullmatch(r"batch_\d+\.npy", p.name)),
        key=lambda p: int(p.stem[6:]),
    )
    if not batches or not (folder / "labels.npy").is_file():
        raise SavedSetError(f"{folder} is not TA-Bench's layout: it needs batch_0.npy, batch_1.npy, ... and labels.npy")
    if [int(p.stem[6:]) for p in batches] != list(range(len(batches))):
        raise SavedSetError(f"{folder}: batch files must be numbered 0..{len(batches) - 1} without gaps")
    arrays = [np.load(p, mmap_mode="r") for p in batches]
    if any(a.dtype != np.uint8 or a.ndim != 4 for a in arrays):
        raise SavedSetError(f"{folder}: every batch_*.npy must hold uint8 images (N, C, H, W)")
    y = torch.from_numpy(np.load(folder / "labels.npy").astype(np.int64))
    if data is None:
        raise SavedSetError(
            f"{folder}: TA-Bench does not save the clean images; give them as the data (same images, same order)"
        )
    _check_labels(y, data, str(folder))
    starts = np.cumsum([0] + [len(a) for a in arrays])

    def read(index: torch.Tensor) -> torch.Tensor:
        out = []
        for i in index.tolist():
            b = int(np.searchsorted(starts, i, side="right") - 1)
            out.append(torch.from_numpy(np.array(arrays[b][i - starts[b]])))
        return to_float(torch.stack(out))

    import hashlib

    digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in batches)).hexdigest()
    return SavedSet("tabench", folder, _adversary("tabench", folder, read, eps, norm, digest), data, y)


def torchattacks_set(file: str | Path, data: ImageSet | None, eps=None, norm=None) -> SavedSet:
    """torchattacks' ``Attack.save`` file (see the module docstring)."""
    file = Path(file)
    if not file.is_file():
        raise SavedSetError(f"torchattacks file {file} does not exist")
    try:
        d = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001
        raise SavedSetError(f"{file} cannot be read with weights_only=True: {exc}") from exc
    if not isinstance(d, dict) or "adv_inputs" not in d or "labels" not in d:
        raise SavedSetError(f"{file} is not a torchattacks save file (no 'adv_inputs' and 'labels')")
    adv, y = d["adv_inputs"], d["labels"].long()
    if adv.dtype != torch.uint8 and not adv.is_floating_point():
        raise SavedSetError(f"{file}: adv_inputs must be float or uint8, got {adv.dtype}")
    if "clean_inputs" in d:
        clean = _memory_set(
            f"clean inputs of {file.name}",
            d["clean_inputs"],
            y,
            None,
            None,
            {"source": "torchattacks", "file": str(file)},
        )
    elif data is not None:
        _check_labels(y, data, str(file))
        clean = data
    else:
        raise SavedSetError(
            f"{file} holds no clean_inputs (saved without save_clean_inputs=True): give the clean images as the data"
        )
    if len(adv) != len(y):
        raise SavedSetError(f"{file}: {len(adv)} adversarial examples but {len(y)} labels")
    import hashlib

    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    read = lambda index: to_float(adv[index])  # noqa: E731
    return SavedSet(
        "torchattacks",
        file,
        _adversary("torchattacks", file, read, eps, norm, digest, adv.dtype == torch.uint8),
        clean,
        y,
    )


def load_saved(spec: str, data: ImageSet | None, input_dir: str | Path | None = None, eps=None, norm=None) -> SavedSet:
    """``LAYOUT:PATH`` (see the module docstring). For TransferAttack's layout the clean folder is
    ``input_dir`` (default: the data's root, when the data is a NIPS'17 folder)."""
    layout, sep, path = spec.partition(":")
    if not sep or layout not in LAYOUTS:
        raise SavedSetError(
            f"saved adversarial examples {spec!r}: expected LAYOUT:PATH, LAYOUT one of {', '.join(LAYOUTS)}"
        )
    if layout == "transferattack":
        root = input_dir or (data.identity.get("root") if data is not None else None)
        if root is None:
            raise SavedSetError("TransferAttack's layout needs its input folder (images/ + labels.csv) as the data")
        try:
            return transferattack_set(path, root, eps, norm)
        except DataSourceError as exc:
            raise SavedSetError(str(exc)) from exc
    if layout == "tabench":
        return tabench_set(path, data, eps, norm)
    return torchattacks_set(path, data, eps, norm)
