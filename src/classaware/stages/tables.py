"""Stage ``tables``: Tables 1 and 2 of the paper from the section 4 metrics, beside the paper's
values (matched by position, see ``paper.py``), as JSON and as Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import paper
from ..artifacts import load_json, save_json, save_text
from ..config import Options, help_field

CHANCE = 0.10
NEAR_CHANCE = 1.5  # Table 2 marks an accuracy below NEAR_CHANCE x chance as "near chance"


@dataclass(frozen=True)
class Config(Options):
    pairs: tuple[str, ...] = help_field(help="the non-robust sets' pairs F1+F2, in the paper's order", nonempty=True)
    archs: tuple[str, ...] = help_field(help="the trained architectures (ResNet-18's role first, then VGG-16-bn's)", nonempty=True)
    labels: tuple[str, ...] = help_field(("y1", "y2"), "the labellings", nonempty=True, choices=("y1", "y2"))
    construct_dir: Path = help_field(Path("metrics/nonrobust"), "folder of `construct`'s metrics")
    train_dir: Path = help_field(Path("metrics/nonrobust_train"), "folder of `train-grid`'s metrics")
    out_dir: Path = help_field(Path("results"), "folder for table1.json, table2.json and tables.md", output="dir")


def _paper(table, *index):
    try:
        for i in index:
            table = table[i]
        return table
    except IndexError:
        return None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def build_tables(cfg: Config) -> tuple[dict, dict]:
    t1_rows, t2_rows = [], []
    for i, pair in enumerate(cfg.pairs):
        m = load_json(cfg.construct_dir / f"{pair}.json", "construct metrics")
        paper_row = _paper(paper.TABLE1, i)
        t1_rows.append({"pair": pair, "paper_pair": _paper(paper.PAIRS, i), "eps": m["eps"], "n_images": m["n_images"],
                        **m["table1"], "probes": m["probes"], "paper": paper_row})
        for j, label in enumerate(cfg.labels):
            for k, arch in enumerate(cfg.archs):
                r = load_json(cfg.train_dir / pair / f"{label}-{arch}.json", "train-grid metrics")
                t2_rows.append({"pair": pair, "label": label, "arch": arch, "test_acc": r["test_acc"], "val_acc": r["val_acc"],
                                "selected": r["selected"], "paper": _paper(paper.TABLE2, i, j, k)})
    baseline = []
    for k, arch in enumerate(cfg.archs):
        r = load_json(cfg.train_dir / "baseline" / f"{arch}.json", "train-grid metrics")
        baseline.append({"arch": arch, "test_acc": r["test_acc"], "selected": r["selected"], "paper": _paper(paper.BASELINE, k)})
    dataset = m["dataset"]
    return {"dataset": dataset, "rows": t1_rows}, {"dataset": dataset, "rows": t2_rows, "baseline": baseline, "chance": CHANCE}


def markdown(table1: dict, table2: dict) -> str:
    lines = [
        f"### Table 1: N-targeted attack success on the non-robust sets, % ({table1['dataset']})", "",
        "| F1 + F2 | paper's pair | eps | F1(X')=Y1 | F2(X')=Y2 | both | paper (F1, F2, both) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table1["rows"]:
        cis = [f"{_pct(r[k]['ratio'])} [{_pct(r[k]['ci_low'])}, {_pct(r[k]['ci_high'])}]" for k in ("f1_hits_y1", "f2_hits_y2", "both")]
        ref = ", ".join(f"{v:.1f}" for v in r["paper"]) if r["paper"] else "n/a"
        lines.append(f"| {r['pair']} | {r['paper_pair'] or 'n/a'} | {r['eps']:g} | {' | '.join(cis)} | {ref} |")
    probes = [(r["pair"], e, p) for r in table1["rows"] for e, p in r["probes"].items()]
    if probes:
        lines += ["", "Probes at other eps (first images of each set):", "", "| F1 + F2 | eps | images | F1(X')=Y1 | F2(X')=Y2 | both |", "|---|---|---|---|---|---|"]
        lines += [f"| {pair} | {e} | {p['n_images']} | {_pct(p['f1_hits_y1']['ratio'])} | {_pct(p['f2_hits_y2']['ratio'])} | {_pct(p['both']['ratio'])} |" for pair, e, p in probes]
    lines += [
        "", f"### Table 2: clean test accuracy after training on non-robust sets, % (chance: {100 * table2['chance']:.0f}%; 'near chance': below {100 * NEAR_CHANCE * table2['chance']:.0f}%)", "",
        "| F1 + F2 | trained label | trained model | test acc | paper | selected grid cell |", "|---|---|---|---|---|---|",
    ]
    for r in table2["rows"]:
        mark = " (near chance)" if r["test_acc"] < NEAR_CHANCE * table2["chance"] else ""
        paper_value = "n/a" if r["paper"] is None else f"{r['paper']:.1f}"
        lines.append(f"| {r['pair']} | {r['label']} | {r['arch']} | {_pct(r['test_acc'])}{mark} | {paper_value} | {r['selected']} |")
    for b in table2["baseline"]:
        paper_value = "n/a" if b["paper"] is None else f"{b['paper']:.0f}"
        lines.append(f"| original set | y | {b['arch']} | {_pct(b['test_acc'])} | {paper_value} | {b['selected']} |")
    return "\n".join(lines) + "\n"


def run(cfg: Config) -> None:
    table1, table2 = build_tables(cfg)
    save_json(table1, cfg.out_dir / "table1.json")
    save_json(table2, cfg.out_dir / "table2.json")
    save_text(markdown(table1, table2), cfg.out_dir / "tables.md")
