"""Atomic writes and safe reads of every artifact the pipeline produces.

A crash mid-write must never leave a half-written file where a finished one is expected
(DVC would hash it, a resumed run would trust it): each writer writes a temporary file in
the destination's folder and ``os.replace``s it into place, which is atomic on POSIX.
Tensors are read back with ``torch.load(weights_only=True)``: artifacts hold tensors,
numbers, strings, lists and dicts only, never pickled code.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_tensors(obj: Any, path: str | os.PathLike) -> None:
    """torch.save ``obj`` (tensors, numbers, strings, lists, dicts) atomically; the same
    ``obj`` always gives the same bytes, so DVC hashes of reruns agree."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)  # through a handle: saving by name embeds the (temporary) file name


def load_tensors(path: str | os.PathLike, what: str = "artifact") -> Any:
    """Load a file written by :func:`save_tensors` on the CPU, with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{what} {path} is corrupt or not a classaware file: {exc}") from exc


def save_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically (stable bytes for DVC hashes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def load_json(path: str | os.PathLike, what: str = "metrics file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return json.loads(path.read_text())
