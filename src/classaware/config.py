"""Command-line options <-> typed, validated stage configurations.

Each stage declares a frozen dataclass; :func:`add_arguments` turns its fields into argparse
options (``--field``) and :func:`from_args` builds the dataclass back, whose ``__post_init__``
validates it before any compute starts. DVC's dictionary unpacking (``${train}`` in a stage's
``cmd``) emits exactly these options: lists as ``--key a b``, booleans as ``--key``/``--no-key``
(``parsing.bool: boolean_optional`` in ``.dvc/config``). A field whose type is itself a
dataclass contributes its own fields, unprefixed, so ``Recipe`` options sit beside ``--arch``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal


def help_field(default: Any = dataclasses.MISSING, help: str = "", positional: bool = False) -> Any:
    """A dataclass field with a help string for ``--help``; ``positional`` makes it an
    argument (``classaware profile quick``) instead of an option."""
    if default is not dataclasses.MISSING and isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple, not a mutable default")
    return dataclasses.field(default=default, metadata={"help": help, "positional": positional})


def _options(cls, defaults=None) -> list[tuple[dataclasses.Field, Any, Any]]:
    """(field, type, default) of every option of ``cls``, nested dataclasses flattened; a nested
    field's defaults come from its parent's default instance (``recipe: Recipe = PRESETS[...]``)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if defaults is None else getattr(defaults, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            out += _options(hints[f.name], None if default is dataclasses.MISSING else default)
        else:
            out.append((f, hints[f.name], default))
    return out


def add_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """Add one ``--name`` option per (flattened) field of dataclass ``cls``."""
    for f, hint, default in _options(cls):
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", "")}
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            kwargs["help"] += f" (default: {_show(default)})"
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is tuple:
            kwargs.update(nargs="*", type=args[0])
        elif origin is Literal:
            kwargs.update(choices=args, type=type(args[0]))
        elif origin in (typing.Union, types.UnionType):  # Optional[X]
            kwargs["type"] = next(a for a in args if a is not type(None))
        else:
            kwargs["type"] = hint
        if f.metadata.get("positional"):
            kwargs.pop("required", None)
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument(f"--{f.name}", **kwargs)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "none"
    return str(value)


def from_args(cls, ns: argparse.Namespace):
    """Build dataclass ``cls`` (and nested dataclass fields) from parsed options."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        value = from_args(hint, ns) if dataclasses.is_dataclass(hint) else getattr(ns, f.name)
        if typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)
