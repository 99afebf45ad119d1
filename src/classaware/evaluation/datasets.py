"""Images to evaluate on, streamed in batches: labels in memory, pixels read when a batch needs them.

Specs (``--data``; a bare path is recognised by what it is):

=======================  ===========================================================================
``cifar10:PATH[:SPLIT]`` a CIFAR-10 archive (:func:`classaware.data.read_archive`: the official
                         ``.tar.gz`` or an image-folder one) or the canonical ``.pt`` file
                         (:func:`classaware.data.load_canonical`); SPLIT ``test`` (default) or ``train``
``folder:PATH``          an ImageFolder tree ``PATH/CLASS/*.png|jpg|...``; classes are the sorted
                         folder names (torchvision's convention)
``nips:PATH``            the NIPS'17 "ImageNet-compatible" layout: PNG files in ``PATH/images/`` and
                         either TransferAttack's ``labels.csv`` (``filename,label[,targeted_label]``,
                         0-based) or the original ``images.csv``/``dev_dataset.csv``
                         (``ImageId,...,TrueLabel,TargetClass``, 1-based as Inception's 1001
                         classes, so 1 is subtracted, as torchattack's ``NIPSDataset`` does)
``tensor:PATH``          a ``.pt`` dict ``{"x": (N, C, H, W) uint8 or float in [0, 1], "y": (N,),
                         "t": (N,) optional}``, read with ``weights_only=True``
=======================  ===========================================================================

Images of different sizes need ``image_size`` (each is resized to image_size x image_size on
reading, as TransferAttack's loader does at 224); models resize further themselves.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..contracts import as_labels
from ..data import CLASSES, balanced_subset, load_canonical, read_archive, to_float

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
TARGET_MODES = ("none", "random", "file", "least_likely")


class DataSourceError(ValueError):
    """Data that cannot be evaluated on: missing labels, unreadable images, labels out of range."""


@dataclass(frozen=True)
class ImageSet:
    """N labelled images, read in batches by :meth:`images`.

    ``y`` (N,) int64 true labels; ``targets`` (N,) int64 target classes the data file gives, or
    None; ``files`` the image files (or None for in-memory sets); ``identity`` what the manifest
    and the cache key record (the file list's hash, the labels' hash, the archive's digests)."""

    name: str
    y: torch.Tensor
    targets: torch.Tensor | None
    files: tuple[str, ...] | None
    class_names: tuple[str, ...] | None
    identity: dict
    read: Callable[[torch.Tensor], torch.Tensor] = field(repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.y)

    def images(self, index: torch.Tensor) -> torch.Tensor:
        """Float32 images in [0, 1], (len(index), C, H, W), of the given positions."""
        return self.read(index)

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The images at ``index`` (sorted positions), as a set of their own."""
        index = index.long()
        files = None if self.files is None else tuple(self.files[i] for i in index.tolist())
        identity = {**self.identity, "selection_sha256": _tensor_hash(index), "selected": len(index)}
        return ImageSet(
            self.name,
            self.y[index],
            None if self.targets is None else self.targets[index],
            files,
            self.class_names,
            identity,
            lambda i, read=self.read, index=index: read(index[i]),
        )


def _tensor_hash(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _list_hash(names) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _memory_set(name, x, y, targets, class_names, identity) -> ImageSet:
    if x.dim() != 4 or len(x) != len(y):
        raise DataSourceError(
            f"{name}: images must be (N, C, H, W) with one label each, got {tuple(x.shape)} and {len(y)} labels"
        )
    if x.is_floating_point():
        if x.numel() and (not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1):
            raise DataSourceError(f"{name}: float images must lie in [0, 1]")
    elif x.dtype != torch.uint8:
        raise DataSourceError(f"{name}: images must be uint8 or float in [0, 1], got {x.dtype}")
    identity = {**identity, "labels_sha256": _tensor_hash(y), "n": len(y)}
    return ImageSet(name, y, targets, None, class_names, identity, lambda i: to_float(x[i]))


def cifar10_set(path: str | Path, split: str = "test") -> ImageSet:
    """A CIFAR-10 split from an archive (``.tar.gz``) or the canonical file (``.pt``)."""
    path = Path(path)
    if split not in ("train", "test"):
        raise DataSourceError(f"CIFAR-10 split must be train or test, got {split!r}")
    data = read_archive(path) if path.name.endswith((".tar.gz", ".tgz")) else load_canonical(path)
    x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    p = data.provenance
    identity = {"source": "cifar10", "file": str(path), "archive": p.name, "archive_md5": p.md5, "split": split}
    return _memory_set(f"{p.dataset}, {split} split", x, y, None, CLASSES, identity)


def tensor_set(path: str | Path) -> ImageSet:
    """A ``.pt`` dict with ``x``, ``y`` and optionally ``t`` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"tensor file {path} does not exist")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise DataSourceError(f"tensor file {path} cannot be read with weights_only=True: {exc}") from exc
    if not isinstance(d, dict) or "x" not in d or "y" not in d:
        raise DataSourceError(f"tensor file {path} must hold a dict with 'x' (images) and 'y' (labels)")
    y = _labels(d["y"], f"{path}: y")
    t = None if d.get("t") is None else _labels(d["t"], f"{path}: t")
    names = d.get("class_names")
    identity = {"source": "tensor", "file": str(path)}
    return _memory_set(f"tensor file {path.name}", d["x"], y, t, tuple(names) if names else None, identity)


def _labels(values, what: str) -> torch.Tensor:
    t = torch.as_tensor(values)
    try:
        return as_labels(t, None, name=what)
    except ValueError as exc:
        raise DataSourceError(str(exc)) from exc


def _reader(files: list[Path], image_size: int | None, what: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def read(index: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        out, size = [], None
        for i in index.tolist():
            try:
                img = Image.open(files[i]).convert("RGB")
            except Exception as exc:  # noqa: BLE001
                raise DataSourceError(f"{what}: {files[i]} is not a readable image: {exc}") from exc
            if image_size is not None and img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BILINEAR)
            if size is not None and img.size != size:
                raise DataSourceError(
                    f"{what}: images of different sizes ({size[0]}x{size[1]} and {img.size[0]}x{img.size[1]} at "
                    f"{files[i]}): give image_size (--image_size) to resize them on reading"
                )
            size = img.size
            out.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
        return to_float(torch.stack(out)) if out else torch.empty(0, 3, 1, 1)

    return read


def image_folder_set(root: str | Path, image_size: int | None = None) -> ImageSet:
    """An ImageFolder tree ``root/CLASS/IMAGE``; DataSourceError when it has no class folders with images."""
    root = Path(root)
    if not root.is_dir():
        raise DataSourceError(f"image folder {root} does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for k, cls in enumerate(classes):
        found = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [k] * len(found)
    if not files:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES][:3]
        hint = (
            f" (it holds images {loose} but no labels: put each class in a sub-folder, or add labels.csv and use nips:)"
            if loose
            else ""
        )
        raise DataSourceError(f"image folder {root} has no class sub-folders with images{hint}")
    names = [str(p.relative_to(root)) for p in files]
    identity = {"source": "folder", "root": str(root), "files_sha256": _list_hash(names), "n": len(files)}
    y = torch.tensor(labels, dtype=torch.int64)
    identity["labels_sha256"] = _tensor_hash(y)
    return ImageSet(
        f"image folder {root.name}",
        y,
        None,
        tuple(names),
        tuple(classes),
        identity,
        _reader(files, image_size, str(root)),
    )


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def nips_set(root: str | Path, image_size: int | None = None) -> ImageSet:
    """The NIPS'17 ImageNet-compatible layout (see the module docstring)."""
    root = Path(root)
    images = root / "images" if (root / "images").is_dir() else root
    for name, one_based in (("labels.csv", False), ("images.csv", True), ("dev_dataset.csv", True)):
        if (root / name).is_file():
            csv_path, one_based_labels = root / name, one_based
            break
    else:
        raise DataSourceError(
            f"{root}: no labels.csv, images.csv or dev_dataset.csv beside the images (the data has no labels)"
        )
    rows = _read_csv(csv_path)
    if not rows:
        raise DataSourceError(f"{csv_path} lists no image")
    if one_based_labels:
        name_key, label_key, target_key, suffix = "ImageId", "TrueLabel", "TargetClass", ".png"
    else:
        name_key, label_key, target_key, suffix = "filename", "label", "targeted_label", ""
    missing = [k for k in (name_key, label_key) if k not in rows[0]]
    if missing:
        raise DataSourceError(f"{csv_path} lacks column(s) {missing}; it has {list(rows[0])}")
    offset = 1 if one_based_labels else 0
    try:
        y = torch.tensor([int(r[label_key]) - offset for r in rows], dtype=torch.int64)
        t = (
            torch.tensor([int(r[target_key]) - offset for r in rows], dtype=torch.int64)
            if target_key in rows[0]
            else None
        )
    except ValueError as exc:
        raise DataSourceError(f"{csv_path}: a label is not an integer: {exc}") from exc
    if int(y.min()) < 0 or (t is not None and int(t.min()) < 0):
        raise DataSourceError(f"{csv_path}: labels must be >= {offset} ({'1-based' if offset else '0-based'})")
    names = [r[name_key] + (suffix if not r[name_key].endswith(suffix) else "") for r in rows]
    files = [images / n for n in names]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise DataSourceError(f"{csv_path} lists {len(absent)} image(s) that do not exist, e.g. {absent[0]}")
    identity = {
        "source": "nips17",
        "root": str(root),
        "labels_file": csv_path.name,
        "labels_file_sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest(),
        "files_sha256": _list_hash(names),
        "labels_sha256": _tensor_hash(y),
        "n": len(files),
    }
    return ImageSet(
        f"NIPS'17 layout {root.name}", y, t, tuple(names), None, identity, _reader(files, image_size, str(root))
    )


def load_data(spec: str | Path, image_size: int | None = None) -> ImageSet:
    """The image set a spec names (see the module docstring)."""
    text = str(spec)
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("cifar10", "folder", "nips", "tensor"):
        kind, rest = _guess(Path(text)), text
    if kind == "cifar10":
        path, _, split = rest.partition(":") if rest.count(":") else (rest, "", "")
        if not Path(path).exists():
            raise DataSourceError(f"CIFAR-10 file {path} does not exist")
        return cifar10_set(path, split or "test")
    if kind == "tensor":
        return tensor_set(rest)
    if kind == "folder":
        return image_folder_set(rest, image_size)
    return nips_set(rest, image_size)


def _guess(path: Path) -> str:
    if path.is_dir():
        has_csv = any((path / n).is_file() for n in ("labels.csv", "images.csv", "dev_dataset.csv"))
        return "nips" if has_csv else "folder"
    if path.name.endswith((".tar.gz", ".tgz")):
        return "cifar10"
    if path.suffix == ".pt":
        try:
            load_canonical(path)
            return "cifar10"
        except ValueError:
            return "tensor"
    raise DataSourceError(f"data {path} does not exist or is not a folder, .tar.gz or .pt file")


def select(data: ImageSet, n: int, seed: int = 0) -> ImageSet:
    """A class-balanced subset of ``n`` images (:func:`classaware.data.balanced_subset`; 0: all)."""
    if n <= 0 or n >= len(data):
        return data
    return data.subset(balanced_subset(data.y, n, seed))


def class_coverage(y: torch.Tensor, num_classes: int) -> dict:
    """How many classes the labels cover, and the smallest and largest class counts."""
    counts = torch.bincount(y, minlength=num_classes)
    return {
        "classes": num_classes,
        "covered": int((counts > 0).sum()),
        "min_count": int(counts.min()),
        "max_count": int(counts.max()),
    }
