"""CIFAR-10 as canonical uint8 tensors, read once from an archive and written to one file.

Sources:
  * the official ``cifar-10-python.tar.gz`` (md5 ``OFFICIAL_MD5``), fetched by :func:`download`
    through torchvision's md5-checked downloader, or already on disk;
  * an image-folder archive ``[prefix/]train/<class>/*`` and ``[prefix/]test/<class>/*`` such
    as ``../shared/data/cifar10-jpeg.tar.gz`` (every CIFAR-10 image re-encoded as JPEG q75).

The canonical file holds ``train_x``/``test_x`` (N, 3, 32, 32) uint8, ``train_y``/``test_y``
int64 and the data's :class:`Provenance`: the archive's name, md5, sha256, format and a dataset
name such as "CIFAR-10 (JPEG q75 copy)" that every later result carries, so no number made from
the JPEG copy can pass for the paper's protocol.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .codec import FormatError, TensorRecord

log = logging.getLogger(__name__)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_FILENAME = "cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
# Archives whose provenance is known, by md5 -> the dataset name every result made from them carries.
KNOWN_ARCHIVES = {
    OFFICIAL_MD5: "CIFAR-10 (official)",
    "1305e62a50e4706d19c8747004d1d1a2": "CIFAR-10 (JPEG q75 copy)",
}
IMAGE_SHAPE = (3, 32, 32)


class DataError(ValueError):
    """An archive or canonical file that cannot be used, with the file and the problem named."""


@dataclass(frozen=True)
class Provenance:
    """Where the images came from; every artifact made from them carries it."""

    name: str  # the archive's file name
    md5: str
    sha256: str
    format: str  # "cifar-10-python" or "image-folder"
    dataset: str  # printed beside every result, e.g. "CIFAR-10 (JPEG q75 copy)"


@dataclass(frozen=True)
class Cifar10(TensorRecord):
    """CIFAR-10 in memory: uint8 images (N, 3, 32, 32), int64 labels, and where they came from.
    Saved as the canonical file every stage reads (``save``; :func:`load_canonical`)."""

    FORMAT = "classaware-cifar10/2"
    WHAT = "canonical CIFAR-10 file"

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    provenance: Provenance

    @property
    def dataset(self) -> str:
        """The dataset name to print beside every result, e.g. "CIFAR-10 (JPEG q75 copy)"."""
        return self.provenance.dataset


def file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) hex digests of a file, read in 1 MiB chunks."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def read_archive(path: str | Path, expected_md5: str | None = None) -> Cifar10:
    """Read CIFAR-10 from an official or image-folder ``.tar.gz``, validating everything.

    Raises :class:`DataError` naming the file for: a missing file, an md5 other than
    ``expected_md5`` (or, for the official format, other than ``OFFICIAL_MD5``), a truncated
    or unreadable archive, a class set other than CIFAR-10's, or an image that is not 32x32.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CIFAR-10 archive {path} does not exist")
    md5, sha256 = file_digests(path)
    if expected_md5 is not None and md5 != expected_md5:
        raise DataError(f"CIFAR-10 archive {path} has md5 {md5}, expected {expected_md5} (wrong or damaged file)")
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"CIFAR-10 archive {path} is truncated or not a .tar.gz: {exc}") from exc

    if any(name.endswith("cifar-10-batches-py/data_batch_1") for name in members):
        if md5 != OFFICIAL_MD5:
            raise DataError(
                f"{path} looks like the official CIFAR-10 archive but has md5 {md5}, expected {OFFICIAL_MD5}"
            )
        fmt, splits = "cifar-10-python", _read_official(members, path)
    else:
        fmt, splits = "image-folder", _read_image_folder(members, path)
    provenance = Provenance(
        name=path.name,
        md5=md5,
        sha256=sha256,
        format=fmt,
        dataset=KNOWN_ARCHIVES.get(md5, f"CIFAR-10 (unverified image-folder archive {path.name})"),
    )
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    log.info("read %s: %d train, %d test images, %s", path, len(train_y), len(test_y), provenance.dataset)
    return Cifar10(train_x, train_y, test_x, test_y, provenance)


def _read_official(members: dict[str, bytes], path: Path) -> dict:
    import pickle  # the official archive is a pickle of numpy arrays; its md5 was checked above

    def batch(name: str):
        key = next((k for k in members if k.endswith(f"cifar-10-batches-py/{name}")), None)
        if key is None:
            raise DataError(f"CIFAR-10 archive {path} lacks {name} (truncated archive?)")
        d = pickle.loads(members[key], encoding="bytes")
        x = torch.from_numpy(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, *IMAGE_SHAPE).copy())
        return x, torch.tensor(d[b"labels"], dtype=torch.int64)

    train = [batch(f"data_batch_{i}") for i in range(1, 6)]
    return {
        "train": (torch.cat([x for x, _ in train]), torch.cat([y for _, y in train])),
        "test": batch("test_batch"),
    }


_FOLDER_ENTRY = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+)$")


def _read_image_folder(members: dict[str, bytes], path: Path) -> dict:
    from PIL import Image

    files: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for name in members:
        m = _FOLDER_ENTRY.search(name)
        if m:
            files[m[1]].setdefault(m[2], []).append(name)
    splits = {}
    for split, by_class in files.items():
        if set(by_class) != set(CLASSES):
            raise DataError(
                f"CIFAR-10 archive {path}: {split}/ has classes {sorted(by_class) or 'none'}, "
                f"expected exactly {list(CLASSES)}"
            )
        images, labels = [], []
        for label, cls in enumerate(CLASSES):
            for name in sorted(by_class[cls]):
                try:
                    img = Image.open(io.BytesIO(members[name])).convert("RGB")
                except Exception as exc:
                    raise DataError(f"CIFAR-10 archive {path}: {name} is not a readable image: {exc}") from exc
                if img.size != (32, 32):
                    raise DataError(f"CIFAR-10 archive {path}: {name} is {img.size[0]}x{img.size[1]}, expected 32x32")
                images.append(np.asarray(img))
                labels.append(label)
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        splits[split] = (x, torch.tensor(labels, dtype=torch.int64))
    return splits


def load_canonical(path: str | Path) -> Cifar10:
    """Load a file written by ``Cifar10.save`` and check its tensors' types and shapes."""
    try:
        data = Cifar10.load(path)
    except FormatError as exc:
        raise DataError(f"{exc} (run `classaware prepare`)") from exc
    for split in ("train", "test"):
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != IMAGE_SHAPE or y.dtype != torch.int64 or len(x) != len(y):
            raise DataError(
                f"{path}: {split} split has images {tuple(x.shape)} {x.dtype}, labels {tuple(y.shape)} {y.dtype}"
            )
    return data


def download(root: str | Path) -> Path:
    """Fetch the official archive into ``root`` with torchvision's md5-checked downloader."""
    from torchvision.datasets.utils import check_integrity, download_url

    root = Path(root)
    target = root / OFFICIAL_FILENAME
    if not check_integrity(str(target), OFFICIAL_MD5):
        download_url(OFFICIAL_URL, str(root), OFFICIAL_FILENAME, OFFICIAL_MD5)
    return target


def cifar10_labels(split: str) -> torch.Tensor:
    """Labels with CIFAR-10's class counts, class by class: 5,000 per class for ``split``
    "train", 1,000 for "test". The image selections below give as many images on them as on the
    data itself, so a stage counts its work from its options alone (``classaware estimate``)."""
    per_class = {"train": 5_000, "test": 1_000}
    if split not in per_class:
        raise ValueError(f"split must be train or test, got {split!r}")
    return torch.arange(len(CLASSES)).repeat_interleave(per_class[split])


def balanced_order(labels: torch.Tensor) -> torch.Tensor:
    """All indices, class by class in turn: the k-th image of every class (canonical order)
    before any (k+1)-th. Any prefix is as class-balanced as its length allows."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(len(labels)) - starts[labels[order]]
    return torch.argsort(rank * (int(labels.max()) + 1) + labels, stable=True)


def _shuffle(n: int, seed: int) -> torch.Tensor:
    """The order images are taken in: the canonical one for seed 0, a seeded shuffle otherwise
    (the seed of a replicate: :class:`classaware.draws.Draws`)."""
    return torch.arange(n) if seed == 0 else torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def balanced_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of the first ``n`` of :func:`balanced_order`: class-balanced, and nested
    (a smaller subset lies inside a larger one). n <= 0 or n >= len(labels): all. A nonzero
    ``seed`` takes the images of each class in a seeded random order instead."""
    if n <= 0 or n >= len(labels):
        return torch.arange(len(labels))
    shuffle = _shuffle(len(labels), seed)
    return shuffle[balanced_order(labels[shuffle])[:n]].sort().values


def balanced_split(
    labels: torch.Tensor, n_first: int, n_second: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint class-balanced sets of sorted indices: ``second`` is the first ``n_second``
    of :func:`balanced_order` taken from the end of every class (the last image of every class
    in turn, so it does not move with ``n_first``), ``first`` the first ``n_first`` of the rest
    in :func:`balanced_order` (n_first <= 0: all of the rest). A nonzero ``seed`` takes the
    images of each class in a seeded random order instead."""
    if not 0 <= n_second < len(labels):
        raise ValueError(f"held-out size must lie in 0..{len(labels) - 1}, got {n_second}")
    shuffle = _shuffle(len(labels), seed)
    labels = labels[shuffle]
    # (The tail of balanced_order is not balanced when class sizes differ: it holds only the
    # largest classes.) Removing the last images of each class leaves every class a prefix of
    # itself, so the rest of balanced_order is the rest's own balanced order.
    second = len(labels) - 1 - balanced_order(labels.flip(0))[:n_second]
    kept = torch.ones(len(labels), dtype=torch.bool)
    kept[second] = False
    order = balanced_order(labels)
    rest = order[kept[order]]
    if n_first > len(rest):
        raise ValueError(f"cannot take {n_first} examples besides {n_second} held out of {len(labels)}")
    first = rest if n_first <= 0 else rest[:n_first]
    return shuffle[first].sort().values, shuffle[second].sort().values


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 is divided by 255, floating point is passed through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()
