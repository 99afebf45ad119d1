"""Stage ``tables``: Tables 1 and 2 of the paper from the section 4 results, beside the paper's
values (matched by position, see ``paper.py``), as JSON and as Markdown, and each row's
numbers as a small JSON for `dvc metrics show`.

Table 2 gets a matched negative control per labelling and learner (``train-grid --clean``: the
same learner and schedule on the clean images X with the same random labels), and each row its
gain over that control with Newcombe's 95% interval (``analysis.table2_gains``). A set whose
images or labels differ from its control's is an error, not a comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import paper
from ..analysis import table2_gains
from ..config import Options, help_field
from ..files import save_json, save_text
from ..schema import BaselineRow, ConstructMetrics, ControlRow, GridMetrics, Table1, Table1Row, Table2, Table2Row
from ..text import markdown_table, percent

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream


CHANCE = 0.10


@dataclass(frozen=True)
class Config(Options):
    pairs: tuple[str, ...] = help_field(help="the non-robust sets' pairs F1+F2, in the paper's order", nonempty=True)
    archs: tuple[str, ...] = help_field(
        help="the trained architectures (ResNet-18's role first, then VGG-16-bn's)", nonempty=True
    )
    labellings: tuple[str, ...] = help_field(("y1", "y2"), "the labellings", nonempty=True, choices=("y1", "y2"))
    construct_dir: Path = help_field(Path("results/nonrobust"), "folder of `construct`'s Table 1 rows")
    train_dir: Path = help_field(Path("results/nonrobust_train"), "folder of `train-grid`'s results")
    out_dir: Path = help_field(Path("results"), "folder for table1.json, table2.json and tables.md", output="dir")
    metrics_dir: Path = help_field(
        Path("metrics/tables"), "folder of one small JSON per row (table1/, table2/)", output="dir"
    )


def _paper(table, *index):
    """The paper's value at ``index`` (pair, labelling, arch), None beyond the paper's rows."""
    try:
        for i in index:
            table = table[i]
        return table
    except IndexError:
        return None


def build_tables(cfg: Config) -> tuple[Table1, Table2]:
    t1_rows, t2_rows = [], []
    controls = {(lab, arch): GridMetrics.load(cfg.train_dir / "control" / f"{lab}-{arch}.json")
                for lab in cfg.labellings for arch in cfg.archs}  # fmt: skip
    for i, pair in enumerate(cfg.pairs):
        m = ConstructMetrics.load(cfg.construct_dir / f"{pair}.json")
        t1_rows.append(
            Table1Row(
                pair=pair,
                paper_pair=_paper(paper.PAIRS, i),
                eps=m.eps,
                n_images=m.n_images,
                rates=m.rates,
                probes=m.probes,
                paper=_paper(paper.TABLE1, i),
            )
        )
        for j, labelling in enumerate(cfg.labellings):
            for k, arch in enumerate(cfg.archs):
                r = GridMetrics.load(cfg.train_dir / pair / f"{labelling}-{arch}.json")
                if r.labels_digest != controls[labelling, arch].labels_digest:
                    raise ValueError(
                        f"the {labelling} set of {pair} and its control ({cfg.train_dir}/control/{labelling}-{arch}.json, "
                        f"made from {controls[labelling, arch].pair}'s set) label other images or labels: every "
                        "pair's set must be drawn with the same train_size, val_size and target_class_seed"
                    )
                t2_rows.append(
                    Table2Row(
                        pair=pair,
                        labelling=labelling,
                        arch=arch,
                        test_acc=r.test_acc,
                        n_test=r.n_test,
                        val_acc=r.val_acc,
                        fit=_selected(r).fit,
                        selected=r.selected,
                        paper=_paper(paper.TABLE2, i, j, k),
                    )
                )
    baseline = []
    for k, arch in enumerate(cfg.archs):
        r = GridMetrics.load(cfg.train_dir / "baseline" / f"{arch}.json")
        baseline.append(
            BaselineRow(arch=arch, test_acc=r.test_acc, selected=r.selected, paper=_paper(paper.BASELINE, k))
        )
    control_rows = tuple(
        ControlRow(
            labelling=lab, arch=arch, test_acc=c.test_acc, n_test=c.n_test, fit=_selected(c).fit, selected=c.selected
        )
        for (lab, arch), c in controls.items()
    )
    return Table1(dataset=m.dataset, rows=tuple(t1_rows)), Table2(
        dataset=m.dataset, chance=CHANCE, rows=tuple(t2_rows), controls=control_rows, baseline=tuple(baseline)
    )


def _selected(metrics: GridMetrics):
    """The grid cell chosen on the held-out images."""
    return next(c for c in metrics.cells if c.cell == metrics.selected)


def _with_interval(p) -> str:
    return f"{percent(p.ratio)} [{percent(p.ci_low)}, {percent(p.ci_high)}]"


def markdown(table1: Table1, table2: Table2) -> str:
    lines = [f"### Table 1: N-targeted attack success on the non-robust sets, % ({table1.dataset})", ""]
    lines += markdown_table(
        ["F1 + F2", "paper's pair", "eps", "F1(X')=Y1", "F2(X')=Y2", "both", "paper (F1, F2, both)"],
        [
            [
                r.pair,
                r.paper_pair or "n/a",
                f"{r.eps:g}",
                _with_interval(r.rates.f1_hits_y1),
                _with_interval(r.rates.f2_hits_y2),
                _with_interval(r.rates.both),
                ", ".join(f"{v:.1f}" for v in r.paper) if r.paper else "n/a",
            ]
            for r in table1.rows
        ],
    )
    probes = [(r.pair, e, p) for r in table1.rows for e, p in r.probes.items()]
    if probes:
        lines += ["", "Probes at other eps (first images of each set):", ""]
        lines += markdown_table(
            ["F1 + F2", "eps", "images", "F1(X')=Y1", "F2(X')=Y2", "both"],
            [
                [
                    pair,
                    e,
                    p.n_images,
                    percent(p.rates.f1_hits_y1.ratio),
                    percent(p.rates.f2_hits_y2.ratio),
                    percent(p.rates.both.ratio),
                ]
                for pair, e, p in probes
            ],
        )
    lines += [
        "",
        f"### Table 2: clean test accuracy after training on non-robust sets, % (chance: {percent(table2.chance, 0)}%)",
        "",
        "Each row beside its matched control: the same learner and schedule on the clean images X with the same "
        "random labels. A set teaches non-robust features to a learner where it beats that control; the gain's "
        "interval is Newcombe's 95%. fit: accuracy on its own training labels.",
        "",
    ]
    gains = table2_gains(table2)
    rows = [
        [
            r.pair,
            r.labelling,
            r.arch,
            f"{percent(r.test_acc)} (fit {percent(r.fit)})",
            f"{percent(table2.control(r).test_acc)} (fit {percent(table2.control(r).fit)})",
            f"{g.gain * 100:+.1f} [{g.ci_low * 100:+.1f}, {g.ci_high * 100:+.1f}]",
            "n/a" if r.paper is None else f"{r.paper:.1f}",
            r.selected,
        ]
        for r, g in zip(table2.rows, gains, strict=True)
    ]
    rows += [
        ["original set", "y", b.arch, percent(b.test_acc), "", "", "n/a" if b.paper is None else f"{b.paper:.0f}",
         b.selected]
        for b in table2.baseline
    ]  # fmt: skip
    lines += markdown_table(
        ["F1 + F2", "trained labelling", "trained model", "test acc", "control (clean X)", "gain, points [95%]",
         "paper", "selected grid cell"],
        rows,
    )  # fmt: skip
    return "\n".join(lines) + "\n"


def headlines(table1: Table1, table2: Table2) -> dict[str, dict]:
    """What `dvc metrics show` shows of the tables: one small JSON per row, by file name, each
    table in a folder of its own (``dvc metrics show metrics/tables/table1``: a table's columns
    only, in 100 columns of a terminal)."""
    out = {}
    for r in table1.rows:
        rates = r.rates
        out[f"table1/{r.pair}.json"] = {
            "f1_hits_y1": rates.f1_hits_y1.ratio,
            "f2_hits_y2": rates.f2_hits_y2.ratio,
            "both": rates.both.ratio,
        }
    for r in table2.rows:  # its gain over the control row is in tables.md and S4.2, not a column here
        out[f"table2/{r.pair}-{r.labelling}-{r.arch}.json"] = {"test_acc": r.test_acc}
    for c in table2.controls:
        out[f"table2/control-{c.labelling}-{c.arch}.json"] = {"test_acc": c.test_acc}
    for b in table2.baseline:
        out[f"table2/original-{b.arch}.json"] = {"test_acc": b.test_acc}
    return out


def run(cfg: Config) -> None:
    table1, table2 = build_tables(cfg)
    table1.save(cfg.out_dir / "table1.json")
    table2.save(cfg.out_dir / "table2.json")
    save_text(markdown(table1, table2), cfg.out_dir / "tables.md")
    for name, values in headlines(table1, table2).items():
        save_json(values, cfg.metrics_dir / name)


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> dict:
    return {}  # arithmetic on stored results: no network


def audit_tables(cfg: Config, ctx: AuditContext) -> int:
    """Tables 1 and 2 and their headline files, rebuilt from the section 4 results, are the stored ones."""
    table1, table2 = build_tables(cfg)
    if (table1, table2) != (Table1.load(cfg.out_dir / "table1.json"), Table2.load(cfg.out_dir / "table2.json")):
        raise ctx.Mismatch(f"{cfg.out_dir}/table1.json or table2.json differ from the section-4 results below them")
    for name, values in headlines(table1, table2).items():
        ctx.same_json(cfg.metrics_dir / name, values)
    return 1


AUDIT = {"derived": audit_tables}
