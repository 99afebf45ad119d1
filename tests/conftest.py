"""Shared test set-up: hypothesis profiles, small fixtures, and the session's smoke pipeline runs.

Profiles (chosen by HYPOTHESIS_PROFILE; tox sets ``ci``): ``ci`` is derandomized, so a CI run
is repeatable, with no deadline (CPU timings vary); ``dev`` explores more examples.

The `smoke` pipeline runs once per session in clean copies of the repository, one per way of
running it (a plain ``dvc repro``, ``classaware repro --jobs 2`` and ``--jobs 8``, and through
SLURM when a one-node cluster can be started), two at a time, every stage on one thread (with
all on all cores, OpenMP's spinning threads would slow each other down many times over).
tests/test_pipeline.py and tests/test_scaleout.py check what they left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import slurm_cluster
import torch
import yaml
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parents[1]
JPEG_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tests run tiny tensors, many times faster on one thread than on two busy cores (OpenMP
    threads spin while they wait); the DVC pipeline test sets its own subprocesses' threads."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- smoke pipeline runs
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SMOKE_PROFILE = f"classaware profile smoke --data {JPEG_ARCHIVE}"
# how each clean copy runs the pipeline after switching to the smoke profile
SMOKE_RUNNERS = {
    "serial": "dvc repro",
    "jobs2": "classaware repro --jobs 2",
    "jobs8": "classaware repro --jobs 8",
    "slurm": "classaware slurm submit --gpus_per_job 0",
}
# Runs of one wave start together, the next wave when they have all ended. Measured on this
# repository's 2-core machine (shared with other work): all four at once took 1057 s, these
# two waves 781 s (REPRODUCE.md, "Running stages at once").
SMOKE_WAVES = (("serial", "jobs2"), ("jobs8", "slurm"))
SMOKE_TIMEOUT = 3600  # seconds per wave: a hung run fails the session instead of stalling it


def smoke_env(base: dict | None = None) -> dict:
    """``base`` (default: os.environ) on one thread, with the `classaware` and `dvc` of this
    interpreter's environment first on PATH, whatever PATH says."""
    base = os.environ if base is None else base
    bin_dir = str(Path(sys.executable).parent)
    return {**base, **SINGLE_THREAD, "PATH": bin_dir + os.pathsep + base.get("PATH", "")}


def clean_copy(dest: Path) -> Path:
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


def locked_hashes(repo: Path) -> dict:
    """(stage, deps or outs, path) -> md5 of every entry of ``repo``'s dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {
        (stage, kind, entry["path"]): entry.get("md5")
        for stage, body in lock["stages"].items()
        for kind in ("deps", "outs")
        for entry in body.get(kind, [])
    }


@pytest.fixture(scope="session")
def slurm():
    """A one-node SLURM cluster for the session (:mod:`slurm_cluster`), or why there is none."""
    reason = slurm_cluster.unavailable()
    if reason:
        yield reason
        return
    stack = contextlib.ExitStack()
    try:
        cluster = stack.enter_context(slurm_cluster.one_node_cluster())
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        yield f"SLURM did not start: {exc}"
        return
    with stack:
        yield cluster


@dataclass(frozen=True)
class SmokeRun:
    repo: Path
    returncode: int
    output: str  # what it printed
    seconds: float
    hashes: dict  # dvc.lock's hashes as the run left them: later tests may change the workspace


def _finished(proc: subprocess.Popen, cluster) -> bool:
    """A run is over when its process exited and, for a SLURM submission, the jobs ended too."""
    return proc.poll() is not None and (cluster is None or proc.returncode != 0 or not cluster.busy())


def _run_together(
    names: list[str], repos: dict[str, Path], logs: dict[str, Path], env: dict, cluster
) -> dict[str, tuple[int, float]]:
    """Start every runner at once in its copy; (exit status, seconds) of each when it is over."""
    start = time.perf_counter()
    with contextlib.ExitStack() as outputs:
        procs = {
            name: subprocess.Popen(
                f"{SMOKE_PROFILE} && {SMOKE_RUNNERS[name]}",
                shell=True,
                cwd=repos[name],
                env=env,
                text=True,
                stdout=outputs.enter_context(open(logs[name], "w")),
                stderr=subprocess.STDOUT,
            )
            for name in names
        }
        seconds: dict[str, float] = {}
        while len(seconds) < len(procs):
            for name, proc in procs.items():
                if name not in seconds and _finished(proc, cluster if name == "slurm" else None):
                    seconds[name] = time.perf_counter() - start
            assert time.perf_counter() - start < SMOKE_TIMEOUT, (
                f"smoke runs still going after {SMOKE_TIMEOUT} s: {set(procs) - set(seconds)}"
            )
            time.sleep(1)
    return {name: (proc.returncode, seconds[name]) for name, proc in procs.items()}


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory, slurm) -> dict[str, SmokeRun]:
    """Every runner of SMOKE_RUNNERS (SLURM's only when a cluster started), wave by wave."""
    if not JPEG_ARCHIVE.is_file():
        pytest.skip(f"needs the CIFAR-10 archive {JPEG_ARCHIVE}")
    cluster = None if isinstance(slurm, str) else slurm
    env = smoke_env(cluster.env if cluster else None)
    waves = [[name for name in wave if name != "slurm" or cluster] for wave in SMOKE_WAVES]
    repos = {name: clean_copy(tmp_path_factory.mktemp(name)) for wave in waves for name in wave}
    logs = {name: tmp_path_factory.mktemp(f"{name}_output") / "output.txt" for name in repos}
    ended = {
        name: outcome for wave in waves for name, outcome in _run_together(wave, repos, logs, env, cluster).items()
    }
    if cluster and ended["slurm"][0] == 0:  # submitted: did every job succeed?
        status = subprocess.run(
            ["classaware", "slurm", "status"], cwd=repos["slurm"], env=env, capture_output=True, text=True
        )
        ended["slurm"] = (status.returncode, ended["slurm"][1])
        with open(logs["slurm"], "a") as f:
            f.write(status.stdout + status.stderr)
    (tmp_path_factory.getbasetemp() / "smoke_timings.json").write_text(
        json.dumps({k: round(v[1], 1) for k, v in ended.items()})
    )
    return {
        name: SmokeRun(
            repos[name],
            returncode,
            logs[name].read_text(),
            seconds,
            locked_hashes(repos[name]) if (repos[name] / "dvc.lock").exists() else {},
        )
        for name, (returncode, seconds) in ended.items()
    }


@pytest.fixture(scope="session")
def runs(smoke_runs) -> tuple[Path, Path]:
    """The plain `dvc repro` and the ``classaware repro --jobs 2`` copies, both succeeded."""
    for name in ("serial", "jobs2"):
        assert smoke_runs[name].returncode == 0, (
            f"{SMOKE_RUNNERS[name]} failed in {smoke_runs[name].repo}:\n{smoke_runs[name].output[-6000:]}"
        )
    return smoke_runs["serial"].repo, smoke_runs["jobs2"].repo
