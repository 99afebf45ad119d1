"""Stage ``report``: report.md and report.html, what a reviewer reads first.

One page, opening with one verdict: the dataset the results are on (saying plainly when it is
not the official CIFAR-10, i.e. not the paper's protocol), then the claims' verdicts counted.
Where ``classaware replicate`` left ``results/replicates.json`` for this run (its replicate 0
is this workspace's claims), that is the verdict over the replicates, said to be that, and the
per-replicate table follows; otherwise it is this run's. Then the claims table from ``verify``,
Figs. 3-5 (copied beside the report, so both files open from ``out_dir``) with what to look at,
the correlations, Dist, the zoo's test accuracies, Tables 1 and 2, the code and environment, and
each stage's wall time, from ``logs/timings.jsonl`` (under the working directory, as ``cli.py``
writes it under DVC: the code is what the stages recorded there, so the report shows the
commit each stage ran, and says in words when the code was not a commit). The claims
(``results/claims.json`` and ``results/claims.md``) are required; any other missing input is
said in the report. The HTML is the Markdown rendered by markdown-it-py, each verdict in a
colour of its own (:data:`VERDICT_COLOURS`) beside its word.
"""

from __future__ import annotations

import csv
import html
import importlib.metadata
import json
import os
import platform
import shutil
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt

from ..config import Options, help_field
from ..environment import CodeVersion, Environment
from ..files import atomic_path, save_text
from ..schema import (
    VERDICTS,
    ClaimResults,
    DistanceResults,
    ModelCondition,
    ReplicatedVerdict,
    Replicates,
    TransferResults,
    ZooConditions,
)
from ..text import interval, markdown_table, natural_key, number, percent
from ..training import TrainMetrics

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import Upstream

OFFICIAL = "CIFAR-10 (official)"
TIMINGS = Path("logs/timings.jsonl")
FIGURES = (
    (
        "fig3.png",
        "Fig. 3: class-aware transferability at the figure's eps",
        "One block per source F1, one row per target F2, sorted by Dist(F1, F2), the mean gap between the two "
        "models' decision boundaries along F1's gradient: the most similar F2 at the bottom. First panel: Dist with "
        "its 95% interval. Then one panel per attack: of the AEs that fooled F1 (|D'_F1|, in the panel's title), the "
        "share on which F2 makes the same mistake (dark, left), a different mistake (orange) or is not fooled (grey, "
        "right). Look for the dark part growing towards the bottom together with the whole fooled bar (paper: "
        "r(fooled, same) > 0.98 and r(Dist, same) < -0.90), and for a non-trivial orange part even for the w:same and "
        "early-epoch (v:) targets (paper: about 20% and 10% for targeted FGM). Whiskers are 95% intervals on the "
        "same and the fooled ends; with few AEs they are wide.",
    ),
    (
        "fig4.png",
        "Fig. 4: decision planes of one test image",
        "Top row: each model's predicted class on the plane through the image (the cross) spanned by F1's gradient "
        "direction (u) and a random orthogonal direction (v), in l2 distance, one colour per class in every panel. Bottom "
        "row: for each other model F2, where F1 is fooled, whether F2 is not fooled (grey), makes a different mistake "
        "(orange) or the same one (dark blue); white where F1 is not fooled. Look "
        "for different-mistake areas even beside near-identical models, and for larger same-mistake areas where F2's "
        "boundary along u lies as close to the image as F1's.",
    ),
    (
        "fig5.png",
        "Fig. 5: ratios against the perturbation size",
        "For each source F1 and attack, the same-mistake ratio (upper row) and the different-mistake ratio (lower row) "
        "against eps on a log scale: one line per target F2, coloured by its relation to F1, with 95% Wilson intervals "
        "(the lines are set apart by at most 5% of eps, so that the intervals show; each point belongs to the eps of "
        "the grid line it sits on). "
        "The paper reports that the same-mistake ratio rises with eps while the different-mistake ratio stays about "
        "flat or rises.",
    ),
)


@dataclass(frozen=True)
class Config(Options):
    profile: str = help_field(help="profile the results were made at (profiles/NAME.yaml)")
    results: Path = help_field(Path("results"), "folder of claims.md, tables.md, transfer.json, distance.json")
    figures: Path = help_field(Path("figures"), "folder of the `figures` stage's PNGs and CSVs")
    train_results: Path = help_field(Path("results/train"), "folder of the zoo's training results (<member>.json)")
    out_dir: Path = help_field(
        Path("report"), "folder for report.md, report.html and copies of the figures", output="dir"
    )


def _missing(path: Path, what: str) -> list[str]:
    return [f"*{what} is missing: `{path}` was not found.*"]


def _load(record, path: Path):
    return record.load(path) if path.is_file() else None


def summary_lines(dataset: str | None, profile: str, verdict: str) -> list[str]:
    """The prominent note: which data and size the results were made at, and the one verdict."""
    if dataset is None:
        where = "**Dataset: unknown** (no results/transfer.json); the results cannot be tied to the paper's protocol."
    elif dataset == OFFICIAL:
        where = f"**Dataset: {dataset}**, as in the paper."
    else:
        where = (
            f"**Dataset: {dataset}. These results are not on the official CIFAR-10, so they do not follow the "
            "paper's protocol and are not directly comparable to its numbers.**"
        )
    size = "the paper's sizes" if profile == "paper" else "a reduced size; the paper's sizes are profile `paper`"
    return [f"> {where}", ">", f"> **Profile: `{profile}`** ({size}).", ">", f"> {verdict}"]


REPLICATED_VERDICTS: tuple[str, ...] = typing.get_args(ReplicatedVerdict)  # the order verdicts are counted in


def counts(verdicts: dict[str, str], words: tuple[str, ...]) -> str:
    """{claim: verdict} counted by verdict ``words``: "5 pass, 1 pass within noise, ..., 2 not assessed (of 15)"."""
    counted = [f"{sum(v == word for v in verdicts.values())} {word}" for word in words]
    return f"{', '.join(counted)} (of {len(verdicts)})"


def verdict_table(verdicts: dict[str, str], words: tuple[str, ...]) -> list[str]:
    """One row per verdict word: how many claims have it, and which."""
    rows = [
        [word, sum(v == word for v in verdicts.values()),
         ", ".join(sorted((k for k, v in verdicts.items() if v == word), key=natural_key)) or "-"]
        for word in words
    ]  # fmt: skip
    return markdown_table(["verdict", "claims", "which"], rows)


def replicates_of_this_run(path: Path, claims: ClaimResults) -> tuple[Replicates | None, int | None, str | None]:
    """The replicate summary at ``path`` when it belongs to this run, the seed shift of the
    replicate that is this workspace's run, else None and why (None when there is none). It
    belongs when its profile is this run's and one of its replicates has this run's claims,
    values and verdicts."""
    if not path.is_file():
        return None, None, None
    replicates = Replicates.load(path)
    mine = {k: (c.value, c.verdict) for k, c in claims.claims.items()}
    for i, shift in enumerate(replicates.seed_shifts):
        theirs = {k: (c.values[i], c.verdicts[i]) for k, c in replicates.claims.items()}
        if replicates.profile == claims.profile and theirs == mine:
            return replicates, shift, None
    return (
        None,
        None,
        (
            f"*`{path}` is not about this run: none of its replicates (profile `{replicates.profile}`) has this run's "
            "claims. Run `classaware replicate` again to see how the claims move with the seeds.*"
        ),
    )


def replicates_section(replicates: Replicates, own: int) -> list[str]:
    """Each claim over the replicates: the verdict they add up to, then each replicate's
    (``own``: the seed shift of this workspace's run)."""
    shifts = replicates.seed_shifts
    rows = [
        [cid, c.verdict, *c.verdicts, number(c.mean), interval(c.low, c.high), f"{c.n_pass} of {len(shifts)}"]
        for cid, c in sorted(
            replicates.claims.items(), key=lambda kv: natural_key(kv[0])
        )  # JSON keeps them sorted as strings
    ]
    header = ["claim", f"over the {len(shifts)} replicates", *(f"replicate {s}" for s in shifts), "mean", "range",
              "replicates passing"]  # fmt: skip
    return [
        f"## The paper's claims over {len(shifts)} seed replicates",
        "",
        f"The replicates are the pipeline run again with every seed shifted (`classaware replicate`; seed shifts "
        f"{', '.join(map(str, shifts))}), so they differ only in their random draws; replicate {own} is this "
        "workspace's run, detailed in the next section. A claim's verdict over the replicates is the verdict every replicate gives; "
        "'within noise' when all are on one side of the bound but not all are decided; 'not under the paper's "
        "conditions' when any replicate's zoo breaks them; unstable when they disagree on the side. Range: the lowest "
        "and highest value.",
        "",
        *markdown_table(header, rows),
        "",
    ]


def claims_section(table: Path, own: int | None) -> list[str]:
    """The claims table as ``verify`` wrote it (``own``: this run's seed shift among replicates)."""
    title = (
        f"## The paper's claims in replicate {own} (this workspace's run)"
        if own is not None
        else "## The paper's claims"
    )
    return [title, "", table.read_text().strip()]


def figures_section(figures: Path, out_dir: Path) -> list[str]:
    lines = []
    for name, title, caption in FIGURES:
        lines += [f"## {title}", ""]
        if (figures / name).is_file():
            with atomic_path(out_dir / name) as tmp:
                shutil.copyfile(figures / name, tmp)
            lines += [f"![{title}]({name})", "", caption, ""]
        else:
            lines += _missing(figures / name, title.split(":")[0]) + [""]
    return lines


def correlations_section(path: Path) -> list[str]:
    lines = ["## Correlations across the targets F2 (section 3.3)", ""]
    if not path.is_file():
        return lines + _missing(path, "The correlations table")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))

    def r(row, name):
        ci = (
            ""
            if not row[f"r_{name}_ci_low"]
            else f" [{number(row[f'r_{name}_ci_low'], 2)}, {number(row[f'r_{name}_ci_high'], 2)}]"
        )
        return number(row[f"r_{name}"]) + ci

    eps = rows[0]["eps"] if rows else "?"
    lines += [
        f"Pearson's r at eps = {eps} with Fisher 95% intervals; paper: r(fooled, same) > 0.98 and r(Dist, same) < -0.90 "
        "in all 8 cases.",
        "",
    ]
    return lines + markdown_table(
        ["F1", "attack", "targets", "r(fooled, same)", "r(Dist, same)", "r(Dist, fooled)"],
        [
            [
                row["source"],
                row["attack"],
                row["n_targets"],
                r(row, "fooled_same"),
                r(row, "dist_same"),
                r(row, "dist_fooled"),
            ]
            for row in rows
        ],
    )


def _interval(low: float | None, high: float | None) -> str:
    return "n/a" if low is None else interval(low, high)


def dist_section(distance: DistanceResults | None, transfer: TransferResults | None, path: Path) -> list[str]:
    lines = ["## Dist(F1, F2) (eq. 4)", ""]
    if distance is None:
        return lines + _missing(path, "The distance results")
    radii = ", ".join(f"{s}: {d.radius:.3g}" for s, d in distance.sources.items())
    lines += [
        f"Over the same {distance.n_images} test images for every pair, drawn among the {distance.n_eligible} that every "
        "compared model classifies right; the most similar F2 first. Every model compared along one source's gradients "
        f"is searched to the same radius (from {number(distance.search.max_radius, 1)}, doubled while over "
        f"{percent(distance.search.max_censored, 0)}% of some model's images are unflipped, never beyond the image box's "
        f"diameter; radius reached: {radii}); a distance not reached there is censored at it, so the pair's gap is a "
        "lower bound, and 'censored' is the share of the pair's images with such a distance. The last columns are a "
        "diagnostic: Dist over the images neither model leaves censored (a different subset per pair), with its "
        "interval.",
        "",
    ]
    rows = []
    for source, s in distance.sources.items():
        for target, d in sorted(s.targets.items(), key=lambda kv: kv[1].dist):
            relation = transfer.info(source, target).relation if transfer and source in transfer.sources else "?"
            censored = f"{percent(d.n_censored / d.n_images)}%"
            rows.append([source, target, relation, number(d.dist), _interval(d.ci_low, d.ci_high), censored,
                         number(d.dist_flipped), _interval(d.flipped_ci_low, d.flipped_ci_high), d.n_flipped])  # fmt: skip
    header = ["F1", "F2", "relation", "Dist", "95% CI", "censored", "Dist, images that flip", "95% CI", "images"]
    return lines + markdown_table(header, rows)


def _train_results(folder: Path) -> list[TrainMetrics]:
    return [TrainMetrics.load(f) for f in sorted(folder.glob("*.json"))]


def _place(c: ModelCondition | None) -> str:
    """A model's place under the paper's conditions, in words."""
    if c is None:
        return "not read by any claim"
    side = f"{percent(c.below_best)} points below" if c.below_best >= 0 else f"{percent(-c.below_best)} points above"
    return side + ("" if c.holds else ", **outside**")


def zoo_section(folder: Path, conditions: ZooConditions | None, transfer: TransferResults | None) -> list[str]:
    """Every zoo model's test accuracy, its place under the paper's conditions, and its clean
    accuracy on the attacked images (its clean errors, which eq. 1 counts as fooled)."""
    lines = ["## The zoo under the paper's conditions", ""]
    files = sorted(folder.glob("*.json"))
    if not files:
        return lines + _missing(folder / "*.json", "The training metrics")
    if conditions is None:
        lines += ["*The conditions were not checked: `results/conditions.json` was not found.*", ""]
    else:
        best = conditions.arch_means[conditions.best_arch]
        outside = [ref for ref, m in conditions.models.items() if not m.holds]
        lines += [
            f"The rule (claims.yaml): {conditions.rule}. Here the most accurate architecture is {conditions.best_arch} "
            f"({percent(best)}% on average), so every model must reach {percent(best - conditions.within)}%. "
            + (f"**{len(outside)} models break it: {', '.join(outside)}**; every claim that reads one is judged "
               "'not under the paper's conditions'." if outside else "Every model holds it.")
            + " 'clean acc on the attacked images' is each target's accuracy on the images the attacks start from: "
            "its errors there count as fooled in eq. 1, which the diagnostic 'over the images the target got right' "
            "leaves out.",
            "",
        ]  # fmt: skip
    attacked = {}
    if transfer is not None:
        for s in transfer.sources.values():
            attacked |= s.clean_acc
    rows = []
    for f, m in zip(files, _train_results(folder), strict=True):
        final, _ = m.final()
        for epoch, acc in sorted(m.test_acc.items(), key=lambda kv: -int(kv[0])):
            ref = f.stem if int(epoch) == final else f"{f.stem}@{epoch}"
            c = None if conditions is None else conditions.models.get(ref)
            place = _place(c)
            clean = percent(attacked[ref]) if ref in attacked else "-"
            rows.append([ref, m.arch, m.n_train, f"epoch {epoch}", percent(acc), place, clean])
    return lines + markdown_table(
        [
            "model",
            "arch",
            "train images",
            "checkpoint",
            "test acc %",
            "under the conditions",
            "clean acc on the attacked images, %",
        ],
        rows,
    )


def tables_section(path: Path) -> list[str]:
    lines = ["## Tables 1 and 2 (section 4)", ""]
    return lines + (_missing(path, "Tables 1 and 2") if not path.is_file() else [path.read_text().strip()])


DETERMINISM = (
    "On the CPU the same seeds give the same artifacts, byte for byte (so the same dvc.lock hashes), only with the same "
    "torch build, the same CPU kernels (the instruction set below) and the same number of threads. On other hardware, "
    "expect numbers within the spread of the seed replicates (REPRODUCE.md), not the same bytes; GPU runs are never "
    "bit-identical."
)


def code_lines(records: list[dict]) -> list[tuple[str, str]]:
    """Which code the stages ran, as they recorded it (``cli.py``): one row per distinct code, naming
    its stages when they differ; commits in plain words (``CodeVersion.describe``)."""
    by_code: dict[str, list[str]] = {}
    for r in records:
        code = (
            CodeVersion(**r["code"]).describe() if "code" in r else "not recorded (a stage run before records had it)"
        )
        by_code.setdefault(code, []).append(r["stage"])
    if not by_code:
        return [("code", "not recorded: no stage timings (they are written when the stages run under `dvc repro`)")]
    if len(by_code) == 1:
        return [("code", next(iter(by_code)) + " (every stage)")]
    return [(f"code of {', '.join(stages)}", code) for code, stages in by_code.items()]


def environment(recorded: list[Environment], records: list[dict]) -> list[tuple[str, str]]:
    """The code the stages ran and what computed the results (as the artifacts and the stages
    recorded them), and what wrote this report."""
    try:
        dvc = importlib.metadata.version("dvc")
    except importlib.metadata.PackageNotFoundError:
        dvc = "not installed"
    computed = [("computed on", e.describe()) for e in dict.fromkeys(recorded)] or [
        ("computed on", "unknown (no results)")
    ]
    threads = sorted({r["threads"] for r in records if "threads" in r})
    return [
        *code_lines(records),
        *computed,
        *([("torch threads per stage", ", ".join(map(str, threads)))] if threads else []),
        ("this report", Environment.current().describe()),
        ("python", platform.python_version()),
        ("CPUs", str(os.cpu_count())),
        ("platform", platform.platform()),
        ("dvc", dvc),
    ]


def stage_timings(path: Path) -> tuple[list[dict], int] | None:
    """The last record of each stage of the workspace's own run in ``timings.jsonl`` (by
    finishing time; the stages of DVC experiments, such as `classaware replicate`'s, log there too
    and are left out) and the number of unreadable lines; None when the file does not exist."""
    if not path.is_file():
        return None
    last, bad = {}, 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not record.get("experiment"):
                last[record["stage"]] = record
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            bad += 1
    return sorted(last.values(), key=lambda r: r.get("finished", 0)), bad


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def timings_section(path: Path) -> list[str]:
    lines = ["## Wall time per stage", ""]
    found = stage_timings(path)
    if found is None:
        return lines + [
            f"*No stage timings: `{path}` was not found (it is written when the stages run under `dvc repro`).*"
        ]
    records, bad = found
    total = sum(r["seconds"] for r in records)
    lines += [
        "The last run of each stage, as `dvc repro` recorded it; stages DVC skipped as unchanged keep their earlier time. "
        "The sum is the work of the stages, not the run's wall time: stages that ran at once (`classaware repro "
        "--jobs N`) overlap, so the run took less than the sum, and DVC's own checks and hashing between the stages "
        "are not in it, so a serial run takes more.",
        "",
    ]
    lines += markdown_table(
        ["stage", "seconds"],
        [[r["stage"], f"{r['seconds']:.1f}"] for r in records]
        + [["**sum of the stages (not the wall time)**", f"**{total:.1f}** ({_hms(total)})"]],
    )
    return lines + ([] if not bad else ["", f"*{bad} unreadable line(s) in `{path}` were skipped.*"])


def build_markdown(cfg: Config) -> str:
    transfer = _load(TransferResults, cfg.results / "transfer.json")
    distance = _load(DistanceResults, cfg.results / "distance.json")
    table, claims_path = cfg.results / "claims.md", cfg.results / "claims.json"
    if not table.is_file() or not claims_path.is_file():
        raise FileNotFoundError(f"claims {claims_path} or {table} do not exist: run the verify stage first")
    claims = ClaimResults.load(claims_path)
    replicates, own, stale = replicates_of_this_run(cfg.results / "replicates.json", claims)
    if replicates is not None:
        verdicts, words = {k: c.verdict for k, c in replicates.claims.items()}, REPLICATED_VERDICTS
        n = len(replicates.seed_shifts)
        verdict = (f"**Claims over {n} seed replicates: {counts(verdicts, words)}.** This is the verdict over the replicates "
                   f"(replicate {own} is this workspace's run); the next sections give each replicate's.")  # fmt: skip
    else:
        verdicts, words = {k: c.verdict for k, c in claims.claims.items()}, VERDICTS
        verdict = (f"**Claims of this run: {counts(verdicts, words)}.** One run, no seed replicates: `classaware replicate` "
                   "runs the pipeline again with other seeds and this report then gives the verdict over them.")  # fmt: skip
    lines = [
        "# Class-aware transferability of adversarial examples (Waseda et al., ICASSP 2023): reproduction report",
        "",
        *summary_lines(transfer.dataset if transfer else None, cfg.profile, verdict),
        "",
        *verdict_table(verdicts, words),
        "",
        *([stale, ""] if stale else []),
        *(replicates_section(replicates, own) if replicates is not None else []),
        *claims_section(table, own),
        "",
    ]
    lines += figures_section(cfg.figures, cfg.out_dir)
    lines += correlations_section(cfg.figures / "correlations.csv") + [""]
    lines += dist_section(distance, transfer, cfg.results / "distance.json") + [""]
    conditions = _load(ZooConditions, cfg.results / "conditions.json")
    lines += zoo_section(cfg.train_results, conditions, transfer) + [""]
    lines += tables_section(cfg.results / "tables.md") + [""]
    recorded = [r.environment for r in (distance, *_train_results(cfg.train_results)) if r is not None]
    records = (stage_timings(TIMINGS) or ([], 0))[0]
    lines += ["## Code and environment", "", DETERMINISM, ""]
    lines += markdown_table(["item", "value"], environment(recorded, records)) + [""]
    lines += timings_section(TIMINGS)
    return "\n".join(lines) + "\n"


# Each verdict's colours (text, background) in the HTML; the word beside it says the same without colour.
VERDICT_COLOURS = {
    "pass": ("#0b5d1e", "#d3f2dc"),
    "pass within noise": ("#2f6b3a", "#eef8e6"),
    "fail within noise": ("#8a4b00", "#fdebd3"),
    "fail": ("#a50f15", "#fbd5d5"),
    "unstable": ("#5b2a86", "#ece2f6"),
    "not under the paper's conditions": ("#7a5c00", "#fff3c4"),
    "not assessed": ("#555555", "#eeeeee"),
}


def _css(verdict: str) -> str:
    return "verdict-" + verdict.replace(" ", "-")


MAX_WIDTH_PX = 1100
CONTENT_WIDTH_PX = MAX_WIDTH_PX - 2 * 16  # the page's width less its padding (1em each side): the figures' width
STYLE = (
    f"body{{font-family:sans-serif;max-width:{MAX_WIDTH_PX}px;margin:2em auto;padding:0 1em;line-height:1.45}}"
    "table{border-collapse:collapse;margin:1em 0;font-size:90%}th,td{border:1px solid #ccc;padding:3px 6px}"
    "th{background:#f2f2f2}img{max-width:100%}"
    "blockquote{border-left:4px solid #c60;background:#fff6ec;margin:1em 0;padding:.5em 1em}"
    + "".join(
        f"td.{_css(word)}{{color:{text};background:{back};font-weight:bold}}"
        for word, (text, back) in VERDICT_COLOURS.items()
    )
)


def verdict_of(cell: str) -> str | None:
    """The verdict a table cell gives: its text is a verdict word, alone or before "; caveat"."""
    word = cell.split(";", 1)[0].strip()
    return word if word in VERDICT_COLOURS else None


def _mark_verdicts(self, tokens, idx, options, env) -> str:
    """A table cell giving a verdict gets the verdict's class (its colours)."""
    if idx + 1 < len(tokens) and (word := verdict_of(tokens[idx + 1].content)):
        tokens[idx].attrSet("class", _css(word))
    return self.renderToken(tokens, idx, options, env)


def to_html(markdown: str, title: str) -> str:
    """The report's Markdown (CommonMark with pipe tables) as a standalone HTML page."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.add_render_rule("td_open", _mark_verdicts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n{md.render(markdown)}</body>\n</html>\n"
    )


def run(cfg: Config) -> None:
    markdown = build_markdown(cfg)
    save_text(markdown, cfg.out_dir / "report.md")
    save_text(to_html(markdown, "classaware reproduction report"), cfg.out_dir / "report.html")


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> dict:
    return {}  # text from stored results: no network


AUDIT: dict = {}  # it has no outputs (wall times and the environment are not reproducible)
