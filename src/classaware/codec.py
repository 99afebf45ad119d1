"""Typed records on disk: a frozen dataclass <-> a JSON or tensor file, with a format version.

A record class sets ``FORMAT = "classaware-<name>/<version>"`` and derives from
:class:`JsonRecord` (numbers and strings, for metrics a person or ``dvc metrics`` reads) or
:class:`TensorRecord` (``torch.save``, for tensors). ``save`` writes atomically with the format
beside the fields; ``load`` refuses a file of another format or version, and rebuilds every
nested dataclass, tuple and dict from the class's type hints, refusing missing or unknown
fields. So the writer and every reader of an artifact share one definition, and an old or
foreign file fails with its name and the mismatch rather than a ``KeyError`` deep in a reader.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

from .config import type_hints
from .files import load_json, load_tensors, save_json, save_tensors


class FormatError(ValueError):
    """A file that is not the record it should be: other format, version or fields."""


def encode(obj: Any) -> Any:
    """Plain data of ``obj``: dataclasses become dicts of their fields, tuples lists; tensors
    and scalars are kept. Shallow where nothing changes, so large tensors are never copied."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {key: encode(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(value) for value in obj]
    return obj


def decode(hint: Any, value: Any, where: str = "") -> Any:
    """``value`` (plain data) as type ``hint``: dataclasses, ``dict[str, X]``, ``tuple[X, ...]``,
    ``list[X]``, ``X | None``, ``Literal``, tensors and scalars (an int is accepted for a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise FormatError(
                f"{where or hint.__name__}: expected a mapping of {hint.__name__}'s fields, got {type(value).__name__}"
            )
        fields = {f.name: f for f in dataclasses.fields(hint)}
        required = {
            n
            for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        unknown, missing = set(value) - set(fields), required - set(value)
        if unknown or missing:
            raise FormatError(
                f"{where or hint.__name__}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}"
            )
        return hint(**{name: decode(type_hints(hint)[name], item, f"{where}.{name}") for name, item in value.items()})
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return decode(next(a for a in args if a is not type(None)), value, where)
    if origin is Literal:
        if value not in args:
            raise FormatError(f"{where}: expected one of {args}, got {value!r}")
        return value
    if origin is dict:
        _need(value, dict, where)
        return {key: decode(args[1], item, f"{where}[{key!r}]") for key, item in value.items()}
    if origin in (tuple, list):
        _need(value, (list, tuple), where)
        items = [decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is float:
        _need(value, (int, float), where)
        return float(value)
    if hint is Any:
        return value
    _need(value, hint, where)
    return value


def _need(value: Any, kind: type | tuple[type, ...], where: str) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise FormatError(f"{where}: expected {kind}, got {type(value).__name__} {value!r:.60}")


class _Record:
    FORMAT: ClassVar[str]
    WHAT: ClassVar[str] = "result file"  # how errors name the file

    @classmethod
    def _from_plain(cls, plain: Any, path: Path):
        if not isinstance(plain, dict) or plain.get("format") != cls.FORMAT:
            found = plain.get("format") if isinstance(plain, dict) else type(plain).__name__
            raise FormatError(f"{path} is not a {cls.FORMAT} file (found {found!r}); rerun the stage that makes it")
        try:
            return decode(cls, {k: v for k, v in plain.items() if k != "format"}, cls.__name__)
        except FormatError as exc:
            raise FormatError(f"{path}: {exc}") from exc


class JsonRecord(_Record):
    """A record stored as indented, key-sorted JSON."""

    def save(self, path: str | Path) -> None:
        save_json({"format": self.FORMAT, **encode(self)}, path)

    @classmethod
    def load(cls, path: str | Path):
        return cls._from_plain(load_json(path, cls.WHAT), Path(path))


class TensorRecord(_Record):
    """A record stored with ``torch.save`` and read back with ``weights_only=True``."""

    def save(self, path: str | Path) -> None:
        save_tensors({"format": self.FORMAT, **encode(self)}, path)

    @classmethod
    def load(cls, path: str | Path):
        return cls._from_plain(load_tensors(path, cls.WHAT), Path(path))
