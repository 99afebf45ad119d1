"""The DVC pipeline at `smoke` size, end to end through a real `dvc repro` in a clean copy of the
repository (the session's serial run, see session_runs.py): every stage runs, every stage records the
commit it ran and the report shows it, a fresh clone without DVC's cache shows the metrics in the
paper's claim order and draws the plots, a rerun does nothing, and a parameter change reruns only
the stages that read it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers_repo import JPEG_ARCHIVE, git_commit_all, smoke_env

from classaware.environment import CodeVersion
from classaware.schema import ClaimResults
from classaware.text import unpadded

pytestmark = [
    pytest.mark.slow,
    pytest.mark.smoke_run("serial"),
    pytest.mark.skipif(not JPEG_ARCHIVE.is_file(), reason=f"needs the CIFAR-10 archive {JPEG_ARCHIVE}"),
]


def _run(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, cwd=cwd, env=smoke_env(), capture_output=True, text=True)


def test_every_stage_ran_and_the_pipeline_is_up_to_date(serial):
    repo = serial
    stages = set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])
    assert {"prepare", "transfer", "distance", "plane", "figures", "tables", "verify", "report"} <= stages
    assert any(s.startswith("train@") for s in stages) and any(s.startswith("train_nonrobust@") for s in stages)
    status = _run("dvc status --json", repo)
    assert status.returncode == 0, status.stderr
    # data.dvc pins the official archive, which an offline machine does not have
    assert set(json.loads(status.stdout)) <= {"data.dvc"}, status.stdout
    for path in (
        "figures/fig3.png",
        "figures/fig4.png",
        "figures/fig5.png",
        "results/claims.md",
        "results/tables.md",
        "report/report.md",
    ):
        assert (repo / path).stat().st_size > 0, path


def test_claims_are_verified_and_labelled_with_the_data_source(serial):
    repo = serial
    claims = ClaimResults.load(repo / "results/claims.json")
    ids = {c["id"] for c in yaml.safe_load((repo / "claims.yaml").read_text())["claims"]}
    assert set(claims.claims) == ids == {unpadded(p.stem) for p in (repo / "metrics/claims").glob("*.json")}
    assert claims.profile == "smoke" and claims.dataset == "CIFAR-10 (JPEG q75 copy)"
    assert "CIFAR-10 (JPEG q75 copy)" in (repo / "report/report.md").read_text()


def test_dvc_metrics_show_is_a_table_a_person_can_read(serial):
    """The headline numbers only: claims, Tables 1 and 2, the zoo's accuracies, in few columns."""
    repo = serial
    shown = _run("dvc metrics show", repo)
    assert shown.returncode == 0, shown.stderr
    header = shown.stdout.splitlines()[0].split()
    assert header[0] == "Path" and len(header) <= 10, header
    assert {"value", "verdict", "test_acc", "both"} <= set(header)


def test_every_stage_records_the_commit_it_ran_and_the_report_shows_it(serial):
    repo = serial
    records = [json.loads(line) for line in (repo / "logs/timings.jsonl").read_text().splitlines()]
    stages = set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])
    assert {r["stage"] for r in records} == stages
    assert all(r["threads"] == 1 and r["experiment"] is None for r in records)  # the session's runs use one thread
    report = (repo / "report/report.md").read_text()
    for code in {CodeVersion(**{**r["code"], "changed": tuple(r["code"]["changed"])}) for r in records}:
        found = _run(f"git cat-file -t {code.commit}", repo)
        assert found.stdout.strip() == "commit", code
        assert code.changed == () and code.describe() in report  # a clean copy: its code is the commit


def _fresh_clone(run: Path, where: Path) -> Path:
    """``run``'s workspace as its author would commit it (what git does not ignore: the headline
    metrics and the figures among it), cloned: no DVC cache, nothing git does not track."""
    author = where / "author"
    files = _run("git ls-files -co --exclude-standard -z", run).stdout
    for name in filter(None, files.split("\0")):
        (author / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / name, author / name)
    git_commit_all(author, "run")
    assert _run(f"git clone -q {author} {where / 'clone'}", where).returncode == 0
    return where / "clone"


def test_a_fresh_clone_without_dvcs_cache_shows_the_metrics_in_claim_order_and_draws_the_plots(serial, tmp_path):
    clone = _fresh_clone(serial, tmp_path)
    assert not (clone / ".dvc" / "cache").exists() and not (clone / "results").exists()
    shown = _run("dvc metrics show", clone)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = [line.split()[0] for line in shown.stdout.splitlines() if line.startswith("metrics/claims/")]
    ids = [c["id"] for c in yaml.safe_load((clone / "claims.yaml").read_text())["claims"]]  # the paper's order
    assert [unpadded(Path(row).stem) for row in rows] == ids
    assert any(line.startswith("metrics/zoo/") for line in shown.stdout.splitlines())
    assert any(line.startswith("metrics/tables/") for line in shown.stdout.splitlines())
    drawn = _run("dvc plots show --out plots_html", clone)
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    page = (clone / "plots_html" / "index.html").read_text()
    for plot in ("fig3_same_vs_dist", "fig3_same_vs_fooled", "fig5_same", "fig5_different", "fig4.png"):
        assert plot in page, plot
    assert '"field": "attack"' in page and '"detail": {"field": "target"' in page  # the templates' panels and lines


def test_a_rerun_does_nothing_and_a_param_change_reruns_only_its_dependents(serial):
    repo = serial
    again = _run("dvc repro", repo)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["plane"]["span"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = _run("dvc repro", repo)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    ran = {line.split("'")[1] for line in changed.stdout.splitlines() if line.startswith("Running stage")}
    assert "plane" in ran
    assert ran <= {"plane", "figures", "report"}, ran
