"""The ``report`` stage on a small project made by the real stages (figures, verify, tables):
the dataset label, the claims, every figure, the environment and the stage timings are in
report.md and report.html; missing optional inputs are said, a missing claims table is an error."""

from __future__ import annotations

import json
import platform
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml
from test_figures import DATASET, run_figures, write_inputs

from classaware.artifacts import save_text
from classaware.environment import Environment
from classaware.results import Table1, Table2, TransferResults
from classaware.stages import report, tables, verify
from classaware.training import TrainMetrics

CLAIMS = [
    {
        "id": "S3.1",
        "figure": "Fig. 3",
        "claim": "same mistakes track fooling",
        "metric": "min_corr_fooled_same",
        "paper": "> 0.98",
        "test": ">=",
        "bound": {"smoke": -1.0},
        "why": "a test",
    },
    {
        "id": "S3.5",
        "figure": "Fig. 5",
        "claim": "same-mistake ratio rises with eps",
        "metric": "frac_same_rises_with_eps",
        "paper": "all",
        "test": ">=",
        "bound": {"smoke": 1.01},
        "why": "a test",
    },
    {
        "id": "S4.1",
        "figure": "Table 1",
        "claim": "N-targeted attack succeeds",
        "metric": "table1_min_both",
        "paper": "> 90%",
        "test": ">=",
        "bound": {"smoke": None},
        "why": "a test",
    },
]
TIMINGS = [
    {"stage": "train@res_a", "command": "train", "seconds": 10.0, "finished": 100.0},
    {"stage": "figures", "command": "figures", "seconds": 3.25, "finished": 200.0},
    {"stage": "train@res_a", "command": "train", "seconds": 12.5, "finished": 300.0},
]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """results/, figures/, metrics/ and logs/ as `dvc repro` leaves them, at toy size."""
    root = tmp_path_factory.mktemp("project")
    results = root / "results"
    inputs = write_inputs(results)
    run_figures(inputs, root / "figures")
    empty1, empty2 = Table1(DATASET, ()), Table2(DATASET, 0.1, (), (), ())
    empty1.save(results / "table1.json")
    empty2.save(results / "table2.json")
    save_text(tables.markdown(empty1, empty2), results / "tables.md")
    save_text(yaml.safe_dump(CLAIMS, sort_keys=False), root / "claims.yaml")
    verify.run(
        verify.Config(
            profile="smoke",
            claims=root / "claims.yaml",
            transfer=inputs["transfer"],
            distance=inputs["distance"],
            table1=results / "table1.json",
            table2=results / "table2.json",
            out=results / "claims.json",
            table=results / "claims.md",
            metrics_dir=root / "metrics" / "claims",
        )
    )
    for name, acc in (("res_a", 0.41), ("vgg_a", 0.52)):
        TrainMetrics("resnet10_w8", DATASET, 2000, 500, {"3": acc - 0.1, "5": acc}, Environment.current()).save(
            results / "train" / f"{name}.json"
        )
    save_text("".join(json.dumps(t) + "\n" for t in TIMINGS) + "{truncated\n", root / "logs" / "timings.jsonl")
    return root


def run_report(root: Path, out_dir: Path, profile: str = "smoke") -> tuple[str, str]:
    report.run(
        report.Config(
            profile=profile,
            results=root / "results",
            figures=root / "figures",
            train_results=root / "results" / "train",
            out_dir=out_dir,
        )
    )
    return (out_dir / "report.md").read_text(), (out_dir / "report.html").read_text()


class _Parsed(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def test_report_has_dataset_claims_figures_environment_and_timings(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    md, _ = run_report(project, tmp_path / "report")
    assert f"Dataset: {DATASET}" in md and "not on the official CIFAR-10" in md and "paper's protocol" in md
    assert "Profile: `smoke`" in md
    assert (project / "results" / "claims.md").read_text().strip() in md
    assert "**Claims: 1 pass, 0 pass within noise, 0 fail within noise, 1 fail, 1 not assessed (of 3).**" in md
    for name in ("fig3.png", "fig4.png", "fig5.png"):
        assert f"]({name})" in md
        assert (tmp_path / "report" / name).read_bytes() == (project / "figures" / name).read_bytes()
    assert "r(fooled, same)" in md and "| res_a | fgm-untargeted |" in md  # correlations
    assert (
        "| res_a | vgg_a_wsame | other | 8.446 | [8.184, 8.707] | 100.0% | n/a |" in md
    )  # censored: n/a by the old rule
    assert "| res_a | resnet10_w8 | 2000 | epoch 5 | 41.0 | epoch 3: 31.0 |" in md  # zoo accuracies
    assert "### Table 1" in md and "### Table 2" in md
    assert "## Environment" in md and platform.python_version() in md and torch.__version__ in md and "| dvc |" in md
    assert "| train@res_a | 12.5 |" in md and "10.0" not in md  # the last record of a stage wins
    assert "| figures | 3.2 |" in md and "**15.8** (0:00:16)" in md and "1 unreadable line" in md


def test_html_shows_the_same_content_with_working_image_paths(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    _, page = run_report(project, tmp_path / "report")
    parsed = _Parsed()
    parsed.feed(page)
    assert parsed.images == ["fig3.png", "fig4.png", "fig5.png"]
    assert all((tmp_path / "report" / src).is_file() for src in parsed.images)
    assert parsed.tags.count("table") >= 6 and "blockquote" in parsed.tags
    assert DATASET in page and '<td class="fail">FAIL</td>' in page and "|---" not in page


def test_missing_optional_inputs_are_said_not_fatal(project, tmp_path, monkeypatch):
    root = tmp_path / "bare"
    (root / "results").mkdir(parents=True)
    for name in ("claims.md", "claims.json"):
        shutil.copy(project / "results" / name, root / "results" / name)
    monkeypatch.chdir(root)
    md, _ = run_report(root, tmp_path / "report")
    assert "**Dataset: unknown**" in md
    for missing in (
        "fig3.png",
        "fig4.png",
        "fig5.png",
        "correlations.csv",
        "distance.json",
        "train/*.json",
        "tables.md",
    ):
        assert f"{missing}` was not found" in md
    assert "No stage timings: `logs/timings.jsonl` was not found" in md


def test_official_dataset_is_named_as_the_papers(project, tmp_path, monkeypatch):
    root = tmp_path / "official"
    TransferResults("CIFAR-10 (official)", {}).save(root / "results" / "transfer.json")
    for name in ("claims.md", "claims.json"):
        shutil.copy(project / "results" / name, root / "results" / name)
    monkeypatch.chdir(root)
    md, _ = run_report(root, tmp_path / "report", profile="paper")
    assert "**Dataset: CIFAR-10 (official)**, as in the paper." in md and "not on the official" not in md
    assert "Profile: `paper`** (the paper's sizes)" in md


def test_missing_claims_table_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="claims.json.*claims.md"):
        run_report(tmp_path, tmp_path / "report")
