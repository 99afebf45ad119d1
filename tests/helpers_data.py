"""Builders of small synthetic CIFAR-10 archives for the data and CLI tests.

Images are random uint8 arrays written losslessly (PNG by default), so a test can compare
the pixels read back with the ones written.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from classaware.data import CLASSES


def random_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8 images, HWC as Pillow writes them."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _encode(img: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def folder_images(per_class: int, seed: int = 0, classes=CLASSES, size: int = 32) -> dict[str, dict[str, np.ndarray]]:
    """{split: {class: (per_class, size, size, 3) uint8}} with every image distinct across the set."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for s, split in enumerate(("train", "test")):
        out[split] = {
            cls: random_images(per_class, seed=seed * 1000 + s * 100 + i, size=size) for i, cls in enumerate(classes)
        }
    return out


def write_image_folder(
    path: Path, images: dict[str, dict[str, np.ndarray]], prefix: str = "", fmt: str = "PNG"
) -> Path:
    """A ``.tar.gz`` holding ``[prefix/]split/class/NNNN.png`` for the given images.

    Members are written in reverse name order so a reader that relies on archive order,
    rather than sorting, gets the wrong order."""
    entries = []
    for split, by_class in images.items():
        for cls, imgs in by_class.items():
            for k, img in enumerate(imgs):
                entries.append((f"{prefix}{split}/{cls}/{k:04d}.{fmt.lower()}", _encode(img, fmt)))
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in sorted(entries, reverse=True):
            _add(tar, name, payload)
    return path


def expected_split(by_class: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) images and labels in the canonical order: class by CLASSES index, then file name."""
    xs = [by_class[cls] for cls in CLASSES]
    ys = [np.full(len(by_class[cls]), i, dtype=np.int64) for i, cls in enumerate(CLASSES)]
    return np.concatenate(xs).transpose(0, 3, 1, 2), np.concatenate(ys)


def write_official_format(path: Path, per_batch: int = 3, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A ``.tar.gz`` in the layout of the official ``cifar-10-python.tar.gz`` (pickled dicts
    with ``b"data"`` rows of 3072 bytes, R then G then B plane, and ``b"labels"``); returns
    {batch name: (data rows, labels)}."""
    rng = np.random.default_rng(seed)
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            batches[name] = (data, labels)
            _add(tar, f"cifar-10-batches-py/{name}", pickle.dumps({b"data": data, b"labels": labels}))
        _add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}))
    return batches
