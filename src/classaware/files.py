"""Atomic writes and safe reads of every artifact the pipeline produces.

A crash mid-write must never leave a half-written file where a finished one is expected
(DVC would hash it, a resumed run would trust it): each writer writes a temporary file in
the destination's folder and ``os.replace``s it into place, which is atomic on POSIX. The
temporary file is removed when the write fails; one left by a killed process (SIGKILL, power
loss) is removed by the next write of the same destination.
Tensors are read back with ``torch.load(weights_only=True)``: artifacts hold tensors,
numbers, strings, lists and dicts only, never pickled code.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

_UMASK = os.umask(0)
os.umask(_UMASK)


def check_writable(path: str | os.PathLike, kind: str = "file") -> None:
    """Raise ValueError unless this process can create or replace ``path`` as a ``kind``
    ("file" or "dir"): meant to run before a stage computes anything. Nothing is created."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise ValueError(f"output {path} is a folder; give a file path")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ValueError(f"output {path} is a file; give a folder path")
    folder = path if kind == "dir" and path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot create output {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write output {path}: {folder} is not writable")


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary files of :func:`atomic_path` for ``path`` left behind by a killed writer."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path`` atomically.
    Temporaries of ``path`` left by an earlier, killed writer are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporaries(path):
        stale.unlink(missing_ok=True)
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
        reason = str(exc).strip().split("\n")[0][:160]
        raise ValueError(f"{what} {path} is corrupt or not a classaware file ({type(exc).__name__}: {reason})") from exc


def save_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically (stable bytes for DVC hashes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_bytes(data: bytes, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, parsed by libyaml's C parser where PyYAML was built with it
    (the same result, about 10 times faster: the commands read params and dvc.lock often)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_json(path: str | os.PathLike, what: str = "metrics file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return json.loads(path.read_text())
