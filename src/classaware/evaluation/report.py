"""report.md and report.html of an evaluation: per set, the paper's three ratios per target beside
every published success rate, the targeted split, the most frequent class pairs, comparisons,
and the figures."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from ..files import atomic_path
from ..text import markdown_table, number, percent
from .compare import PairedComparison
from .tables import PairRow, SummaryRow

PUBLISHED_COLUMNS = (
    ("success:all_images", "all images (TransferAttack, TA-Bench, ...)"),
    ("success:target_correct", "F2-correct (TransferAttack#101)"),
    ("success:torchattack_fooling_rate", "torchattack FR"),
    ("success:art_prediction_changed", "ART"),
)


def _fmt(value: float | None, low: float | None, high: float | None) -> str:
    """A ratio as a percentage with its interval: "41.2 [35.0, 47.7]" (no interval: the ratio alone)."""
    if value is None:
        return "n/a"
    return percent(value) if low is None else f"{percent(value)} [{percent(low)}, {percent(high)}]"


def _ci(r: SummaryRow | None) -> str:
    return "n/a" if r is None else _fmt(r.value, r.ci_low, r.ci_high)


def _cell(text: str) -> str:
    return text.replace("|", "/")


def markdown(
    summary: list[SummaryRow],
    pairs: list[PairRow],
    comparisons: list[PairedComparison],
    figures: list[Path],
    title: str,
) -> str:
    """The report's Markdown (percentages with 95% Wilson intervals)."""
    lines = [f"# {title}", ""]
    if summary:
        lines += [f"Data: {summary[0].dataset}. Source F1: `{summary[0].source}`. Every ratio is a percentage with its 95% Wilson "
                  "interval; the paper's ratios are over D'_F1 (F1 right on x, fooled on x').", ""]  # fmt: skip
    by_set = defaultdict(list)
    for r in summary:
        by_set[(r.attack, r.eps, r.objective, r.quantize)].append(r)
    for (attack, eps, objective, quantize), rows in by_set.items():
        get = {(r.target, r.metric): r for r in rows}
        source = rows[0].source
        head = (
            f"## {attack}"
            + ("" if eps is None else f", eps {eps:g}")
            + f", {objective}"
            + ("" if quantize == "none" else f", quantised ({quantize})")
        )
        fooled = get.get((source, "source_fooled"))
        lines += [head, "", f"F1 accuracy {_ci(get.get((source, 'source_accuracy')))}; |D'_F1| = {fooled.count if fooled else 'n/a'} "
                  f"(F1 fooled on {_ci(fooled)} of the images it classifies correctly).", ""]  # fmt: skip
        targets = [t for t in dict.fromkeys(r.target for r in rows) if (t, "unfooled") in get]
        header = ["target F2", "n", "un-fooled", "different", "same", *(c for _, c in PUBLISHED_COLUMNS)]
        body = [[_cell(t), get[(t, "unfooled")].n, _ci(get[(t, "unfooled")]), _ci(get[(t, "different")]), _ci(get[(t, "same")]),
                 *(_ci(get.get((t, m))) for m, _ in PUBLISHED_COLUMNS)] for t in targets]  # fmt: skip
        lines += markdown_table(header, body) + [""]
        if any((t, "target_hit") in get for t in targets):
            header = ["target F2", "target hit", "restored", "source's class", "other"]
            body = [
                [
                    _cell(t),
                    *(
                        _ci(get.get((t, m)))
                        for m in ("target_hit", "split:restored", "split:source_class", "split:other")
                    ),
                ]
                for t in targets
            ]
            lines += ["Targeted split of D'_F1:", "", *markdown_table(header, body), ""]
        extra = [(t, get.get((t, "quantization_changed")), get.get((t, "dist"))) for t in [source, *targets]]
        if any(q for _, q, _ in extra):
            lines += [
                "Adversarial examples whose class changes on quantisation: "
                + "; ".join(f"{_cell(t)} {_ci(q)}" for t, q, _ in extra if q),
                "",
            ]
        if any(d for _, _, d in extra):
            lines += [
                "Dist(F1, F2): "
                + "; ".join(
                    f"{_cell(t)} {number(d.value)} [{number(d.ci_low)}, {number(d.ci_high)}] over {d.n} images"
                    for t, _, d in extra
                    if d
                ),
                "",
            ]
        top = sorted(
            (
                p
                for p in pairs
                if (p.attack, p.eps, p.objective, p.quantize) == (attack, eps, objective, quantize) and p.count
            ),
            key=lambda p: -p.count,
        )[:10]
        if top:
            lines += ["Most frequent different mistakes y1 -> y2:", "",
                      *markdown_table(["target F2", "y1 -> y2", "count", "of n (F1(x') = y1)", "ratio"],
                                      [[_cell(p.target), _cell(f"{p.y1_name} -> {p.y2_name}"), p.count, p.n, _fmt(p.ratio, p.ci_low, p.ci_high)] for p in top]), ""]  # fmt: skip
    if comparisons:
        lines += ["## Paired comparison of attacks (McNemar's exact test, Newcombe's paired interval)", ""]
        lines += markdown_table(
            ["target F2", "A", "B", "images", "n", "A only", "B only", "A - B", "95% interval", "p"],
            [[_cell(c.target), _cell(c.attack_a), _cell(c.attack_b), c.population, c.n, c.only_a, c.only_b, percent(c.difference),
              f"[{percent(c.ci_low)}, {percent(c.ci_high)}]", "n/a" if c.mcnemar_p is None else f"{c.mcnemar_p:.3g}"] for c in comparisons],
        ) + [""]  # fmt: skip
    if figures:
        lines += ["## Figures", "", *(f"![{p.stem}](figures/{p.name})" for p in figures), ""]
    return "\n".join(lines)


def write(markdown_text: str, folder: Path) -> None:
    """report.md and report.html (the Markdown rendered by markdown-it-py) in ``folder``."""
    from markdown_it import MarkdownIt

    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(markdown_text)
    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(markdown_text.splitlines()[0][2:])}</title>"
            "<style>body{font-family:sans-serif;max-width:75em;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style></head><body>" + body + "</body></html>")  # fmt: skip
    with atomic_path(folder / "report.html") as tmp:
        tmp.write_text(page)
