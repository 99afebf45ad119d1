"""Command-line options <-> typed, validated stage configurations: the CLI's one validation layer.

Each stage declares a frozen dataclass deriving from :class:`Options`; :func:`add_arguments`
turns its fields into argparse options (``--field``, and ``--field-name`` for a field with
underscores: both spellings work everywhere) and :func:`from_args` builds the dataclass
back. DVC's dictionary unpacking (``${train}`` in a stage's ``cmd``) emits exactly these
options: lists as ``--key a b``, booleans as ``--key``/``--no-key`` (``parsing.bool:
boolean_optional`` in ``.dvc/config``). A field whose type is itself a dataclass contributes its
own fields, unprefixed, so ``Recipe`` options sit beside ``--arch``.

Validation happens on construction, before any compute: every number (and every item of a
tuple of numbers) must be a number of its field's type (not None or a bool), finite and inside
the range its field declares (``ge``, ``gt``, ``le``), strings must match their ``choices`` or
``pattern`` (whose error says in words what is ``expected``, never the regular expression),
``nonempty`` tuples need a value; then the class's own :meth:`Options.check` looks at how fields
relate. ``--help`` shows each default once: the help text's own "(default: ...)" where it has
one, else the field's default. Fields declared
``output="file"`` or ``output="dir"`` are what :func:`outputs` returns, so the CLI can check
that they are writable before a stage starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import operator
import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"
DEVICE_EXPECTED = "auto, cpu, cuda or cuda:N (N a device number, e.g. cuda:0)"


def help_field(
    default: Any = dataclasses.MISSING,
    help: str = "",
    positional: bool = False,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    nonempty: bool = False,
    choices: typing.Iterable[str] | None = None,
    pattern: str | None = None,
    expected: str | None = None,
    output: Literal["file", "dir"] | None = None,
) -> Any:
    """A dataclass field with a help string for ``--help`` and the constraints :class:`Options`
    checks (see the module docstring); ``positional`` makes it an argument (``classaware
    profile quick``) instead of an option. A ``pattern`` needs ``expected``: what it accepts, in
    the words an error message gives."""
    if default is not dataclasses.MISSING and isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple, not a mutable default")
    if (pattern is None) != (expected is None):
        raise TypeError("a pattern needs `expected`, the words that say what it accepts (and only a pattern has them)")
    metadata = {
        "help": help,
        "positional": positional,
        "ge": ge,
        "gt": gt,
        "le": le,
        "nonempty": nonempty,
        "choices": None if choices is None else tuple(choices),
        "pattern": pattern,
        "expected": expected,
        "output": output,
    }
    return dataclasses.field(default=default, metadata=metadata)


def device_field() -> Any:
    """The ``--device`` option every computing stage has."""
    return help_field(
        "auto", "auto (CUDA when available), cpu, cuda or cuda:N", pattern=DEVICE_PATTERN, expected=DEVICE_EXPECTED
    )


def data_field() -> Any:
    """The ``--data`` option of every stage that reads the images: the canonical file ``prepare`` writes."""
    return help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")


def models_dir_field() -> Any:
    """The ``--models_dir`` option of every stage that loads zoo models by reference."""
    return help_field(Path("models"), "folder of the zoo's checkpoints")


def _value_problem(name: str, value: Any, meta: typing.Mapping) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return f"{name} must be a finite number, got {value}"
        for key, word, holds in (("ge", ">=", operator.ge), ("gt", ">", operator.gt), ("le", "<=", operator.le)):
            bound = meta.get(key)
            if bound is not None and not holds(value, bound):
                return f"{name} must be {word} {bound}, got {value}"
    if isinstance(value, str):
        if meta.get("choices") is not None and value not in meta["choices"]:
            return f"{name} must be one of {', '.join(meta['choices'])}; got {value!r}"
        if meta.get("pattern") is not None and not re.fullmatch(meta["pattern"], value):
            return f"{name} must be {meta['expected']}; got {value!r}"
    return None


def _kind_problem(name: str, value: Any, hint: Any) -> str | None:
    """A value of another kind in a numeric field (None, a bool, a string, a float for an int):
    the ranges below would let it through, and the stage would fail later."""
    kind = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
    if kind not in (int, float):
        return None
    if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
        return f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}"
    return None


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, once per class: the annotations are strings (``from
    __future__ import annotations``), and evaluating them costs more than building the options."""
    return typing.get_type_hints(cls)


def field_problems(obj) -> list[str]:
    """What is wrong with each field of dataclass ``obj`` by its own declared type and constraints."""
    problems = []
    hints = type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("nonempty") and not value:
            problems.append(f"{f.name} needs at least one value")
        for item in value if isinstance(value, tuple) else (value,):
            problem = _kind_problem(f.name, item, hints[f.name]) or _value_problem(f.name, item, f.metadata)
            if problem:
                problems.append(problem)
                break
    return problems


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of every option set: validated on construction (see the module docstring).

    Lists given for tuple fields become tuples, so ``Recipe(milestones=[3, 7])`` works."""

    WHAT: ClassVar[str | None] = None  # how errors name the option set (default: the class's name)

    def __post_init__(self):
        hints = type_hints(type(self))
        for f in dataclasses.fields(self):
            if typing.get_origin(hints[f.name]) is tuple and isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        problems = field_problems(self) or self.check()
        if problems:
            raise ValueError(f"invalid {self.WHAT or type(self).__name__.lower()} options: " + "; ".join(problems))

    def check(self) -> list[str]:
        """Problems in how the fields relate; each field is already valid on its own."""
        return []


def outputs(obj) -> list[tuple[Path, str]]:
    """(path, "file" or "dir") of every output field of ``obj`` that is set, nested ones included."""
    found = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            found += outputs(value)
        elif f.metadata.get("output") and value is not None:
            found.append((Path(value), f.metadata["output"]))
    return found


def _options(cls, defaults=None) -> list[tuple[dataclasses.Field, Any, Any]]:
    """(field, type, default) of every option of ``cls``, nested dataclasses flattened; a nested
    field's defaults come from its parent's default instance (``schedule: Schedule = SECTION4_SCHEDULE``)."""
    hints = type_hints(cls)
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
            if "(default:" not in kwargs["help"]:  # the help text may say it in its own words
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
            parser.add_argument(*option_strings(f.name), dest=f.name, **kwargs)


def option_strings(name: str) -> list[str]:
    """``--name``, and ``--name-with-hyphens`` where the field's name has underscores: DVC's
    unpacking writes the first (a params key), most command-line tools' users type the second."""
    hyphens = name.replace("_", "-")
    return [f"--{name}"] + ([f"--{hyphens}"] if hyphens != name else [])


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "none"
    return str(value)


def from_args(cls, ns: argparse.Namespace):
    """Build dataclass ``cls`` (and nested dataclass fields) from parsed options."""
    hints = type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        value = from_args(hint, ns) if dataclasses.is_dataclass(hint) else getattr(ns, f.name)
        if typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)
