"""The ``report`` stage on a small project made by the real stages (figures, verify, tables):
the dataset label, one verdict first (over the replicates where they are this run's), the claims,
every figure, the code the stages ran, the environment and the stage timings are in report.md
and report.html, each verdict in a colour of its own; missing optional inputs are said, a
missing claims table is an error."""

from __future__ import annotations

import json
import platform
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml
from helpers_repo import REPO
from helpers_results import claims_file
from test_figures import DATASET, run_figures, write_inputs

from classaware.environment import Environment
from classaware.files import save_text
from classaware.schema import ClaimResults, ReplicatedClaim, Replicates, Table1, Table2, TransferResults
from classaware.stages import report, tables, verify
from classaware.text import markdown_table
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
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CODE = {"commit": COMMIT, "of": "HEAD", "changed": [], "diff_sha256": None}
TIMINGS = [
    {"stage": "train@res_a", "command": "train", "seconds": 10.0, "finished": 100.0},
    {"stage": "figures", "command": "figures", "seconds": 3.25, "finished": 200.0, "threads": 2, "code": CODE},
    {"stage": "train@res_a", "command": "train", "seconds": 12.5, "finished": 300.0, "threads": 2, "code": CODE},
    # a stage of a DVC experiment (`classaware replicate`'s) logs here too: not the workspace's run
    {
        "stage": "figures",
        "command": "figures",
        "seconds": 99.0,
        "finished": 400.0,
        "threads": 1,
        "code": CODE,
        "experiment": "smoke-seed1",
    },
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
    save_text(yaml.safe_dump(claims_file(CLAIMS), sort_keys=False), root / "claims.yaml")
    verify.run(
        verify.Config(
            profile="smoke",
            claims=root / "claims.yaml",
            transfer=inputs["transfer"],
            distance=inputs["distance"],
            table1=results / "table1.json",
            table2=results / "table2.json",
            conditions=inputs["conditions"],
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
    opening = (
        "**Claims of this run: 1 pass, 0 pass within noise, 0 fail within noise, 1 fail, "
        "0 not under the paper's conditions, 1 not assessed (of 3).**"
    )
    assert opening in md and "unstable" not in md  # one run: no replicate words
    assert md.index(opening) < md.index("| pass | 1 | S3.1 |") < md.index("## The paper's claims\n")
    for name in ("fig3.png", "fig4.png", "fig5.png"):
        assert f"]({name})" in md
        assert (tmp_path / "report" / name).read_bytes() == (project / "figures" / name).read_bytes()
    assert "r(fooled, same)" in md and "| res_a | fgm-untargeted |" in md  # correlations
    assert (
        "| res_a | vgg_a_wsame | other | 8.446 | [8.184, 8.707] | 100.0% | n/a | n/a | 0 |" in md
    )  # every image censored: no Dist over the images that flip
    assert "| res_a | resnet10_w8 | 2000 | epoch 5 | 41.0 | 0.0 points below | 85.8 |" in md  # the zoo, the rule
    assert "| res_a@3 | resnet10_w8 | 2000 | epoch 3 | 31.0 | 0.0 points below | 90.8 |" in md
    assert "Every model holds it." in md
    assert "### Table 1" in md and "### Table 2" in md
    assert "## Code and environment" in md and platform.python_version() in md and torch.__version__ in md
    assert (
        "| dvc |" in md
        and "| code | commit 0123456789ab (every stage) |" in md
        and "| torch threads per stage | 2 |" in md
    )
    assert "| train@res_a | 12.5 |" in md and "10.0" not in md  # the last record of a stage wins
    assert (
        "| figures | 3.2 |" in md
        and "| **sum of the stages (not the wall time)** | **15.8** (0:00:16) |" in md
        and "The sum is the work of the stages, not the run's wall time" in md
        and "1 unreadable line" in md
    )
    assert "99.0" not in md  # the experiment's stage is not the workspace's


def test_html_shows_the_same_content_with_working_image_paths(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    _, page = run_report(project, tmp_path / "report")
    parsed = _Parsed()
    parsed.feed(page)
    assert parsed.images == ["fig3.png", "fig4.png", "fig5.png"]
    assert all((tmp_path / "report" / src).is_file() for src in parsed.images)
    assert parsed.tags.count("table") >= 6 and "blockquote" in parsed.tags
    assert DATASET in page and '<td class="verdict-fail">fail</td>' in page and "|---" not in page
    assert '<td class="verdict-not-assessed">not assessed</td>' in page and '<td class="verdict-pass">pass</td>' in page


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


def _with_replicates(
    project: Path, root: Path, replicate0: dict | None = None, profile: str = "smoke", shifts: tuple = (0, 1)
) -> Path:
    """A copy of ``project`` with a `classaware replicate` summary of two replicates (seed shifts
    ``shifts``) whose first has ``replicate0``'s (value, verdict) per claim (default: the project's own)."""
    shutil.copytree(project, root)
    own = ClaimResults.load(root / "results" / "claims.json").claims
    zero = replicate0 or {k: (c.value, c.verdict) for k, c in own.items()}
    other = {"S3.1": (0.5, "fail"), "S3.5": (0.0, "fail"), "S4.1": (0.9, "not assessed")}
    Replicates(profile, shifts, {k: ReplicatedClaim.of([zero[k][0], other[k][0]], [zero[k][1], other[k][1]])
                                 for k in own}).save(root / "results" / "replicates.json")  # fmt: skip
    return root


def test_where_the_replicates_are_this_runs_the_report_opens_with_their_verdict(project, tmp_path, monkeypatch):
    root = _with_replicates(project, tmp_path / "replicated")
    monkeypatch.chdir(root)
    md, page = run_report(root, tmp_path / "report")
    opening = ("**Claims over 2 seed replicates: 0 pass, 0 pass within noise, 0 fail within noise, 1 fail, 1 unstable, "
               "0 not under the paper's conditions, 1 not assessed (of 3).** This is the verdict over the replicates")  # fmt: skip
    assert opening in md and "Claims of this run" not in md
    order = [opening, "| unstable | 1 | S3.1 |", "## The paper's claims over 2 seed replicates",
             "| S3.1 | unstable | pass | fail | 0.", "## The paper's claims in replicate 0 (this workspace's run)"]  # fmt: skip
    assert [md.index(part) for part in order] == sorted(md.index(part) for part in order)
    assert "| S3.5 | fail | fail | fail |" in md  # over the replicates, then each replicate's verdict
    assert '<td class="verdict-unstable">unstable</td>' in page


def test_replicates_of_another_run_are_said_and_not_used(project, tmp_path, monkeypatch):
    own = ClaimResults.load(project / "results" / "claims.json").claims
    changed = {k: (c.value, c.verdict) for k, c in own.items()} | {"S3.1": (0.123, "pass")}
    root = _with_replicates(project, tmp_path / "stale", replicate0=changed)
    monkeypatch.chdir(root)
    md, _ = run_report(root, tmp_path / "report")
    assert "**Claims of this run: 1 pass," in md and "## The paper's claims over" not in md
    assert (f"*`{root / 'results' / 'replicates.json'}` is not about this run: none of its replicates (profile `smoke`) has this "
            "run's claims. Run `classaware replicate` again") in md  # fmt: skip


def test_replicates_at_unseen_seed_shifts_name_the_one_that_is_this_run(project, tmp_path, monkeypatch):
    """A confirmatory run's replicates start at seed shift 2 (`--first_shift`); the report finds
    this workspace's run among them by its claims."""
    root = _with_replicates(project, tmp_path / "confirmatory", shifts=(2, 3))
    monkeypatch.chdir(root)
    md, _ = run_report(root, tmp_path / "report")
    assert "(replicate 2 is this workspace's run)" in md
    assert "## The paper's claims in replicate 2 (this workspace's run)" in md and "| replicate 2 | replicate 3 |" in md


def test_the_verdict_table_names_the_claims_in_the_papers_order():
    table = report.verdict_table({"S3.10": "pass", "S4.1": "unstable", "S3.2": "pass", "S3.1": "fail"},
                                 report.REPLICATED_VERDICTS)  # fmt: skip
    assert (
        "| pass | 2 | S3.2, S3.10 |" in table and "| fail | 1 | S3.1 |" in table and "| unstable | 1 | S4.1 |" in table
    )
    assert "| pass within noise | 0 | - |" in table


def test_every_verdict_has_a_colour_of_its_own_and_its_word():
    assert set(report.VERDICT_COLOURS) == set(report.REPLICATED_VERDICTS)
    assert len(set(report.VERDICT_COLOURS.values())) == len(report.VERDICT_COLOURS)
    page = report.to_html(
        "\n".join(
            markdown_table(["verdict"], [[v] for v in report.REPLICATED_VERDICTS] + [["pass; not on rho (0.9)"]])
        ),
        "t",
    )
    for verdict, (text, background) in report.VERDICT_COLOURS.items():
        css = "verdict-" + verdict.replace(" ", "-")
        assert f'<td class="{css}">{verdict}</td>' in page and f"td.{css}{{color:{text};background:{background}" in page
    assert '<td class="verdict-pass">pass; not on rho (0.9)</td>' in page  # a pass with a caveat is a pass


def test_the_code_is_said_in_plain_words_when_it_is_not_a_commit():
    changed = {**CODE, "changed": ["src/classaware/plots.py"], "diff_sha256": "ab" * 32}
    records = [{"stage": "figures", "code": changed}, {"stage": "report", "code": changed}]
    assert report.code_lines(records) == [
        ("code", "not a commit: commit 0123456789ab with uncommitted changes to src/classaware/plots.py "
                 "(sha256 of the difference abababababababab) (every stage)")
    ]  # fmt: skip
    mixed = [{"stage": "train@a", "code": CODE}, {"stage": "figures", "code": changed}, {"stage": "old"}]
    assert [name for name, _ in report.code_lines(mixed)] == ["code of train@a", "code of figures", "code of old"]
    assert report.code_lines(mixed)[2][1] == "not recorded (a stage run before records had it)"
    baseline = {**CODE, "of": "experiment baseline"}
    assert report.code_lines([{"stage": "a", "code": baseline}]) == [
        ("code", "commit 0123456789ab (the experiment's baseline) (every stage)")
    ]


def test_a_kept_runs_report_opens_with_the_verdict_over_its_replicates():
    kept = sorted(p.parent for p in (REPO / "runs").glob("*/replicates.json"))
    if not kept:
        pytest.skip("no kept run with replicates in runs/")
    for run in kept:
        n = len(json.loads((run / "replicates.json").read_text())["seed_shifts"])
        md = (run / "report.md").read_text()
        first = md.index("> **Claims") if "> **Claims" in md else -1
        assert md[first:].startswith(f"> **Claims over {n} seed replicates: "), (
            f"runs/{run.name}/report.md: {md[first : first + 80]!r}"
        )


def test_missing_claims_table_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="claims.json.*claims.md"):
        run_report(tmp_path, tmp_path / "report")
