"""How numbers and tables are written in the Markdown the pipeline produces: one way each."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def number(x: float | str | None, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals; "n/a" for a missing value (None, or an empty CSV cell)."""
    return "n/a" if x is None or x == "" else f"{float(x):.{digits}f}"


def interval(low: float | str | None, high: float | str | None, digits: int = 3) -> str:
    """A range or an interval, written the one way the pipeline writes them: "[-0.949, -0.838]"."""
    return f"[{number(low, digits)}, {number(high, digits)}]"


def percent(x: float | None, digits: int = 1) -> str:
    """A proportion as a percentage without the sign: 0.9541 -> "95.4"; "n/a" for None."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def markdown_table(header: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """The lines of a pipe table; a cell must not hold a pipe (it would split the cell)."""
    lines = [header, *([str(cell) for cell in row] for row in rows)]
    if any("|" in str(cell) for line in lines for cell in line):
        raise ValueError("a Markdown table cell holds a '|'")
    return [
        f"| {' | '.join(map(str, header))} |",
        "|" + "---|" * len(header),
        *(f"| {' | '.join(line)} |" for line in lines[1:]),
    ]


def natural_key(name: str) -> list:
    """Sort key that orders the numbers inside a name by value: S3.2 < S3.5a < S3.10 < S4.1.
    (Splitting on digit runs alternates text and number, so two keys compare like with like.)"""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name))]


def padded(name: str, width: int = 2) -> str:
    """``name`` with every number zero-padded to ``width`` digits, so that names sort by plain
    string order as :func:`natural_key` sorts them: S3.1 -> S03.01, S3.10 -> S03.10, S3.5a -> S03.05a.
    (File names for tools that sort them as strings, such as `dvc metrics show`.)"""
    return re.sub(r"\d+", lambda m: m[0].zfill(width), name)


def unpadded(name: str) -> str:
    """The inverse of :func:`padded` for names whose numbers have no leading zeros: S03.01 -> S3.1."""
    return re.sub(r"\d+", lambda m: str(int(m[0])), name)
