"""The DVC pipeline at `smoke` size, end to end through a real `dvc repro`, twice, from two clean
copies of the repository: every stage runs, the two runs pin identical hashes in dvc.lock (the
pipeline is reproducible on the CPU), a rerun does nothing, and a parameter change reruns only
the stages that read it.

The two runs go side by side, one thread each (with both on all cores, OpenMP's spinning
threads would slow each other down many times over).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import JPEG_ARCHIVE, REPO

from classaware.results import ClaimResults

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not JPEG_ARCHIVE.is_file(), reason=f"needs the CIFAR-10 archive {JPEG_ARCHIVE}"),
]
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _env() -> dict:
    # the `classaware` and `dvc` of this interpreter's environment, whatever PATH says
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, **SINGLE_THREAD, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def _clean_copy(dest: Path) -> Path:
    """The repository's files as a fresh clone would have them (tracked, plus untracked files
    git does not ignore), committed in a new git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def _run(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, cwd=cwd, env=_env(), capture_output=True, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    repos = [_clean_copy(tmp_path_factory.mktemp(name)) for name in ("clone_a", "clone_b")]
    cmd = f"classaware profile smoke --data {JPEG_ARCHIVE} && dvc repro"
    procs = [
        subprocess.Popen(
            cmd, shell=True, cwd=r, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for r in repos
    ]
    outputs = [p.communicate()[0] for p in procs]
    for repo, proc, out in zip(repos, procs, outputs, strict=True):
        assert proc.returncode == 0, f"dvc repro failed in {repo}:\n{out[-6000:]}"
    return repos[0], repos[1]


def _locked_hashes(repo: Path) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {
        (stage, kind, entry["path"]): entry.get("md5")
        for stage, body in lock["stages"].items()
        for kind in ("deps", "outs")
        for entry in body.get(kind, [])
    }


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


def test_two_clean_runs_pin_identical_hashes(runs):
    a, b = (_locked_hashes(r) for r in runs)
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
