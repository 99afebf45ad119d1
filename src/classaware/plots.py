"""Figures 3, 4 and 5 of the paper, drawn with matplotlib's Agg backend from plain Python data.

Each function takes the numbers the ``figures`` stage prepared (a :class:`Fig3Column` of
``analysis.fig3_rows`` per source, a :class:`Fig4Data` of decision planes, a :class:`Fig5Panel`
of :class:`Fig5Line` per source and attack) and a PNG path. Figures are built as
``matplotlib.figure.Figure`` objects, never through pyplot, under a local style
(``rc_context``), so no global state leaks; the PNG carries no software version or date, so the
same inputs always give the same bytes. Figs. 3, 4 and 5 are sized for the report's width
(``stages/report.py``): shrunk to it, their smallest text is still 8 pt or more.
"""

from __future__ import annotations

import functools
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedFormatter, FixedLocator, MaxNLocator, NullFormatter, NullLocator

from .analysis import Fig3Row
from .boundary import DIFFERENT, REGION_NAMES, SAME, SOURCE_RIGHT, UNFOOLED
from .files import atomic_path

DPI = 200
STYLE = {
    "font.size": 7,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}
SAME_COLOUR, DIFFERENT_COLOUR, UNFOOLED_COLOUR, DIST_COLOUR = "#1f3b73", "#f28e2b", "#bdbdbd", "#7f7f7f"
# Fig. 4's four regions: the three cases in Fig. 3's colours, and white where F1 is not fooled
# (nothing to compare there), so that no two regions are alike
REGION_COLOURS = {UNFOOLED: UNFOOLED_COLOUR, DIFFERENT: DIFFERENT_COLOUR, SAME: SAME_COLOUR, SOURCE_RIGHT: "#ffffff"}
CLASS_COLOURS = tuple(matplotlib.colormaps["tab10"].colors)
# Figs. 3, 4 and 5: text sizes that stay at 8 pt or more when the report shrinks the figure to its width
READABLE = {
    "font.size": 8.5,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8.5,
    "legend.title_fontsize": 8.5,
}
NUDGE = 0.05  # Fig. 5: the lines' points lie within +-5% of their eps
EPS_MARGIN = 1.3  # Fig. 5: the eps axis runs from the smallest eps / 1.3 to the largest x 1.3
FIG4_MAX_WIDTH = 10.5  # inches: at the report's width (about 11 in) its 8 pt stay 8 pt
# Fig. 5: each target's colour says how it relates to F1, from the closest relation to the farthest
GROUP_COLOURS = {
    "early version": "#d62728",
    "w:same": "#ff7f0e",
    "w:diff": "#2ca02c",
    "other architecture, same family": "#1f77b4",
    "other family": "#8c8c8c",
}


def _styled(draw):
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _wrapped(text: str, fig: Figure, fontsize: float) -> str:
    """``text`` in lines that fit the figure's width (a character is about 0.6 em wide)."""
    return textwrap.fill(text, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))


def _fit(name: str, width: float, fontsize: float) -> str:
    """A panel's title in lines that fit ``width`` inches, broken after underscores (model names
    have no spaces): "resnet10_w8_wdiff" -> "resnet10_w8_\nwdiff" where it is too long."""
    chars, lines = int(width * 72 / (0.6 * fontsize)), [""]
    for part in re.split(r"(?<=_)", name):
        if lines[-1] and len(lines[-1]) + len(part) > chars:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def _values(xs) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in xs], dtype=float)


def _whiskers(ax, y, value, low, high) -> None:
    """Horizontal 95% whiskers at rows ``y`` around ``value`` (None or NaN: none drawn)."""
    value, low, high = _values(value), _values(low), _values(high)
    ok = np.isfinite(value) & np.isfinite(low) & np.isfinite(high)
    ax.errorbar(
        value[ok],
        np.asarray(y)[ok],
        xerr=[value[ok] - low[ok], high[ok] - value[ok]],
        fmt="none",
        ecolor="black",
        elinewidth=0.7,
        capsize=1.5,
        capthick=0.7,
    )


@dataclass(frozen=True)
class Fig3Column:
    """One source's column of Fig. 3: its rows per attack, the targets in the same order."""

    source: str
    attacks: dict[str, list[Fig3Row]]


@dataclass(frozen=True)
class Fig4Data:
    """Fig. 4's decision planes: ``labels[m][v][u]`` per model (the source F1 first) and, per
    F2, the grid of ``boundary.transfer_regions`` codes named by ``region_names``."""

    source: str
    models: list[str]
    classes: list[str]
    true_label: int
    image_index: int
    unit: float
    all_right: bool
    dataset: str
    coords: list[float]
    labels: list[list[list[int]]]
    region_names: list[str]
    regions: dict[str, list[list[int]]]


@dataclass(frozen=True)
class Fig5Line:
    """One target's ratios over the eps sweep, with their 95% intervals, and its group: its
    relation to F1 ("early version", "w:same", "w:diff", "other architecture, same family",
    "other family"; see :data:`GROUP_COLOURS`)."""

    target: str
    relation: str  # ModelInfo.relation: "v:12", "w:same", "w:diff", "other"
    group: str
    eps: list[float]
    same: list[float | None]
    same_ci_low: list[float | None]
    same_ci_high: list[float | None]
    different: list[float | None]
    different_ci_low: list[float | None]
    different_ci_high: list[float | None]


@dataclass(frozen=True)
class Fig5Panel:
    source: str
    attack: str
    lines: list[Fig5Line]


def _counts(rows: list[Fig3Row]) -> str:
    """|D'_F1| of one source and attack: one number (every F2 sees the same AEs), or its range."""
    ns = sorted({r.n for r in rows})
    return f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"


def _dist_panel(ax, rows: list[Fig3Row]) -> None:
    y = np.arange(len(rows))
    dist = _values(r.dist for r in rows)
    ax.barh(y, np.nan_to_num(dist), color=DIST_COLOUR, height=0.7)
    _whiskers(ax, y, dist, [r.dist_ci_low for r in rows], [r.dist_ci_high for r in rows])
    for yi in y[np.isnan(dist)]:
        ax.text(0, yi, " n/a", ha="left", va="center")
    ax.set_title("Dist(F1, F2), l2")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=3))


def _transfer_panel(ax, rows: list[Fig3Row], attack: str) -> None:
    y = np.arange(len(rows))
    same, different, unfooled = (_values(getattr(r, k) for r in rows) for k in ("same", "different", "unfooled"))
    ax.barh(y, same, color=SAME_COLOUR, height=0.7)
    ax.barh(y, different, left=same, color=DIFFERENT_COLOUR, height=0.7)
    ax.barh(y, unfooled, left=same + different, color=UNFOOLED_COLOUR, height=0.7)
    for kind in ("same", "fooled"):
        _whiskers(ax, y, [getattr(r, kind) for r in rows], *([getattr(r, f"{kind}_ci_{end}") for r in rows]
                                                            for end in ("low", "high")))  # fmt: skip
    for yi in y[np.isnan(same)]:
        ax.text(0, yi, " no AE fooled F1", ha="left", va="center")
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
    ax.set_title(f"{attack}\n|D'_F1| = {_counts(rows)}")


FIG3_WIDTH = 10.5  # inches: at the report's width (about 11 in) its 8 pt stay 8 pt, as Fig. 4's


@_styled
def fig3(columns: list[Fig3Column], path: str | Path, *, dataset: str, eps: float) -> None:
    """Fig. 3: class-aware transferability at one eps, one block of panels per source F1.

    Each block's rows are the targets F2 of ``analysis.fig3_rows``, by Dist descending from the
    top (the most similar F2 at the bottom; the same order for every attack of a source), named
    once on the left with their relation to F1. The first panel shows Dist(F1, F2) with its 95%
    interval; each further panel one attack as stacked bars per F2: same mistake (left, dark),
    different mistake (middle), un-fooled (right, light), with 95% Wilson whiskers on the same
    and fooled (= same + different) ends. |D'_F1|, the AEs that fooled F1 (the same for every F2
    of an attack), is in the attack's title. Text is 8 pt or more once the report shrinks the
    figure to its width; the bars are horizontal so that no label is turned.
    """
    n_attacks = max(len(c.attacks) for c in columns)
    with matplotlib.rc_context(READABLE):
        heights = [0.2 * max(len(rows) for rows in c.attacks.values()) + 1.1 for c in columns]
        fig = _figure(FIG3_WIDTH, sum(heights) + 1.6)
        blocks = fig.subfigures(len(columns), 1, height_ratios=heights, squeeze=False)[:, 0]
        for block, c in zip(blocks, columns, strict=True):
            runs = list(c.attacks.items())
            order = [r.target for r in runs[0][1]]
            if any([r.target for r in rows] != order for _, rows in runs):
                raise ValueError(f"source {c.source}: every attack must list the targets in the same order")
            axes = block.subplots(1, 1 + n_attacks, sharey=True, squeeze=False)[0]
            _dist_panel(axes[0], runs[0][1])
            for ax, (attack, rows) in zip(axes[1:], runs, strict=False):  # a source may have fewer attacks
                _transfer_panel(ax, rows, attack)
            for ax in axes[1 + len(runs) :]:
                ax.set_axis_off()
            axes[0].set_yticks(np.arange(len(order)), [f"{r.target} ({r.relation})" for r in runs[0][1]])
            axes[0].set_ylim(len(order) - 0.5, -0.5)  # the first row (largest Dist) at the top
            for ax in axes:
                ax.grid(axis="y", visible=False)
            block.suptitle(f"F1: {c.source}", fontsize=READABLE["axes.titlesize"], fontweight="bold")
        handles = [
            Patch(color=SAME_COLOUR, label="same mistake"),
            Patch(color=DIFFERENT_COLOUR, label="different mistake"),
            Patch(color=UNFOOLED_COLOUR, label="un-fooled"),
        ]
        caption = ("F2 on the AEs that fooled F1 (D'_F1), by Dist(F1, F2) descending: the most similar at the "
                   "bottom. Whiskers: 95% intervals (Wilson for the ratios, on the same and the fooled ends).")  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center", ncols=3, title=_wrapped(caption, fig, 8.5))
        title = f"Fig. 3: class-aware transferability, l2 eps = {eps:g} - {dataset}"
        fig.suptitle(_wrapped(title, fig, 9), fontsize=9)
        _save(fig, path)


@_styled
def fig4(plane: Fig4Data, path: str | Path) -> None:
    """Fig. 4: decision planes of one test image (as in Liu et al.).

    First row: each model's predicted class (one fixed colour per class in every panel);
    second row: for each F2, where F1 is fooled, whether F2 is un-fooled or makes a different
    or the same mistake (white: F1 is not fooled). The image is (0, 0); the axes are in l2
    distance (the plane's coordinates times its unit), with the tick labels on the outer panels.
    """
    models, classes, coords = plane.models, plane.classes, plane.coords
    if len(classes) > len(CLASS_COLOURS):
        raise ValueError(f"at most {len(CLASS_COLOURS)} classes can be coloured, got {len(classes)}")
    half = plane.unit / 2
    extent = (coords[0] * plane.unit - half, coords[-1] * plane.unit + half) * 2
    with matplotlib.rc_context(READABLE):
        panel = min(
            1.55, (FIG4_MAX_WIDTH - 1.9) / len(models)
        )  # narrower panels for many models: the text keeps its size
        fig = _figure(panel * len(models) + 1.9, 2 * panel + 1.3)
        axes = fig.subplots(2, len(models), squeeze=False, sharex=True, sharey=True)

        def show(ax, grid, colours, title):
            ax.imshow(
                np.asarray(grid),
                cmap=ListedColormap(colours),
                vmin=-0.5,
                vmax=len(colours) - 0.5,
                origin="lower",
                extent=extent,
                interpolation="nearest",
            )
            ax.plot(0, 0, marker="x", color="black", markersize=7, markeredgewidth=1.8)
            ax.set_title(_fit(title, panel, READABLE["axes.titlesize"]))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, symmetric=True))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, symmetric=True))
            ax.grid(False)
            for spine in ("top", "right"):
                ax.spines[spine].set_visible(True)  # white regions need the frame

        for i, (ax, model, grid) in enumerate(zip(axes[0], models, plane.labels, strict=True)):
            show(ax, grid, CLASS_COLOURS[: len(classes)], f"{model} (F1)" if i == 0 else model)
        region_colours = [REGION_COLOURS[k] for k in range(len(REGION_NAMES))]
        for ax, model in zip(axes[1, 1:], models[1:], strict=True):
            show(ax, plane.regions[model], region_colours, model)  # F2: the legend's title says so
        axes[1, 0].set_axis_off()
        axes[1, 0].legend(
            handles=[
                Patch(facecolor=c, edgecolor="black", linewidth=0.5, label=n)
                for c, n in zip(region_colours, REGION_NAMES, strict=True)
            ],
            loc="center",
            title="row 2: F2 where\nF1 is fooled",
        )
        for ax in axes[:, 0]:
            ax.set_ylabel("v, along d2 (l2)")
        for ax in axes[-1]:
            ax.set_xlabel("u, along d1 (l2)")
        axes[0, 0].tick_params(labelbottom=True)  # the top row's first panel has no panel below it
        present = sorted({int(k) for grid in plane.labels for row in grid for k in row})
        fig.legend(
            handles=[Patch(color=CLASS_COLOURS[k], label=classes[k]) for k in present],
            loc="outside right center",  # below the title's line, which spans the figure
            title="row 1:\npredicted class",
        )
        note = "" if plane.all_right else " (not every model classifies it right)"
        title = (f"Fig. 4: decision planes of test image {plane.image_index}, true class "
                 f"{classes[plane.true_label]}{note} - {plane.dataset}")  # fmt: skip
        fig.suptitle(_wrapped(title, fig, 9), fontsize=9)
        caption = (f"d1: F1's non-targeted gradient direction, d2: a random orthogonal direction; one grid step = "
                   f"{plane.unit:g} in l2 (paper: 0.02); x: the image itself")  # fmt: skip
        fig.supxlabel(_wrapped(caption, fig, 8.5), fontsize=8.5)
        _save(fig, path)


@_styled
def fig5(panels: list[Fig5Panel], path: str | Path, *, dataset: str) -> None:
    """Fig. 5: the same-mistake and the different-mistake ratio against eps, in rows of their own
    (per source: same, then different) by a column per attack. One line per target F2, coloured
    by its relation to F1 (:data:`GROUP_COLOURS`), with its 95% Wilson interval at every eps;
    eps on a log scale, with a grid line at every eps. The lines are nudged apart by at most
    :data:`NUDGE` (5%) of eps, so that the intervals do not hide each other while every point
    stays plainly at its eps's grid line (the sweep's eps are a factor 2 or more apart).
    """
    sources = list(dict.fromkeys(p.source for p in panels))
    attacks = list(dict.fromkeys(p.attack for p in panels))
    kinds = (("same", "same-mistake ratio"), ("different", "different-mistake ratio"))
    groups = [g for g in GROUP_COLOURS if any(line.group == g for p in panels for line in p.lines)]
    unknown = {line.group for p in panels for line in p.lines} - set(GROUP_COLOURS)
    if unknown:
        raise ValueError(f"Fig. 5 lines must be in groups {', '.join(GROUP_COLOURS)}; got {', '.join(sorted(unknown))}")
    with matplotlib.rc_context(READABLE):
        fig = _figure(2.35 * len(attacks) + 0.9, 1.85 * 2 * len(sources) + 1.5)
        axes = fig.subplots(2 * len(sources), len(attacks), sharex=True, sharey="row", squeeze=False)
        for p in panels:
            row = 2 * sources.index(p.source)
            lines = sorted(p.lines, key=lambda line: -list(GROUP_COLOURS).index(line.group))  # the closest on top
            for (kind, label), ax in zip(kinds, axes[row : row + 2, attacks.index(p.attack)], strict=True):
                for k, line in enumerate(lines):
                    # within +-NUDGE of its eps in all (a tenth of the gap to the next eps at most)
                    nudge = 1 + NUDGE * (2 * k / max(len(lines) - 1, 1) - 1)
                    y = _values(getattr(line, kind))
                    low, high = _values(getattr(line, f"{kind}_ci_low")), _values(getattr(line, f"{kind}_ci_high"))
                    ax.errorbar(
                        np.asarray(line.eps) * nudge,
                        y,
                        yerr=[np.nan_to_num(y - low), np.nan_to_num(high - y)],
                        color=GROUP_COLOURS[line.group],
                        marker="o",
                        markersize=3,
                        linewidth=1.1,
                        elinewidth=0.8,
                        capsize=1.5,
                    )
                ax.set_title(f"F1: {p.source} | {p.attack}")
                ax.set_xscale("log")
                ticks = sorted({e for line in p.lines for e in line.eps})
                ax.xaxis.set_major_locator(FixedLocator(ticks))
                ax.xaxis.set_major_formatter(FixedFormatter([f"{e:g}" for e in ticks]))
                ax.xaxis.set_minor_locator(NullLocator())  # the log axis's minor ticks read as more eps
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_xlim(ticks[0] / EPS_MARGIN, ticks[-1] * EPS_MARGIN)
                if attacks.index(p.attack) == 0:
                    ax.set_ylabel(label)
        for row, (source, (kind, _)) in enumerate((s, k) for s in sources for k in kinds):
            tops = [v for p in panels if p.source == source for line in p.lines
                    for v in (*getattr(line, kind), *getattr(line, f"{kind}_ci_high")) if v is not None]  # fmt: skip
            axes[row, 0].set_ylim(0, 1.05 * max(tops, default=1.0) or 1.0)  # the row shares it
        for ax in axes[-1]:
            ax.set_xlabel("eps (l2, log scale)")
        early = ", ".join(sorted({line.relation for p in panels for line in p.lines if line.group == "early version"}))
        names = {g: f"{g} ({early})" if g == "early version" else g for g in groups}
        handles = [Line2D([], [], color=GROUP_COLOURS[g], marker="o", markersize=4, label=names[g]) for g in groups]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=len(handles),
            title="each target F2, by its relation to F1: ratios over D'_F1 (the AEs that fooled F1), "
            "bars: 95% Wilson intervals",
        )
        title = f"Fig. 5: class-aware transferability against the perturbation size - {dataset}"
        fig.suptitle(_wrapped(title, fig, 9), fontsize=9)
        _save(fig, path)
