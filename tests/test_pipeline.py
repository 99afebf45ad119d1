"""The DVC pipeline at `smoke` size, end to end through a real `dvc repro` and through
``classaware repro --jobs 2``, from two clean copies of the repository (the session's runs, see
conftest.py): every stage runs, the two runs pin identical hashes in dvc.lock (the pipeline is
reproducible on the CPU, and running stages in parallel changes nothing), a rerun does nothing,
and a parameter change reruns only the stages that read it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import JPEG_ARCHIVE, smoke_env

from classaware.results import ClaimResults

pytestmark = [
    pytest.mark.slow,
    pytest.mark.smoke_run("serial", "jobs2"),
    pytest.mark.skipif(not JPEG_ARCHIVE.is_file(), reason=f"needs the CIFAR-10 archive {JPEG_ARCHIVE}"),
]


def _run(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, cwd=cwd, env=smoke_env(), capture_output=True, text=True)


def test_every_stage_ran_and_the_pipeline_is_up_to_date(runs):
    repo, _ = runs
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


def test_two_clean_runs_pin_identical_hashes(runs, smoke_runs):
    a, b = smoke_runs["serial"].hashes, smoke_runs["jobs2"].hashes  # as the runs left them
    assert a.keys() == b.keys()
    differing = sorted(k for k in a if a[k] != b[k])
    assert not differing, f"hashes differ between two identical runs: {differing}"
    assert all(a[k] for k in a if k[1] == "outs"), "every output has a hash"


def test_claims_are_verified_and_labelled_with_the_data_source(runs):
    repo, _ = runs
    claims = ClaimResults.load(repo / "results/claims.json")
    ids = {c["id"] for c in yaml.safe_load((repo / "claims.yaml").read_text())}
    assert set(claims.claims) == ids == {p.stem for p in (repo / "metrics/claims").glob("*.json")}
    assert claims.profile == "smoke" and claims.dataset == "CIFAR-10 (JPEG q75 copy)"
    assert "CIFAR-10 (JPEG q75 copy)" in (repo / "report/report.md").read_text()


def test_dvc_metrics_show_is_a_table_a_person_can_read(runs):
    """The headline numbers only: claims, Tables 1 and 2, the zoo's accuracies, in few columns."""
    repo, _ = runs
    shown = _run("dvc metrics show", repo)
    assert shown.returncode == 0, shown.stderr
    header = shown.stdout.splitlines()[0].split()
    assert header[0] == "Path" and len(header) <= 10, header
    assert {"value", "verdict", "test_acc", "both"} <= set(header)


def test_a_rerun_does_nothing_and_a_param_change_reruns_only_its_dependents(runs):
    repo, _ = runs
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
