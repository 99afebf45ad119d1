"""The GPU check's --cpu rehearsal, so the script cannot rot between GPU runs: ``bash
benchmarks/gpu_check.sh --cpu OUT`` runs every step (no install: this environment's packages),
the whole pipeline, the CUDA tests (skipped here) and every benchmark, and writes
gpu_check.json with every key of ``benchmarks/gpu_check.py``'s KEYS, each stage's time, each
claim's verdict and each throughput a positive number; ``classaware estimate`` reads it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from helpers_repo import JPEG_ARCHIVE, REPO
from session_runs import SmokeRun

from classaware import cli
from classaware.schema import VERDICTS

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402  (benchmarks/ is not a package)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.smoke_run("gpu_check"),
    pytest.mark.skipif(not JPEG_ARCHIVE.is_file(), reason=f"needs the CIFAR-10 archive {JPEG_ARCHIVE}"),
]


@pytest.fixture(scope="module")
def rehearsal(background) -> tuple[SmokeRun, Path]:
    """The session's run of ``bash benchmarks/gpu_check.sh --cpu OUT`` (session_runs.RUNS), and OUT."""
    return background.wait("gpu_check"), background.paths["gpu_check"]


def positive_numbers(tree) -> list:
    """Every leaf number of ``tree`` (a number or nested dicts of them)."""
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in positive_numbers(v)]
    return [tree]


def test_the_rehearsal_succeeds_and_writes_every_key(rehearsal):
    done, out = rehearsal
    assert done.returncode == 0, done.output[-8000:]
    doc = json.loads((out / "gpu_check.json").read_text())
    assert doc["errors"] == []
    assert set(doc) == set(gpu_check.KEYS)
    for key, subkeys in gpu_check.KEYS.items():
        if subkeys is not None:
            assert set(doc[key]) == set(subkeys), key
    for name, subkeys in gpu_check.THROUGHPUT_KEYS.items():
        assert set(doc["throughput"][name]) == set(subkeys), name
    assert doc["mode"] == "cpu" and doc["profile"] == "gpu-check" and doc["size"] == "cpu"
    assert set(doc["steps"]) == {"install", "env", "copy", "pipeline", "cuda_tests", "bench"}
    assert all(s["rc"] == 0 and s["seconds"] >= 0 for s in doc["steps"].values())
    assert "gpu_check.log" in {p.name for p in out.iterdir()} and "=== done in" in (out / "gpu_check.log").read_text()


def test_every_stage_ran_and_has_its_time(rehearsal):
    _, out = rehearsal
    doc = json.loads((out / "gpu_check.json").read_text())
    locked = set(yaml.safe_load((out / "dvc.lock").read_text())["stages"])
    assert set(doc["stages"]) == locked | {"report"}  # report has no outputs, so no lock entry
    assert all(isinstance(s, float | int) and s >= 0 for s in doc["stages"].values())
    assert doc["pipeline"] == {
        "rc": 0,
        "timed_out": False,
        "wall_s": doc["pipeline"]["wall_s"],
        "stages_run": len(doc["stages"]),
    }
    assert doc["pipeline"]["wall_s"] > sum(doc["stages"].values())


def test_every_claim_has_a_verdict_and_the_cuda_tests_were_skipped(rehearsal):
    _, out = rehearsal
    doc = json.loads((out / "gpu_check.json").read_text())
    assert set(doc["claims"]) == {c["id"] for c in yaml.safe_load((REPO / "claims.yaml").read_text())["claims"]}
    assert set(doc["claims"].values()) <= set(VERDICTS)
    assert doc["cuda_tests"]["skipped"] > 0 and doc["cuda_tests"]["failed"] == doc["cuda_tests"]["errors"] == 0


def test_every_throughput_is_a_positive_number(rehearsal):
    _, out = rehearsal
    t = json.loads((out / "gpu_check.json").read_text())["throughput"]
    measured = [
        t["train"]["img_per_s"],
        t["train"]["state_save_s"],
        t["infer"]["img_per_s"],
        t["pgd"]["img_per_s"],
        t["pgd"]["forward_img_per_s"],
        t["n_targeted"]["img_per_s"],
        t["distance"]["img_per_s"],
        t["distance"]["forwards_per_image"],
        t["concurrent_train"]["img_per_s"],
        t["pipeline"],
    ]
    numbers = [x for m in measured for x in positive_numbers(m)]
    assert all(isinstance(x, float | int) and x > 0 for x in numbers), t
    assert set(t["train"]["img_per_s"]) == set(gpu_check.SIZES["cpu"].archs)
    assert set(t["concurrent_train"]["img_per_s"]) == {str(k) for k in gpu_check.CONCURRENT}


def test_the_estimate_reads_the_rehearsals_figures(rehearsal, capsys, monkeypatch):
    _, out = rehearsal
    monkeypatch.chdir(REPO)
    assert cli.main(["estimate", "--profile", "quick", "--throughput", str(out / "gpu_check.json")]) == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1].startswith("total: ") and "total: ?" not in printed
