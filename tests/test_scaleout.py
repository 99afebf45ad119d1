"""Running the pipeline's stages at once: the scheduling logic on its own (fake stages), then the
real engines: ``classaware repro`` and ``classaware slurm`` on small DVC pipelines, and the
`smoke` pipeline through ``--jobs 8`` and SLURM against a plain ``dvc repro`` (the session's
runs, see session_runs.py; ``--jobs 2`` is checked in test_pipeline.py)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
import yaml
from helpers_repo import as_from_a_terminal, git_commit_all, git_init, locked_hashes, smoke_env
from hypothesis import given
from hypothesis import strategies as st
from session_runs import RUNS

from classaware import cli
from classaware.workflow import pipeline, repro, slurm
from classaware.workflow.pipeline import Pipeline
from classaware.workflow.slurm import SlurmJob


# ----------------------------------------------------------------------------- pure logic
@st.composite
def dags(draw, max_stages: int = 9) -> dict[str, frozenset[str]]:
    """stage -> the stages it depends on, upstream first (as DVC orders them)."""
    names = [f"s{i}" for i in range(draw(st.integers(1, max_stages)))]
    return {
        name: frozenset(draw(st.sets(st.sampled_from(names[:i])))) if i else frozenset() for i, name in enumerate(names)
    }


def _downstream(graph: dict[str, frozenset[str]], stage: str) -> set[str]:
    return {s for s in graph if stage in graph[s]} | {
        d for s in graph if stage in graph[s] for d in _downstream(graph, s)
    }


@given(graph=dags(), data=st.data())
def test_to_run_is_every_changed_stage_and_everything_downstream_of_one(graph, data):
    changed = data.draw(st.sets(st.sampled_from(sorted(graph))))
    selected = pipeline.to_run(Pipeline(tuple(graph), graph, frozenset(changed)))
    affected = set(changed).union(*(_downstream(graph, s) for s in changed))
    assert list(selected) == [s for s in graph if s in affected]  # DVC's order kept
    assert all(selected[s] == graph[s] & affected for s in selected)  # up-to-date upstream is not waited for


class FakeStages:
    """``run`` for :func:`repro.schedule`: records each start and end with its device, holds
    each stage ``hold`` seconds (those in ``slow`` 0.3 s), and fails the stages in ``failing``."""

    def __init__(self, failing=(), hold: float = 0.0, slow=(), barrier: threading.Barrier | None = None):
        self.failing, self.hold, self.slow, self.barrier = set(failing), hold, set(slow), barrier
        self.events: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, stage: str, device: str | None) -> int:
        with self.lock:
            self.events.append(("start", stage, device))
        if self.barrier:
            self.barrier.wait(timeout=10)
        time.sleep(0.3 if stage in self.slow else self.hold)
        with self.lock:
            self.events.append(("end", stage, device))
        return 3 if stage in self.failing else 0

    def started(self) -> list[str]:
        return [s for kind, s, _ in self.events if kind == "start"]

    def peak(self) -> int:
        running = peak = 0
        for kind, _, _ in self.events:
            running += 1 if kind == "start" else -1
            peak = max(peak, running)
        return peak


@given(graph=dags(), jobs=st.integers(1, 4), n_devices=st.integers(0, 3))
def test_every_stage_runs_once_after_its_upstream_within_the_job_limit_spread_over_the_devices(graph, jobs, n_devices):
    devices = [f"cuda:{i}" for i in range(n_devices)]
    stages = FakeStages(hold=0.001)
    report = repro.schedule(graph, jobs, devices, stages)
    assert sorted(stages.started()) == sorted(graph) and report.failed == report.not_started == ()
    assert sorted(o.stage for o in report.succeeded) == sorted(graph)
    ended: set[str] = set()
    load = {d: 0 for d in devices}
    for kind, stage, device in stages.events:
        if kind == "start":
            assert graph[stage] <= ended, f"{stage} started before {graph[stage] - ended} ended"
            assert (device is None) == (not devices)
        else:
            ended.add(stage)
        if device:
            load[device] += 1 if kind == "start" else -1
            assert load[device] <= -(-jobs // n_devices)  # no device holds more than its share of the jobs
    assert stages.peak() <= jobs


def test_the_least_busy_device_is_chosen_the_first_listed_among_equals():
    devices = ["cuda:0", "cuda:1", "cuda:2"]
    assert repro.least_loaded({"cuda:0": 1, "cuda:1": 0, "cuda:2": 0}, devices) == "cuda:1"
    assert repro.least_loaded({"cuda:0": 2, "cuda:1": 2, "cuda:2": 1}, devices) == "cuda:2"
    assert repro.least_loaded({}, []) is None


def test_independent_stages_go_round_robin_and_share_devices_evenly():
    stages = FakeStages(barrier=threading.Barrier(4))  # all four run at the same time
    repro.schedule({s: frozenset() for s in "abcd"}, 4, ["cuda:0", "cuda:1"], stages)
    assert [d for kind, _, d in stages.events if kind == "start"] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]


@given(graph=dags(), data=st.data(), jobs=st.integers(1, 4))
def test_a_failure_starts_nothing_downstream_and_reports_the_stage(graph, data, jobs):
    failing = data.draw(st.sampled_from(sorted(graph)))
    stages = FakeStages(failing=[failing])
    report = repro.schedule(graph, jobs, [], stages)
    assert [(o.stage, o.returncode) for o in report.failed] == [(failing, 3)]
    assert not _downstream(graph, failing) & set(stages.started())
    assert set(report.not_started) == set(graph) - set(stages.started())
    assert {o.stage for o in report.succeeded} == set(stages.started()) - {failing}


def test_after_a_failure_running_stages_finish_and_nothing_new_starts():
    graph = {"fails": frozenset(), "slow": frozenset(), "after_slow": frozenset({"slow"}), "later": frozenset()}
    stages = FakeStages(failing=["fails"], slow=["slow"])
    report = repro.schedule(graph, 2, [], stages)
    assert [o.stage for o in report.succeeded] == ["slow"]  # was running when "fails" failed
    assert report.not_started == ("after_slow", "later")


def test_stages_running_at_the_first_failure_may_fail_too_and_are_reported_as_failed():
    graph = {"fails": frozenset(), "fails_later": frozenset(), "after": frozenset({"fails_later"})}
    report = repro.schedule(graph, 2, [], FakeStages(failing=["fails", "fails_later"], slow=["fails_later"]))
    assert [o.stage for o in report.failed] == ["fails", "fails_later"] and report.not_started == ("after",)


def test_a_stop_starts_nothing_new_and_reports_the_stages_it_cut_short():
    stop = threading.Event()

    def run(stage: str, device: str | None) -> int:
        if stage == "b":  # the stop comes while b runs, and b ends without success
            stop.set()
            return 130
        return 0

    graph = {"a": frozenset(), "b": frozenset({"a"}), "c": frozenset({"b"}), "d": frozenset({"a"})}
    report = repro.schedule(graph, 1, [], run, stop)
    assert [o.stage for o in report.succeeded] == ["a"] and [o.stage for o in report.cut_short] == ["b"]
    assert report.failed == () and report.not_started == ("c", "d")


def test_a_stage_is_pinned_to_its_device_and_gets_a_share_of_the_cores():
    assert repro.stage_env({"PATH": "/b"}, "cuda:3", 4) == {
        "PATH": "/b",
        "OMP_NUM_THREADS": "4",
        "CUDA_VISIBLE_DEVICES": "3",
    }
    assert repro.stage_env({"OMP_NUM_THREADS": "1"}, None, 4) == {"OMP_NUM_THREADS": "1"}  # the caller's choice wins


JOB = SlurmJob(
    workspace=Path("/w"),
    job_dir=Path("/w/logs/slurm"),
    path="/venv/bin:/usr/bin",
    partition="gpu",
    gpus=2,
    time="1-00:00:00",
)


def test_a_job_script_runs_dvc_on_its_stage_in_the_workspace_with_the_requested_resources(tmp_path):
    script = slurm.job_script("train_nonrobust@a+b-y1-resnet18", JOB, ["construct@a+b", "prepare"])
    lines = script.splitlines()
    assert (
        lines[0] == "#!/bin/bash"
        and lines[-1] == "dvc --wait-for-lock repro --single-item train_nonrobust@a+b-y1-resnet18"
    )
    assert {
        "#SBATCH --chdir=/w",
        "#SBATCH --output=/w/logs/slurm/train_nonrobust@a+b-y1-resnet18.log",
        "#SBATCH --export=ALL,PATH=/venv/bin:/usr/bin",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus=2",
        "#SBATCH --time=1-00:00:00",
        "# runs after: construct@a+b prepare",
    } <= set(lines)
    (tmp_path / "job.sbatch").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "job.sbatch")]).returncode == 0
    bare = slurm.job_script("prepare", SlurmJob(Path("/w"), Path("/j"), path="/usr/bin", gpus=0), [])
    assert not any(o in bare for o in ("--partition", "--gpus", "--time"))


@given(graph=dags())
def test_each_job_is_submitted_after_exactly_its_upstream_jobs(graph, tmp_path_factory):
    job = SlurmJob(Path("/w"), tmp_path_factory.mktemp("jobs"), path="/usr/bin")
    calls: list[list[str]] = []

    def sbatch(args: list[str]) -> str:
        calls.append(args)
        return str(100 + len(calls))

    ids = slurm.submit_jobs(graph, job, sbatch)
    assert json.loads((job.job_dir / slurm.JOBS_FILE).read_text()) == ids
    for (stage, upstream), args in zip(graph.items(), calls, strict=True):
        after = [a.removeprefix("--dependency=afterok:") for a in args if a.startswith("--dependency=")]
        assert sorted(":".join(after).split(":") if after else []) == sorted(ids[u] for u in upstream)
        assert ("--kill-on-invalid-dep=yes" in args) == bool(upstream)
        assert Path(args[-1]).read_text() == slurm.job_script(stage, job, sorted(upstream))


# ----------------------------------------------------------------------------- small real pipelines
def _dvc_repo(folder: Path, stages: dict[str, dict]) -> Path:
    """A git + DVC repository in ``folder`` whose dvc.yaml holds ``stages``."""
    folder.mkdir(exist_ok=True)
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    git_init(folder)
    subprocess.run("dvc init -q", shell=True, cwd=folder, env=smoke_env(), check=True)
    git_commit_all(folder, "toy")
    return folder


def _toy(folder: Path, fail: str | None = None) -> Path:
    """A DVC pipeline a -> b -> c and an independent, slower d; ``fail`` names a stage whose
    command prints 'boom' and exits 3."""
    cmds = {
        "a": "cat seed.txt > a.txt",
        "b": "cat a.txt > b.txt && echo b >> b.txt",
        "c": "cat b.txt > c.txt && echo c >> c.txt",
        "d": "sleep 2 && echo d > d.txt",
    }
    deps = {"a": ["seed.txt"], "b": ["a.txt"], "c": ["b.txt"], "d": []}
    stages = {
        s: {"cmd": "echo boom >&2 && exit 3" if s == fail else cmd, "deps": deps[s], "outs": [f"{s}.txt"]}
        for s, cmd in cmds.items()
    }
    folder.mkdir(exist_ok=True)
    (folder / "seed.txt").write_text("seed\n")
    return _dvc_repo(folder, {s: {k: v for k, v in body.items() if v} for s, body in stages.items()})


def _classaware(folder: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``classaware ARGS`` in ``folder`` with the environment ``smoke_env(env)``, in this process
    (no interpreter start-up): its exit status, what it printed, and its log after its stderr."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with (
            contextlib.chdir(folder),
            mock.patch.dict(os.environ, smoke_env(env), clear=True),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                returncode = cli.main(list(args))
            except SystemExit as exc:  # as the interpreter ends: a message goes to stderr, with status 1
                returncode = exc.code if isinstance(exc.code, int) else (print(exc.code, file=sys.stderr), 1)[1]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return subprocess.CompletedProcess(args, returncode, out.getvalue(), err.getvalue())


def _cli(capsys, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``classaware ARGS`` in ``folder``, in this process (no interpreter start-up), for the
    commands that refuse or only print; its exit status and what it printed."""
    capsys.readouterr()
    with contextlib.chdir(folder):
        returncode = cli.main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, returncode, out.out, out.err)


def _started(output: str) -> list[str]:
    return [line.split(" started ")[1].split(" on ")[0] for line in output.splitlines() if " started " in line]


def test_repro_pins_the_hashes_of_dvc_repro_skips_what_is_up_to_date_and_reruns_only_what_changed(tmp_path):
    serial, parallel = _toy(tmp_path / "serial"), _toy(tmp_path / "parallel")
    assert subprocess.run(["dvc", "repro"], cwd=serial, env=smoke_env(), capture_output=True).returncode == 0
    first = _classaware(parallel, "repro", "--jobs", "4")
    assert first.returncode == 0, first.stderr
    assert sorted(_started(first.stderr)) == ["a", "b", "c", "d"]
    assert locked_hashes(parallel) == locked_hashes(serial)
    again = _classaware(parallel, "repro", "--jobs", "4")
    assert again.returncode == 0 and _started(again.stderr) == [] and "nothing to run" in again.stderr
    (parallel / "seed.txt").write_text("another seed\n")
    changed = _classaware(parallel, "repro", "--jobs", "4")
    assert _started(changed.stderr) == ["a", "b", "c"], (changed.returncode, changed.stdout, changed.stderr)
    assert (parallel / "c.txt").read_text() == "another seed\nb\nc\n"
    assert (parallel / "logs/repro/b.log").is_file()


def test_repro_stops_at_a_failure_keeps_what_finished_and_says_why(tmp_path):
    repo = _toy(tmp_path, fail="b")
    done = _classaware(repo, "repro", "--jobs", "2")
    assert done.returncode == 1
    assert "stage 'b' failed (exit" in done.stderr and "boom" in done.stderr and "not started: c" in done.stderr, (
        done.stderr
    )
    assert set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"]) == {"a", "d"}  # d, independent of b, is kept


def test_each_stage_sees_only_its_device_and_its_share_of_the_cores(tmp_path):
    """Through DVC: what `classaware repro` sets reaches the stage's command."""
    show = "echo $CUDA_VISIBLE_DEVICES $OMP_NUM_THREADS > {}.txt"
    repo = _dvc_repo(tmp_path, {s: {"cmd": show.format(s), "outs": [f"{s}.txt"]} for s in ("x", "y")})
    unset = {k: v for k, v in smoke_env().items() if k != "OMP_NUM_THREADS"}  # so that `repro` chooses
    done = subprocess.run(
        ["classaware", "repro", "--jobs", "2", "--devices", "cuda:0,cuda:1"],
        cwd=repo,
        env=unset,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert {(repo / f"{s}.txt").read_text() for s in "xy"} == {f"0 {threads}\n", f"1 {threads}\n"}


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """A small pipeline for the tests that only read it."""
    return _toy(tmp_path_factory.mktemp("toy"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["repro", "--devices", "cuda:0,cuda:0"], "devices lists cuda:0 twice"),
        (
            ["repro", "--devices", "gpu0"],
            "devices must be CUDA devices separated by commas, e.g. cuda:0,cuda:1 (or nothing); got 'gpu0'",
        ),
        (["slurm", "start"], "action must be one of submit, status"),
        (
            ["slurm", "submit", "--time", "1h"],
            "time must be a time in sbatch's format: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS or DAYS-HOURS[:MINUTES[:SECONDS]]; got '1h'",
        ),
        (["slurm", "status"], "no logs/slurm/jobs.json: nothing was submitted from here"),
    ],
)
def test_bad_options_give_a_clear_error_and_exit_2(argv, message, toy, capsys):
    done = _cli(capsys, toy, *argv)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_status_says_when_slurm_cannot_be_asked(toy, tmp_path, capsys, monkeypatch):
    (tmp_path / slurm.JOBS_FILE).write_text(json.dumps({"a": "1"}))
    (tmp_path / "empty.conf").touch()  # a missing file would make SLURM's clients retry for a minute
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "empty.conf"))
    done = _cli(capsys, toy, "slurm", "status", "--job_dir", str(tmp_path))
    assert done.returncode == 2 and "squeue" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_outside_a_dvc_workspace_repro_and_slurm_refuse_to_start(tmp_path, capsys):
    for argv in (["repro"], ["slurm", "submit"]):
        done = _cli(capsys, tmp_path, *argv)
        assert done.returncode == 2 and "holds no DVC pipeline" in done.stderr, done.stderr
    assert not any(tmp_path.iterdir())


def test_a_dry_run_prints_one_job_script_per_stage_and_submits_nothing(toy, capsys):
    done = _cli(capsys, toy, "slurm", "submit", "--dry_run", "--partition", "p", "--time", "30:00")
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line.startswith("dvc ")]
    assert commands == [f"dvc --wait-for-lock repro --single-item {s}" for s in "abcd"]
    assert done.stdout.count("#SBATCH --partition=p\n") == 4 and "# runs after: a\n" in done.stdout
    assert not (toy / "logs").exists()


def _cluster(slurm):
    if isinstance(slurm, str):
        pytest.skip(slurm)
    return slurm


def _wait(cluster, repo: Path, seconds: float = 300) -> None:
    """Until the jobs ``repo``'s pipeline submitted have ended (the session's SLURM run may be on the cluster too)."""
    deadline = time.monotonic() + seconds
    while cluster.busy(repo):
        assert time.monotonic() < deadline, "SLURM jobs still running"
        time.sleep(1)


def _rows(table: str) -> dict[str, list[str]]:
    """stage -> [dvc, slurm] of ``slurm status``'s table (columns are two or more spaces apart)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()[1:]]
    return {row[0]: row[2:] for row in rows}


def test_on_slurm_a_failed_job_cancels_its_dependents_and_is_reported(slurm, tmp_path):
    cluster = _cluster(slurm)
    repo = _toy(tmp_path, fail="b")
    submitted = _classaware(repo, "slurm", "submit", "--gpus_per_job", "0", env=cluster.env)
    assert submitted.returncode == 0, submitted.stderr
    _wait(cluster, repo)
    status = _classaware(repo, "slurm", "status", env=cluster.env)
    assert status.returncode == 1 and "2 jobs failed or were cancelled: b, c" in status.stderr, status.stderr
    assert _rows(status.stdout) == {
        "a": ["done", "COMPLETED"],
        "b": ["to run", "FAILED (NonZeroExitCode)"],
        "c": ["to run", "CANCELLED (DependencyNeverSatisfied)"],
        "d": ["done", "COMPLETED"],
    }, status.stdout
    assert "boom" in (repo / "logs/slurm/b.log").read_text()


# ----------------------------------------------------------------------------- the smoke pipeline
def _peak_concurrency(output: str) -> int:
    running = peak = 0
    for line in output.splitlines():
        running += (" started " in line) - (" finished " in line or " FAILED " in line)
        peak = max(peak, running)
    return peak


@pytest.mark.slow
@pytest.mark.smoke_run("serial", "jobs2", "jobs8")
def test_smoke_with_8_jobs_pins_the_hashes_of_a_serial_dvc_repro(smoke_runs):
    serial, jobs8, jobs2 = smoke_runs["serial"], smoke_runs["jobs8"], smoke_runs["jobs2"]
    assert serial.returncode == 0 and jobs8.returncode == 0, jobs8.output[-6000:]
    assert jobs8.hashes == serial.hashes
    assert _peak_concurrency(jobs8.output) >= 6  # the zoo and baseline trainings ran at once
    assert _peak_concurrency(jobs2.output) == 2


@pytest.mark.slow
@pytest.mark.smoke_run("serial", "slurm")
def test_smoke_through_slurm_pins_the_hashes_of_a_serial_dvc_repro(slurm, smoke_runs):
    _cluster(slurm)
    serial, run = smoke_runs["serial"], smoke_runs["slurm"]
    assert run.returncode == 0, f"{RUNS['slurm'].command} failed:\n{run.output[-6000:]}"
    assert run.hashes == serial.hashes
    status = _classaware(run.repo, "slurm", "status", env=slurm.env)
    assert status.returncode == 0, status.stderr
    assert _rows(status.stdout) == {stage: ["done", "COMPLETED"] for stage, _, _ in serial.hashes}, status.stdout


# ----------------------------------------------------------------------------- stopping a run, and its progress
def _slow_toy(folder: Path) -> Path:
    """A pipeline whose stage ``slow`` records its shell's process id, then sleeps for minutes;
    ``fast`` is independent of it, ``after`` waits for it."""
    return _dvc_repo(
        folder,
        {
            "slow": {"cmd": "echo $$ > slow.pid && sleep 300 && echo done > slow.txt", "outs": ["slow.txt"]},
            "fast": {"cmd": "echo f > fast.txt", "outs": ["fast.txt"]},
            "after": {"cmd": "cat slow.txt > after.txt", "deps": ["slow.txt"], "outs": ["after.txt"]},
        },
    )


def _in_repo(repo: Path) -> list[int]:
    """The processes working in ``repo`` (a stage's shell, DVC, a guard), zombies left out."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(proc / "cwd") == str(repo) and " Z " not in (proc / "stat").read_text().split(")")[-1][:3]:
                found.append(int(proc.name))
    return found


def _until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"after {seconds:.0f} s: {what}"
        time.sleep(0.2)


def _start_repro(repo: Path, *args: str) -> subprocess.Popen:
    """``classaware repro ARGS`` in ``repo``, as a process of its own (signals reach it as they would
    from a shell or a scheduler); it has started the stage ``slow`` once this returns."""
    proc = subprocess.Popen(
        ["classaware", "repro", *args],
        cwd=repo,
        env=smoke_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    _until(lambda: (repo / "slow.pid").is_file() or proc.poll() is not None, 300, "stage slow never started")
    assert proc.poll() is None, proc.communicate()[0]
    return proc


def _locked(repo: Path) -> set[str]:
    lock = repo / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.is_file() else set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_running_stage_names_them_and_commits_none(sig, tmp_path):
    """Issue 29 item 10 (dvc#4366, #2272): SIGTERM (a scheduler) or SIGINT (Ctrl-C) stops the
    running stages at once, instead of waiting for them to finish and commit."""
    repo = _slow_toy(tmp_path)
    proc = _start_repro(repo, "--jobs", "1")  # fast (first in DVC's order) has finished, slow runs
    start = time.monotonic()
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + sig, output
    assert time.monotonic() - start < 100  # not the stage's 300 s
    assert f"stopped by {signal.Signals(sig).name}" in output and "cut short, not committed" in output, output
    assert "): slow;" in output and "Traceback" not in output, output
    assert "slow" not in _locked(repo) and "after" not in _locked(repo)
    assert _in_repo(repo) == [] and not (repo / "slow.txt").exists()


def test_sigkill_of_repro_leaves_no_stage_that_runs_on_or_commits(tmp_path):
    """SIGTERM then SIGKILL, or SIGKILL alone: the stages' guards see their parent's pipe close and
    stop their stages, so nothing commits to dvc.lock afterwards."""
    repo = _slow_toy(tmp_path)
    proc = _start_repro(repo, "--jobs", "2")
    pid = int((repo / "slow.pid").read_text())
    proc.kill()
    proc.communicate(timeout=60)
    _until(lambda: not _in_repo(repo), 90, f"processes still working in the repository: {_in_repo(repo)}")
    assert not Path(f"/proc/{pid}").exists()
    time.sleep(2)
    assert "slow" not in _locked(repo) and not (repo / "slow.txt").exists()


def test_repro_shows_each_running_stages_progress_and_where_its_log_is(tmp_path):
    """Issue 30 item 7: the console shows the last line of each running stage's log."""
    repo = _dvc_repo(
        tmp_path,
        {"p": {"cmd": "echo step 1 of 2 && sleep 4 && echo step 2 of 2 && sleep 4 && echo > p.txt", "outs": ["p.txt"]}},
    )
    done = _classaware(repo, "repro", "--progress_every", "1")
    assert done.returncode == 0, done.stderr
    assert "each stage's full output: logs/repro/STAGE.log" in done.stderr
    assert "  p: step 1 of 2" in done.stderr and "  p: step 2 of 2" in done.stderr, done.stderr


def test_the_last_line_of_a_log_is_the_stages_own_words(tmp_path):
    log = tmp_path / "s.log"
    log.write_text(
        "Running stage 's':\n> classaware train\n2026-01-01 10:00:00,123 classaware.progress INFO r epoch 2/4: 10/32\n\n"
    )
    assert repro.last_line(log) == "r epoch 2/4: 10/32"
    log.write_text("bar 1/3\rbar 2/3\r")
    assert repro.last_line(log) == "bar 2/3"
    assert repro.last_line(tmp_path / "none.log") == ""


def test_slurm_cancel_scancels_the_jobs_still_held_and_names_the_stages_cut_short(toy, tmp_path, monkeypatch, capsys):
    (tmp_path / slurm.JOBS_FILE).write_text(json.dumps({"a": "1", "b": "2", "c": "3", "d": "4"}))
    states = {"1": "COMPLETED", "2": "RUNNING", "3": "PENDING (Dependency)", "4": "FAILED (NonZeroExitCode)"}
    monkeypatch.setattr(slurm, "slurm_states", lambda ids: states)
    cancelled = []
    monkeypatch.setattr(slurm, "run_scancel", lambda ids: cancelled.append(list(ids)))
    done = _cli(capsys, toy, "slurm", "cancel", "--job-dir", str(tmp_path))
    assert done.returncode == 0 and cancelled == [["2", "3"]], done.stderr
    assert "cut short, not committed (dvc.lock keeps what it held for them): b; never started: c" in done.stdout


def test_a_submission_stopped_half_way_cancels_the_jobs_it_queued(tmp_path, monkeypatch, capsys):
    calls, cancelled = [], []

    def sbatch(args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return str(len(calls))

    monkeypatch.setattr(slurm, "run_sbatch", sbatch)
    monkeypatch.setattr(slurm, "run_scancel", lambda ids: cancelled.append(list(ids)))
    done = _cli(capsys, _toy(tmp_path), "slurm", "submit", "--gpus_per_job", "0")
    assert done.returncode == 130 and cancelled == [["1", "2"]]
    assert done.stderr == "classaware slurm: interrupted\n"
