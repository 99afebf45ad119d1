"""Stage ``report``: report.md and report.html, what a reviewer reads first.

One page: the dataset the results are on (saying plainly when it is not the official CIFAR-10,
i.e. not the paper's protocol), the claims table from ``verify`` with its pass / fail counts,
Figs. 3-5 (copied beside the report, so both files open from ``out_dir``) with what to look at,
the correlations, Dist, the zoo's test accuracies, Tables 1 and 2, the environment and each
stage's wall time from ``logs/timings.jsonl`` (under the working directory, as ``cli.py``
writes it under DVC). The claims table is required; any other missing input is said in the
report. The HTML is converted from the Markdown by the small converter below.
"""

from __future__ import annotations

import csv
import html
import importlib.metadata
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import atomic_path, load_json, save_text
from ..config import Options, help_field

OFFICIAL = "CIFAR-10 (official)"
TIMINGS = Path("logs/timings.jsonl")
FIGURES = (
    ("fig3.png", "Fig. 3: class-aware transferability at the figure's eps",
     "One column per source F1. Top row: Dist(F1, F2), the mean gap between the two models' decision boundaries "
     "along F1's gradient; targets F2 are sorted by it, so the most similar F2 is on the right. Below, one row per "
     "attack: of the AEs that fooled F1 (their number above each bar), the share on which F2 makes the same mistake "
     "(dark), a different mistake (orange) or is not fooled (grey). Look for the dark part growing towards the right "
     "together with the whole fooled bar (paper: r(fooled, same) > 0.98 and r(Dist, same) < -0.90), and for a "
     "non-trivial orange part even for the w:same and early-epoch (v:) targets (paper: about 20% and 10% for targeted "
     "FGM). Whiskers are 95% intervals; with few AEs they are wide."),
    ("fig4.png", "Fig. 4: decision planes of one test image",
     "Top row: each model's predicted class on the plane through the image (the cross) spanned by F1's gradient "
     "direction (u) and a random orthogonal direction (v), one colour per class in every panel. Bottom row: for each "
     "other model F2, where F1 is fooled, whether F2 is not fooled, makes the same mistake or a different one. Look "
     "for different-mistake areas even beside near-identical models, and for larger same-mistake areas where F2's "
     "boundary along u lies as close to the image as F1's."),
    ("fig5.png", "Fig. 5: ratios against the perturbation size",
     "Same-mistake (solid) and different-mistake (dashed) ratios against eps, one colour per target F2. The paper "
     "reports that the same-mistake ratio rises with eps while the different-mistake ratio stays about flat or rises."),
)


@dataclass(frozen=True)
class Config(Options):
    profile: str = help_field(help="profile the results were made at (paper, quick, smoke)")
    results: Path = help_field(Path("results"), "folder of claims.md, tables.md, transfer.json, distance.json")
    figures: Path = help_field(Path("figures"), "folder of the `figures` stage's PNGs and CSVs")
    metrics: Path = help_field(Path("metrics"), "folder of the metrics (train/*.json)")
    out_dir: Path = help_field(Path("report"), "folder for report.md, report.html and copies of the figures", output="dir")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(map(str, r)) + " |" for r in rows)]


def _num(x, digits: int = 3) -> str:
    return "n/a" if x in (None, "") else f"{float(x):.{digits}f}"


def _missing(path: Path, what: str) -> list[str]:
    return [f"*{what} is missing: `{path}` was not found.*"]


def _load(path: Path):
    return load_json(path) if path.is_file() else None


def summary_lines(dataset: str | None, profile: str, claims: str) -> list[str]:
    """The prominent note: which data and size the results were made at, and the claims' verdicts."""
    if dataset is None:
        where = "**Dataset: unknown** (no results/transfer.json); the results cannot be tied to the paper's protocol."
    elif dataset == OFFICIAL:
        where = f"**Dataset: {dataset}**, as in the paper."
    else:
        where = (f"**Dataset: {dataset}. These results are not on the official CIFAR-10, so they do not follow the "
                 "paper's protocol and are not directly comparable to its numbers.**")
    size = "the paper's sizes" if profile == "paper" else "a reduced size; the paper's sizes are profile `paper`"
    return [f"> {where}", ">", f"> **Profile: `{profile}`** ({size}).", ">", f"> **Claims: {claims}.**"]


def claims_section(path: Path) -> tuple[list[str], str]:
    """The claims table as ``verify`` wrote it, and its pass / fail / not-assessed counts."""
    if not path.is_file():
        raise FileNotFoundError(f"claims table {path} does not exist: run the verify stage first")
    text = path.read_text().strip()
    results = [line.rstrip(" |").rsplit("|", 1)[-1].strip() for line in text.splitlines() if line.startswith("| ")][1:]
    counts = f"{results.count('pass')} pass, {results.count('FAIL')} fail, {results.count('n/a')} not assessed (of {len(results)})"
    return ["## The paper's claims", "", text], counts


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
        ci = "" if not row[f"r_{name}_ci_low"] else f" [{_num(row[f'r_{name}_ci_low'], 2)}, {_num(row[f'r_{name}_ci_high'], 2)}]"
        return _num(row[f"r_{name}"]) + ci

    eps = rows[0]["eps"] if rows else "?"
    lines += [f"Pearson's r at eps = {eps} with Fisher 95% intervals; paper: r(fooled, same) > 0.98 and r(Dist, same) < -0.90 "
              "in all 8 cases.", ""]
    return lines + _table(["F1", "attack", "targets", "r(fooled, same)", "r(Dist, same)", "r(Dist, fooled)"],
                          [[row["source"], row["attack"], row["n_targets"], r(row, "fooled_same"), r(row, "dist_same"),
                            r(row, "dist_fooled")] for row in rows])


def dist_section(distance: dict | None, transfer: dict | None, path: Path) -> list[str]:
    lines = ["## Dist(F1, F2) (eq. 4)", ""]
    if distance is None:
        return lines + _missing(path, "The distance results")
    lines += [f"Over {distance['n_images']} test images that every compared model classifies right "
              f"({distance['n_eligible']} were eligible), the most similar F2 first; images where a distance exceeds the search "
              "radius are censored (left out of that pair's mean).", ""]
    rows = []
    for source, s in distance["sources"].items():
        info = transfer["sources"].get(source, {}).get("info", {}) if transfer else {}
        for target, d in sorted(s["targets"].items(), key=lambda kv: (kv[1]["dist"] is None, kv[1]["dist"] or 0.0)):
            ci = "n/a" if d.get("ci_low") is None else f"[{_num(d['ci_low'])}, {_num(d['ci_high'])}]"
            rows.append([source, target, info.get(target, {}).get("relation", "?"), _num(d["dist"]), ci, d["n_images"], d["n_censored"]])
    return lines + _table(["F1", "F2", "relation", "Dist", "95% CI", "images", "censored"], rows)


def zoo_section(folder: Path) -> list[str]:
    lines = ["## Zoo test accuracies", ""]
    files = sorted(folder.glob("*.json"))
    if not files:
        return lines + _missing(folder / "*.json", "The training metrics")
    rows = []
    for f in files:
        m = json.loads(f.read_text())
        ckpts = sorted(m["checkpoints"].items(), key=lambda kv: int(kv[0].rsplit("_", 1)[-1]))
        earlier = ", ".join(f"{k.replace('_', ' ')}: {100 * v['test_acc']:.1f}" for k, v in ckpts[:-1]) or "-"
        rows.append([f.stem, m["arch"], m["n_train"], ckpts[-1][0].replace("_", " "), f"{100 * ckpts[-1][1]['test_acc']:.1f}", earlier])
    return lines + _table(["model", "arch", "train images", "final", "test acc %", "earlier checkpoints, %"], rows)


def tables_section(path: Path) -> list[str]:
    lines = ["## Tables 1 and 2 (section 4)", ""]
    return lines + (_missing(path, "Tables 1 and 2") if not path.is_file() else [path.read_text().strip()])


def _command(*args: str) -> str | None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def environment() -> list[tuple[str, str]]:
    """What ran the pipeline: interpreter, torch, accelerator, CPU, platform, code and DVC versions."""
    import torch

    if torch.cuda.is_available():
        cuda = f"available: CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
    else:
        cuda = f"not available (torch built with CUDA {torch.version.cuda or 'none'})"
    head = _command("git", "rev-parse", "HEAD")
    if head and _command("git", "status", "--porcelain", "--untracked-files=no"):
        head += " (with uncommitted changes)"
    try:
        dvc = importlib.metadata.version("dvc")
    except importlib.metadata.PackageNotFoundError:
        dvc = "not installed"
    return [
        ("python", platform.python_version()), ("torch", torch.__version__), ("CUDA", cuda),
        ("CPU threads", f"{torch.get_num_threads()} (torch), {os.cpu_count()} CPUs"), ("platform", platform.platform()),
        ("git commit", head or "unknown"), ("dvc", dvc),
    ]


def stage_timings(path: Path) -> tuple[list[dict], int] | None:
    """The last record of each stage in ``timings.jsonl`` (by finishing time) and the number of
    unreadable lines; None when the file does not exist."""
    if not path.is_file():
        return None
    last, bad = {}, 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            last[record["stage"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            bad += 1
    return sorted(last.values(), key=lambda r: r.get("finished", 0)), bad


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def timings_section(path: Path) -> list[str]:
    lines = ["## Wall time per stage", ""]
    found = stage_timings(path)
    if found is None:
        return lines + [f"*No stage timings: `{path}` was not found (it is written when the stages run under `dvc repro`).*"]
    records, bad = found
    total = sum(r["seconds"] for r in records)
    lines += ["The last run of each stage, as `dvc repro` recorded it; stages DVC skipped as unchanged keep their earlier time.", ""]
    lines += _table(["stage", "seconds"], [[r["stage"], f"{r['seconds']:.1f}"] for r in records] + [["**total**", f"**{total:.1f}** ({_hms(total)})"]])
    return lines + ([] if not bad else ["", f"*{bad} unreadable line(s) in `{path}` were skipped.*"])


def build_markdown(cfg: Config) -> str:
    transfer = _load(cfg.results / "transfer.json")
    distance = _load(cfg.results / "distance.json")
    lines = ["# Class-aware transferability of adversarial examples (Waseda et al., ICASSP 2023): reproduction report", ""]
    claims, counts = claims_section(cfg.results / "claims.md")
    lines += summary_lines(transfer["dataset"] if transfer else None, cfg.profile, counts) + [""]
    lines += claims + [""]
    lines += figures_section(cfg.figures, cfg.out_dir)
    lines += correlations_section(cfg.figures / "correlations.csv") + [""]
    lines += dist_section(distance, transfer, cfg.results / "distance.json") + [""]
    lines += zoo_section(cfg.metrics / "train") + [""]
    lines += tables_section(cfg.results / "tables.md") + [""]
    lines += ["## Environment", ""] + _table(["item", "value"], environment()) + [""]
    lines += timings_section(TIMINGS)
    return "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", text)


def _html_table(lines: list[str]) -> str:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines if not re.fullmatch(r"\|[-:| ]+\|", line.strip())]
    head = "".join(f"<th>{_inline(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f'<td{" class=fail" if c == "FAIL" else ""}>{_inline(c)}</td>' for c in r) + "</tr>\n" for r in rows[1:])
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _block_kind(line: str) -> str:
    if re.fullmatch(r"#{1,6} .+", line):
        return "heading"
    if re.fullmatch(r"!\[.*\]\(.+\)", line):
        return "image"
    if not line.strip():
        return "blank"
    return "table" if line.startswith("|") else "quote" if line.startswith(">") else "para"


def to_html(markdown: str, title: str) -> str:
    """HTML of the Markdown this stage writes: headings, paragraphs, block quotes, pipe tables
    and images on a line of their own."""
    blocks = []
    for kind, group in itertools.groupby(markdown.splitlines(), key=_block_kind):
        group = list(group)
        if kind == "heading":
            for line in group:
                hashes, text = line.split(" ", 1)
                blocks.append(f"<h{len(hashes)}>{_inline(text)}</h{len(hashes)}>")
        elif kind == "image":
            for line in group:
                alt, src = re.fullmatch(r"!\[(.*)\]\((.+)\)", line).groups()
                blocks.append(f'<figure><img src="{html.escape(src)}" alt="{html.escape(alt)}"></figure>')
        elif kind == "table":
            blocks.append(_html_table(group))
        elif kind == "quote":
            blocks.append("<blockquote>" + "<br>\n".join(_inline(g.lstrip(">").strip()) for g in group if g.lstrip(">").strip()) + "</blockquote>")
        elif kind == "para":
            blocks.append(f"<p>{_inline(' '.join(group))}</p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0;font-size:90%}th,td{border:1px solid #ccc;padding:3px 6px}"
             "th{background:#f2f2f2}td.fail{color:#b00;font-weight:bold}img{max-width:100%}"
             "blockquote{border-left:4px solid #c60;background:#fff6ec;margin:1em 0;padding:.5em 1em}")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{style}</style>\n</head>\n<body>\n" + "\n".join(blocks) + "\n</body>\n</html>\n")


def run(cfg: Config) -> None:
    markdown = build_markdown(cfg)
    save_text(markdown, cfg.out_dir / "report.md")
    save_text(to_html(markdown, "classaware reproduction report"), cfg.out_dir / "report.html")
