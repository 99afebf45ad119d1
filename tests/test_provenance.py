"""Which code made a run: each stage under DVC records the commit it ran, and whether the code
differed from it (``environment.CodeVersion``), beside its wall time and thread count; the
report shows that record; the kept run in runs/ names a commit of this repository."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
from helpers_repo import REPO, git, git_commit_all
from test_figures import write_inputs

from classaware import cli
from classaware.environment import CodeVersion


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A committed workspace: code (src/, dvc.yaml) and what a run writes or configures."""
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    for name, text in {"src/pkg/a.py": "x = 1\n", "dvc.yaml": "stages: {}\n", "params.yaml": "seed: 0\n",
                       "dvc.lock": "schema: '2.0'\n", "README.md": "read me\n"}.items():  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git_commit_all(tmp_path, "code")
    return tmp_path


def test_a_committed_workspace_is_its_commit_whatever_the_run_wrote(repo):
    head = git(repo, "rev-parse", "HEAD")
    # a run rewrites params.yaml (classaware profile) and dvc.lock, writes outputs, documentation changes
    (repo / "params.yaml").write_text("seed: 1\n")
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (repo / "metrics").mkdir()
    (repo / "metrics" / "m.json").write_text("{}")
    (repo / "README.md").write_text("changed\n")
    code = CodeVersion.current(repo)
    assert code == CodeVersion(head, "HEAD", (), None)
    assert code.describe() == f"commit {head[:12]}"


def test_changed_or_new_code_is_not_a_commit_and_its_difference_is_hashed(repo):
    head = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "pkg" / "a.py").write_text("x = 2\n")
    first = CodeVersion.current(repo)
    assert (first.commit, first.changed) == (head, ("src/pkg/a.py",)) and len(first.diff_sha256) == 64
    (repo / "src" / "pkg" / "new.py").write_text("y = 1\n")  # untracked, not ignored: part of the code
    second = CodeVersion.current(repo)
    assert second.changed == ("src/pkg/a.py", "src/pkg/new.py") and second.diff_sha256 != first.diff_sha256
    (repo / "src" / "pkg" / "new.py").write_text("y = 2\n")
    assert CodeVersion.current(repo).diff_sha256 != second.diff_sha256  # the untracked file's bytes count
    assert second.describe() == (
        f"not a commit: commit {head[:12]} with uncommitted changes to src/pkg/a.py, src/pkg/new.py "
        f"(sha256 of the difference {second.diff_sha256[:16]})"
    )


def test_in_a_dvc_experiment_the_commit_is_its_baseline(repo, monkeypatch):
    """A queued experiment runs in a copy whose HEAD is a commit DVC made for it: the baseline
    (DVC_EXP_BASELINE_REV) is what exists in the repository."""
    baseline = git(repo, "rev-parse", "HEAD")
    (repo / "params.yaml").write_text("seed: 7\n")  # the experiment's -S seed_shift=...
    git(repo, "commit", "-qam", "the experiment's own commit")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", baseline)
    code = CodeVersion.current(repo)
    assert code == CodeVersion(baseline, "experiment baseline", (), None)
    assert code.describe() == f"commit {baseline[:12]} (the experiment's baseline)"


def test_outside_git_the_code_is_unknown(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    code = CodeVersion.current(tmp_path)
    assert code == CodeVersion(None, "HEAD", (), None) and code.describe() == "unknown: not run in a git repository"


def test_a_stage_under_dvc_logs_its_threads_and_records_them_with_its_code(repo, monkeypatch, caplog):
    inputs = write_inputs(repo / "results")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("DVC_STAGE", "figures")
    monkeypatch.setenv("DVC_ROOT", str(repo))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    argv = ["figures", *(f"--{k}={inputs[k]}" for k in ("transfer", "distance", "plane")), "--out_dir", "figures"]
    with caplog.at_level(logging.INFO, logger="classaware"):
        assert cli.main(argv) == 0
    head = git(repo, "rev-parse", "HEAD")
    assert f"figures: torch threads 1; code: commit {head[:12]}" in caplog.text  # the session runs on 1 thread
    (record,) = map(json.loads, (repo / "logs" / "timings.jsonl").read_text().splitlines())
    assert record["stage"] == "figures" and record["threads"] == 1 and record["experiment"] is None
    assert record["code"] == {"commit": head, "of": "HEAD", "changed": [], "diff_sha256": None}


def test_the_kept_run_names_a_commit_of_this_repository_and_its_report_shows_it():
    kept = sorted(p for p in (REPO / "runs").glob("*") if p.is_dir())
    if not kept:
        pytest.skip("no kept run: runs/ has no folder")
    for run in kept:
        assert (run / "timings.jsonl").is_file(), (
            f"runs/{run.name} lacks timings.jsonl, its stages' record of their code"
        )
        records = [json.loads(line) for line in (run / "timings.jsonl").read_text().splitlines() if line.strip()]
        workspace = [r for r in records if not r.get("experiment")]
        unrecorded = sorted({r["stage"] for r in workspace if "code" not in r})
        assert not unrecorded, (
            f"runs/{run.name}: {len(unrecorded)} stages ({', '.join(unrecorded[:3])}, ...) have no code record: the run "
            "was made before stages recorded their commit; make the kept run again"
        )
        report = (run / "report.md").read_text()
        for commit in {r["code"]["commit"] for r in workspace}:  # every run of a stage in the workspace
            found = subprocess.run(["git", "cat-file", "-t", commit], cwd=REPO, capture_output=True, text=True)
            assert found.stdout.strip() == "commit", f"{run.name} names commit {commit}, which this repository lacks"
        latest = {r["stage"]: r for r in workspace}  # the runs that made the outputs (the file is in time order)
        for commit in {r["code"]["commit"] for r in latest.values()}:
            assert f"commit {commit[:12]}" in report, f"{run.name}/report.md does not show commit {commit[:12]}"
