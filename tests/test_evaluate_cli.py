"""``classaware evaluate`` and ``classaware score`` on the command line: every output file, the
tables recomputed from samples.npz and from a predictions CSV, the figures and their CSVs, bad
input as one line and exit status 2 with nothing already written lost, and README's example."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pytest
import torch
from helpers_evaluate import CALLS, toy_data
from helpers_repo import REPO

from classaware import cli
from classaware.evaluation.result import Evaluation
from classaware.evaluation.samples import AdversarialLabels, Samples, SetKey

sys.path.insert(0, str(Path(__file__).parent))
OUTPUTS = (
    "summary.csv",
    "summary.json",
    "per_class.csv",
    "pairs.csv",
    "samples.npz",
    "predictions.csv",
    "report.md",
    "report.html",
    "manifest.json",
)


@pytest.fixture
def data_file(tmp_path) -> Path:
    x, y = toy_data(40)
    torch.save({"x": x, "y": y}, tmp_path / "data.pt")
    return tmp_path / "data.pt"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_writes_every_file_and_score_recomputes_the_tables(tmp_path, data_file):
    out = tmp_path / "out"
    argv = ["evaluate", "--source", "py:helpers_evaluate:MODEL", "--targets", "py:helpers_evaluate:linear_other", "py:helpers_evaluate:linear",
            "--data", f"tensor:{data_file}", "--attack", "pgd(eps=0.5, alpha=0.1, steps=3)", "torchattacks:FGSM(eps=0.1)",
            "--eps", "0.2", "0.4", "--objective", "untargeted", "targeted", "--quantize", "none", "round", "--out", str(out),
            "--device", "cpu", "--no-figures", "--dist", "5", "--max_radius", "2", "--step", "0.1", "--tol", "0.01"]  # fmt: skip
    assert cli.main(argv) == 0
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    summary = _rows(out / "summary.csv")
    assert {r["metric"] for r in summary} >= {"unfooled", "different", "same", "fooled", "target_hit", "split:other", "success:all_images",
                                              "success:torchattack_fooling_rate", "quantization_changed", "clean_agreement"}  # fmt: skip
    assert len({(r["attack"], r["objective"], r["quantize"]) for r in summary}) == 2 * 2 * 2 * 2
    assert (out / "cache").is_dir()
    again = tmp_path / "again"
    assert cli.main(["score", "--samples", str(out / "samples.npz"), "--out", str(again), "--no-figures"]) == 0
    dist_free = [r for r in summary if r["metric"] != "dist"]  # Dist needs the models: samples.npz holds labels only
    assert _rows(again / "summary.csv") == dist_free
    from_csv = tmp_path / "from_csv"
    assert (
        cli.main(
            [
                "score",
                "--samples",
                str(out / "predictions.csv"),
                "--out",
                str(from_csv),
                "--no-figures",
                "--num_classes",
                "3",
            ]
        )
        == 0
    )
    counts = [(r["target"], r["metric"], r["count"], r["n"]) for r in _rows(from_csv / "summary.csv")]
    assert counts == [(r["target"], r["metric"], r["count"], r["n"]) for r in dist_free]


def test_the_figures_are_drawn_with_their_data(tmp_path):
    y = torch.tensor([0, 1, 2, 0, 1, 2, 1, 0])
    sets = tuple(
        AdversarialLabels(
            SetKey("pgd", eps, "untargeted"), None, (y + 1) % 3, torch.stack([(y + k) % 3 for k in (1, 2)])
        )
        for eps in (0.5, 1.0)
    )
    ev = Evaluation(Samples("toy", "F1", ("F2a", "F2b"), 3, ("cat", "dog", "ship"), y, y.clone(), y.repeat(2, 1), sets))
    written = ev.save(tmp_path)
    pngs = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert [p[:4] for p in pngs] == ["bars", "bars", "eps_", "pair", "pair"]
    for png in (tmp_path / "figures").glob("*.png"):
        assert png.with_suffix(".csv").is_file() and png.stat().st_size > 10_000
    table = {(r.target, r.eps, r.metric): r.count for r in ev.table()}
    for row in _rows(next((tmp_path / "figures").glob("bars_*.csv"))):
        assert int(row["count"]) == table[(row["target"], float(row["eps"]), row["metric"])]
    assert "figures/" in (tmp_path / "report.md").read_text() and tmp_path / "report.html" in written


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--source", "tv:resnet_nope"], "unknown torchvision model"),
     (["--attack", "nope(eps=1)"], "unknown attack 'nope'"),
     (["--targets", "py:helpers_evaluate:linear_four_classes"], "different numbers of classes"),
     (["--attack", "pgd(eps=1.0, alpha=0.1, steps=2)", "--saved", "tabench:x"], "either --attack"),
     (["--data", "folder:NOLABELS"], "no class sub-folders")],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2_before_any_attack_and_nothing_written_is_lost(
    tmp_path, data_file, capsys, args, message
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("an earlier result\n")
    (tmp_path / "NOLABELS").mkdir()
    base = {"--source": "py:helpers_evaluate:MODEL", "--targets": "py:helpers_evaluate:linear_other", "--data": f"tensor:{data_file}",
            "--attack": "py:helpers_evaluate:counting_attack"}  # fmt: skip
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value.replace("NOLABELS", str(tmp_path / "NOLABELS"))
    CALLS["attack"] = 0
    argv = ["evaluate", *(a for kv in base.items() for a in kv), "--out", str(out), "--device", "cpu", "--no-figures"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert CALLS["attack"] == 0
    assert (out / "summary.csv").read_text() == "an earlier result\n"


def _readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_block("### From Python"), "README.md", "exec"), {"__name__": "readme_evaluate"})
    assert (tmp_path / "evaluation" / "summary.csv").is_file()
