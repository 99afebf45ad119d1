"""Figures of an evaluation, each beside the CSV of exactly what it draws (matplotlib's Agg backend,
no pyplot state; text at 8 pt or more at the figure's own size):

* ``bars_SET.png``: the paper's stacked bars (Fig. 3): per target, the share of D'_F1 that is
  un-fooled, a different mistake or the same mistake, with the same mistake's Wilson interval;
  for a targeted set a second panel splits D'_F1 into target hit, restored, the source's own
  class and other;
* ``eps_ATTACK.png``: different, same and fooled ratios against eps, one line per target (when
  an attack was swept over several eps);
* ``pairs_SET.png``: the y1 -> y2 heat map of the different mistakes per target (up to 20 classes).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import asdict, fields
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files import atomic_path
from ..plots import DIFFERENT_COLOUR, READABLE, SAME_COLOUR, STYLE, UNFOOLED_COLOUR
from .tables import PairRow, SummaryRow

SPLIT_COLOURS = {
    "target_hit": "#2ca02c",
    "split:restored": UNFOOLED_COLOUR,
    "split:source_class": SAME_COLOUR,
    "split:other": DIFFERENT_COLOUR,
}


def slug(text: str) -> str:
    """A file-name-safe form of a set's label."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:80] or "set"


def write_rows(rows, path: Path) -> None:
    """Dataclass rows as a CSV (header from the row type), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        if not rows:
            return
        w = csv.writer(f)
        names = [fl.name for fl in fields(rows[0])]
        w.writerow(names)
        for r in rows:
            d = asdict(r)
            w.writerow(["" if d[n] is None else d[n] for n in names])


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})


def _set_label(r) -> str:
    eps = "" if r.eps is None else f", eps {r.eps:g}"
    q = "" if r.quantize == "none" else f", {r.quantize}"
    return f"{r.attack}{eps}, {r.objective}{q}"


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def bars(rows: list[SummaryRow], path: Path) -> None:
    """The stacked bars of one set (rows of that set only)."""
    targets = list(dict.fromkeys(r.target for r in rows if r.metric == "unfooled"))
    by = {(r.target, r.metric): r for r in rows}
    targeted = any(r.metric == "target_hit" for r in rows)
    with matplotlib.rc_context({**STYLE, **READABLE}):
        fig = Figure(figsize=(max(4.5, 0.9 * len(targets) + 2.5) * (2 if targeted else 1), 3.6))
        axes = fig.subplots(1, 2 if targeted else 1, squeeze=False)[0]
        x = np.arange(len(targets))
        bottom = np.zeros(len(targets))
        for metric, colour, label in (
            ("unfooled", UNFOOLED_COLOUR, "un-fooled"),
            ("different", DIFFERENT_COLOUR, "different mistake"),
            ("same", SAME_COLOUR, "same mistake"),
        ):
            v = np.array([by[(t, metric)].value or 0.0 for t in targets])
            axes[0].bar(x, v, bottom=bottom, color=colour, label=label, width=0.7)
            bottom += v
        same_low = np.array([by[(t, "same")].ci_low or 0.0 for t in targets])
        same_high = np.array([by[(t, "same")].ci_high or 0.0 for t in targets])
        same = np.array([by[(t, "same")].value or 0.0 for t in targets])
        base = bottom - same
        axes[0].errorbar(
            x, base + same, yerr=[same - same_low, same_high - same], fmt="none", ecolor="black", capsize=2, lw=0.8
        )
        n = by[(targets[0], "unfooled")].n if targets else 0
        axes[0].set_title(f"class-aware transfer over D'_F1 (n = {n})")
        for ax in axes:
            ax.set_xticks(x, [_short(t) for t in targets], rotation=30, ha="right")
            ax.set_ylim(0, 1)
            ax.set_ylabel("share of D'_F1")
        axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=3)
        if targeted:
            bottom = np.zeros(len(targets))
            for metric, colour in SPLIT_COLOURS.items():
                v = np.array([by[(t, metric)].value or 0.0 for t in targets])
                axes[1].bar(
                    x, v, bottom=bottom, color=colour, label=metric.replace("split:", "").replace("_", " "), width=0.7
                )
                bottom += v
            axes[1].set_title("targeted split of D'_F1")
            axes[1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=4)
        fig.suptitle(_short(rows[0].source, 60) + " -> targets: " + _set_label(rows[0]))
        fig.tight_layout()
        _save(fig, path)


def eps_lines(rows: list[SummaryRow], path: Path) -> None:
    """Ratios against eps for one attack, objective and quantisation (rows of those sets)."""
    lines = defaultdict(list)
    for r in rows:
        if r.metric in ("different", "same", "fooled") and r.eps is not None:
            lines[(r.target, r.metric)].append((r.eps, r.value, r.ci_low, r.ci_high))
    targets = list(dict.fromkeys(t for t, _ in lines))
    with matplotlib.rc_context({**STYLE, **READABLE}):
        fig = Figure(figsize=(10, 3.4))
        axes = fig.subplots(1, 3)
        colours = matplotlib.colormaps["tab10"].colors
        for ax, metric in zip(axes, ("fooled", "different", "same"), strict=True):
            for k, t in enumerate(targets):
                pts = sorted(p for p in lines[(t, metric)] if p[1] is not None)
                if not pts:
                    continue
                e, v, lo, hi = (np.array(c, dtype=float) for c in zip(*pts, strict=True))
                ax.plot(e, v, marker="o", color=colours[k % 10], label=_short(t))
                ax.fill_between(e, lo, hi, color=colours[k % 10], alpha=0.15, lw=0)
            ax.set_xlabel("eps")
            ax.set_title(f"{metric} over D'_F1")
            ax.set_ylim(0, 1)
        axes[0].set_ylabel("ratio (95% Wilson band)")
        axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
        fig.suptitle(_short(rows[0].source, 60) + ": " + rows[0].attack)
        fig.tight_layout()
        _save(fig, path)


def heatmaps(rows: list[PairRow], num_classes: int, path: Path) -> None:
    """y1 -> y2 heat maps of one set, one panel per target (dense pair rows)."""
    targets = list(dict.fromkeys(r.target for r in rows))
    cols = min(3, len(targets))
    nrows = -(-len(targets) // cols)
    names = {r.y1: r.y1_name for r in rows} | {r.y2: r.y2_name for r in rows}
    ticks = [_short(names.get(k, str(k)), 12) for k in range(num_classes)]
    with matplotlib.rc_context({**STYLE, **READABLE}):
        fig = Figure(figsize=(4.2 * cols + 0.8, 4.0 * nrows))
        axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).flatten()
        for ax, t in zip(axes, targets, strict=False):
            m = np.zeros((num_classes, num_classes))
            for r in rows:
                if r.target == t:
                    m[r.y1, r.y2] = r.count
            im = ax.imshow(m, cmap="Oranges")
            ax.set_xticks(range(num_classes), ticks, rotation=90)
            ax.set_yticks(range(num_classes), ticks)
            ax.set_xlabel("F2(x') = y2")
            ax.set_ylabel("F1(x') = y1")
            ax.set_title(_short(t, 40))
            ax.grid(False)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="different mistakes")
        for ax in axes[len(targets) :]:
            ax.set_visible(False)
        fig.suptitle("different mistakes y1 -> y2: " + _set_label(rows[0]))
        fig.tight_layout()
        _save(fig, path)


def draw_all(summary: list[SummaryRow], pair_rows: list[PairRow], num_classes: int, folder: Path) -> list[Path]:
    """Every figure of an evaluation, each with its CSV, in ``folder``; the PNG paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    by_set = defaultdict(list)
    for r in summary:
        by_set[_set_label(r)].append(r)
    for label, rows in by_set.items():
        targets_rows = [
            r
            for r in rows
            if r.metric in ("unfooled", "different", "same", "target_hit") or r.metric.startswith("split:")
        ]
        if not targets_rows:
            continue
        path = folder / f"bars_{slug(label)}.png"
        bars(targets_rows, path)
        write_rows(targets_rows, path.with_suffix(".csv"))
        written.append(path)
    sweeps = defaultdict(list)
    for r in summary:
        sweeps[(r.attack, r.objective, r.quantize)].append(r)
    for (attack, objective, quantize), rows in sweeps.items():
        if len({r.eps for r in rows}) > 1:
            path = folder / f"eps_{slug(f'{attack}_{objective}_{quantize}')}.png"
            chosen = [r for r in rows if r.metric in ("different", "same", "fooled")]
            eps_lines(chosen, path)
            write_rows(chosen, path.with_suffix(".csv"))
            written.append(path)
    if num_classes <= 20:
        pairs_by_set = defaultdict(list)
        for r in pair_rows:
            pairs_by_set[_set_label(r)].append(r)
        for label, rows in pairs_by_set.items():
            path = folder / f"pairs_{slug(label)}.png"
            heatmaps(rows, num_classes, path)
            write_rows(rows, path.with_suffix(".csv"))
            written.append(path)
    return written
