"""Progress of the long loops (training epochs and batches, attack batches, Dist's scan, grid
cells), one way for all of them: a tqdm bar on a terminal, and where there is none (SLURM's
and ``classaware repro``'s logs, CI) a log line at most every :data:`INTERVAL_S` seconds with
the done count, the total, the time left and the rate.

Both are tqdm's own: on a terminal a bar that clears itself; elsewhere tqdm writes its status to
a file object that turns each redraw into a log record, with ``delay`` (a loop shorter than the
interval says nothing), ``mininterval`` and ``maxinterval`` (at most one line per interval, also
from tqdm's monitor thread) and a ``bar_format`` without the bar. tqdm only counts iterations,
so no loop waits for the device because of it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)
INTERVAL_S = 30.0  # seconds between two log lines of one loop (read when a loop starts)
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left, {rate_fmt}"
T = TypeVar("T")


class _LogLines:
    """A file for tqdm: each status line it writes ("\\r" + status) becomes one log record (but
    for a redraw at the same count, as when the loop closes)."""

    def __init__(self):
        self.last = ""

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        count = line.split(" (", 1)[0]  # "desc: n/total"
        if line and count != self.last:
            log.info("%s", line)
            self.last = count

    def flush(self) -> None:
        pass


def on_terminal() -> bool:
    """Whether progress goes to a person's terminal (stderr, where tqdm draws)."""
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, unit: str = "it", total: int | None = None) -> Iterable[T]:
    """``iterable`` as it is, reporting its progress (see the module docstring). ``total`` defaults
    to ``len(iterable)``; a loop that ends early (a ``break``) logs where it stopped."""
    total = len(iterable) if total is None else total
    if on_terminal():
        return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False)
    return tqdm(
        iterable,
        desc=desc,
        unit=unit,
        total=total,
        file=_LogLines(),
        disable=False,  # tqdm's default (None) turns itself off when the output is not a terminal
        delay=INTERVAL_S,
        mininterval=INTERVAL_S,
        maxinterval=INTERVAL_S,
        position=0,  # no cursor movement between nested loops: every line is a record of its own
        leave=True,  # the last line says where the loop ended
        bar_format=LOG_FORMAT,
    )
