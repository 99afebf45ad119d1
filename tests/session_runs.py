"""The test session's pipeline runs, declared as data, and the scheduler that runs them.

RUNS below is the one place that says what a test's ``pytest.mark.smoke_run(NAME, ...)`` starts:
the run NAME, and every run it waits for (its ``waits_for``, and theirs). One row per run: its
command (``smoke(X)``: X after switching the copy to the `smoke` profile by README's command;
otherwise the command in full), where it runs (a clean copy of the repository, or the repository
itself), the runs it waits for and the one whose DVC cache it restores from, whether it takes one
of the AT_ONCE slots, what it needs to start at all (a SLURM cluster), and its timeout. A test
reads a run with ``smoke_runs[NAME]`` (conftest.py), which waits until the run has ended.

What they check: a plain ``dvc repro`` computes every stage of replicate 0, and ``classaware
repro --jobs 2`` every stage of replicate 1 (``seed_shift: 1``, two stages at a time); ``--jobs
8`` and SLURM start from the serial run's DVC cache, so their stages are restored from DVC's run
cache and must pin the serial run's hashes (they test the orchestration); README's commands up to
two seed replicates (README_SEQUENCE) run in a copy of their own that starts with both runs' DVC
caches, so its ``dvc repro`` and both experiments of ``classaware replicate`` are restored from
DVC's run cache: replicate 1's experiment must pin the --jobs 2 run's hashes (the experiment is
the pipeline at seed shift 1, exactly); the GPU check's --cpu rehearsal runs in the repository
itself. Each replicate is computed once: a second computation of one would cost the suite a third
of its time, and bit identity at one thread is checked by the audit of the serial run, which
recomputes a sample of every kind of artifact (test_audit.py).

How they run (:class:`Scheduler`): the runs the session's tests read start at its beginning, every
stage on one thread, beside the other tests and below them in priority (NICE). A run starts once
every run it waits for has succeeded (``graphlib.TopologicalSorter`` keeps the books, as
``classaware.workflow.repro`` does for stages); a run whose wait failed never starts. At most
AT_ONCE runs that take a slot run at once; among runs ready together, the table's order decides
(it lists each run below the runs it waits for, the longest chain, serial and --jobs 2 then the
replicates, first). A run still going after its timeout is killed and fails; whatever still runs when the session ends is killed. conftest.py
moves the slow tests to the end, in the order of the runs they read.
"""

from __future__ import annotations

import contextlib
import graphlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers_repo import JPEG_ARCHIVE, REPO, clean_copy, locked_hashes, smoke_env
from slurm_cluster import Cluster

# README's command: the archive beside the repository, found through a relative path (each copy's
# folder has ../shared/data/ beside it), brought into the copy under DVC by `classaware profile`
SMOKE_PROFILE = "classaware profile smoke --data ../shared/data/cifar10-jpeg.tar.gz"
README_SEQUENCE = f"{SMOKE_PROFILE} && dvc repro && classaware replicate --runs 2"
# replicate 1's parameters, as `classaware replicate`'s `dvc exp run --set-param seed_shift=1` sets them
SEED_SHIFT_1 = "sed -i -E 's/^seed_shift: 0( |$)/seed_shift: 1\\1/' params.yaml && grep -q '^seed_shift: 1' params.yaml"
AT_ONCE = 2  # runs at a time that take a slot: the machines are 2-core, and the other tests run beside them
# the runs' priority below the session's own thread (Unix nice): the other tests, which need no run, finish first
# and at full speed, while the runs take what CPU is left; the tests that read a run come last anyway
NICE = 10
RUN_TIMEOUT = 3600  # seconds: a hung run fails the session instead of stalling it


@dataclass(frozen=True)
class Run:
    """One of the session's pipeline runs: what it runs, and when it may start."""

    name: str
    command: str  # a shell command; {out} in it is a folder of the run's own, for what tests read
    waits_for: tuple[str, ...] = ()  # runs that must have ended, and succeeded, before it starts
    restores_from: tuple[str, ...] = ()  # some of those: its copy starts with hard links to their DVC caches, merged
    in_copy: bool = True  # runs in a clean copy of the repository (False: in the repository itself)
    takes_slot: bool = True  # one of the AT_ONCE slots (False: something else limits what it runs at once)
    needs_cluster: bool = False  # a one-node SLURM cluster (without one the run is left out); over when its jobs are
    env: Mapping[str, str] = field(default_factory=dict)  # set for its command, over smoke_env()'s
    timeout: float = RUN_TIMEOUT  # seconds from its start; then it is killed, and has failed


def _link(src: str, dst: str) -> None:
    if not os.path.exists(dst):
        os.link(src, dst)


def smoke(runner: str) -> str:
    """``runner`` in a clean copy switched to the `smoke` profile by README's command."""
    return f"{SMOKE_PROFILE} && {runner}"


def in_order(runs: Mapping[str, Run]) -> tuple[str, ...]:
    """The names of ``runs`` in the order they can start: each as early as the runs it waits for
    allow, ties broken by the table's order. graphlib.CycleError if some run waits for itself."""
    sorter = graphlib.TopologicalSorter({name: run.waits_for for name, run in runs.items()})
    sorter.prepare()
    rank = {name: i for i, name in enumerate(runs)}
    order: list[str] = []
    ready: list[str] = []
    while sorter.is_active():
        ready = sorted([*ready, *sorter.get_ready()], key=rank.__getitem__)
        order.append(ready.pop(0))
        sorter.done(order[-1])
    return tuple(order)


def table(*runs: Run) -> dict[str, Run]:
    """``runs`` by name, checked: one run per name, every run they wait for in the table, a run
    restores only from a run it waits for, and none waits for itself, however indirectly."""
    by_name = {run.name: run for run in runs}
    if len(by_name) != len(runs):
        raise ValueError(f"two runs share a name: {[run.name for run in runs]}")
    for run in runs:
        unknown = sorted(set(run.waits_for) - set(by_name))
        if unknown:
            raise ValueError(f"run {run.name} waits for runs the table lacks: {unknown}")
        for source in run.restores_from:
            if source not in run.waits_for:
                raise ValueError(f"run {run.name} restores from {source}, which it does not wait for")
    in_order(by_name)  # graphlib.CycleError
    return by_name


GPU_CHECK_ENV = {
    "PYTHON": sys.executable,
    "GPU_CHECK_DATA": str(JPEG_ARCHIVE),
    # its 280 s budget is for a machine of its own; here it shares 2 cores with the other runs
    "GPU_CHECK_BUDGET_S": "900",
}

# ----------------------------------------------------------------------------- the table
# A test's smoke_run(NAME) starts RUNS[NAME] and the runs it waits for. Each run is listed below the runs
# it waits for; among runs ready at once, the earlier row takes a free slot first.
RUNS: dict[str, Run] = table(
    # the arithmetic: these two compute every stage, of replicates 0 and 1
    Run("serial", smoke("dvc repro")),
    Run("jobs2", smoke(f"{SEED_SHIFT_1} && classaware repro --jobs 2")),
    # README's commands exactly, in a copy of their own, every stage of both replicates restored from the two runs'
    # caches
    Run("replicates", README_SEQUENCE, waits_for=("serial", "jobs2"), restores_from=("serial", "jobs2")),
    # the GPU check's --cpu rehearsal (the script copies the repository into a temporary folder of its own)
    Run("gpu_check", "bash benchmarks/gpu_check.sh --cpu {out}", in_copy=False, env=GPU_CHECK_ENV),
    # the orchestration: every stage restored from the serial run's cache
    Run("jobs8", smoke("classaware repro --jobs 8"), waits_for=("serial",), restores_from=("serial",)),
    # the cluster runs at most one job per core, and its jobs wait on its scheduler between stages: it takes
    # no slot, so that its waits fall while the other runs keep the cores busy
    Run(
        "slurm",
        smoke("classaware slurm submit --gpus_per_job 0"),
        waits_for=("serial",),
        restores_from=("serial",),
        takes_slot=False,
        needs_cluster=True,
    ),
)
START_ORDER = in_order(RUNS)


# ----------------------------------------------------------------------------- what the marks start
def marked(item: pytest.Item) -> list[str]:
    """The runs a test reads: the names in its smoke_run marks (its own, its class's, its module's)."""
    return [name for mark in item.iter_markers("smoke_run") for name in mark.args]


def needed(names: Iterable[str], runs: Mapping[str, Run] = RUNS) -> tuple[str, ...]:
    """The runs that ``names`` (of smoke_run marks) start: each, and every run it waits for, and
    theirs, in the order they can start. A name that is no run is a usage error."""
    wanted = set(names)
    unknown = wanted - set(runs)
    if unknown:
        raise pytest.UsageError(f"smoke_run marks name unknown runs {sorted(unknown)}; known: {', '.join(runs)}")
    todo = list(wanted)
    while todo:
        for before in runs[todo.pop()].waits_for:
            if before not in wanted:
                wanted.add(before)
                todo.append(before)
    return tuple(name for name in in_order(runs) if name in wanted)


def last_to_start(item: pytest.Item) -> int:
    """Where the last run ``item`` reads comes in START_ORDER (-1: it reads none)."""
    return max((START_ORDER.index(name) for name in marked(item) if name in RUNS), default=-1)


# ----------------------------------------------------------------------------- running them
@dataclass(frozen=True)
class SmokeRun:
    """A run as a test reads it, once it has ended."""

    repo: Path
    returncode: int
    output: str  # what it printed
    seconds: float
    hashes: dict  # dvc.lock's hashes as the run left them: later tests may change the workspace


@dataclass
class Job:
    """A run in this session: where it runs, and what has become of it."""

    run: Run
    cwd: Path
    log: Path
    env: dict
    out: Path | None = None  # {out} of its command
    cluster: Cluster | None = None  # the cluster whose jobs it submits
    proc: subprocess.Popen | None = None
    started: float | None = None  # time.perf_counter() when it started
    seconds: float | None = None  # set when it has ended, or will never start
    returncode: int | None = None
    skipped: str = ""  # why it never started
    timed_out: bool = False
    hashes: dict = field(default_factory=dict)

    @property
    def command(self) -> str:
        return self.run.command.replace("{out}", str(self.out))

    @property
    def ended(self) -> bool:
        return self.seconds is not None

    @property
    def running(self) -> bool:
        return self.proc is not None and not self.ended

    def finished(self) -> bool:
        """Whether its command has exited (a SLURM submission: and the cluster's jobs have ended)."""
        if self.proc is None or self.proc.poll() is None:
            return False
        return self.cluster is None or self.proc.returncode != 0 or not self.cluster.busy(self.cwd)


class Scheduler:
    """Runs ``jobs`` (in START_ORDER) on a thread of its own: each once every run it waits for has
    succeeded, at most ``at_once`` of those that take a slot at a time. ``scheduler[name]`` waits
    until that run has ended. ``left_out``: runs the session's tests read that cannot start here,
    and why."""

    def __init__(
        self, jobs: dict[str, Job], left_out: Mapping[str, str] | None = None, at_once: int = AT_ONCE, tick: float = 1.0
    ):
        self.jobs, self.left_out, self.at_once, self.tick = jobs, dict(left_out or {}), at_once, tick
        self.began = time.perf_counter()
        self.sorter = graphlib.TopologicalSorter({name: job.run.waits_for for name, job in jobs.items()})
        self.sorter.prepare()
        self.ready: list[str] = []  # every run it waits for succeeded, but no slot was free
        self.lock = threading.Condition()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def paths(self) -> dict[str, Path]:
        """Each run's {out} folder, where it writes what its tests read."""
        return {name: job.out for name, job in self.jobs.items() if job.out is not None}

    def _loop(self) -> None:
        while not all(job.ended for job in self.jobs.values()):
            with self.lock:
                self._step()
                self.lock.notify_all()
            time.sleep(self.tick)

    def _step(self) -> None:
        for name, job in self.jobs.items():
            if job.running and job.finished():
                self._end(job, job.proc.returncode)
                if job.returncode == 0:
                    self.sorter.done(name)
            elif job.running and time.perf_counter() - job.started > job.run.timeout:
                job.timed_out = True
                self._kill(job)
                self._end(job, -signal.SIGKILL)
        for job in self.jobs.values():  # in START_ORDER: a run that never starts is seen by those waiting for it
            if job.started is None and not job.ended:
                failed = [w for w in job.run.waits_for if self.jobs[w].ended and self.jobs[w].returncode != 0]
                if failed:
                    job.seconds, job.skipped = 0.0, f"not run: {', '.join(failed)} failed"
        order = list(self.jobs)
        self.ready = sorted([*self.ready, *self.sorter.get_ready()], key=order.index)
        running = sum(job.run.takes_slot and job.running for job in self.jobs.values())
        for name in list(self.ready):
            job = self.jobs[name]
            if not job.run.takes_slot or running < self.at_once:
                self.ready.remove(name)
                self._start(job)
                running += job.run.takes_slot and job.running

    def _start(self, job: Job) -> None:
        try:
            cache = Path(".dvc") / "cache"
            for source in job.run.restores_from:  # a file both caches hold has the same content (its name is its md5)
                shutil.copytree(self.jobs[source].cwd / cache, job.cwd / cache, copy_function=_link, dirs_exist_ok=True)
            job.started = time.perf_counter()
            with open(job.log, "w") as log:
                job.proc = subprocess.Popen(
                    job.command,
                    shell=True,
                    cwd=job.cwd,
                    env=job.env,
                    text=True,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killed with everything it started
                    preexec_fn=lambda: os.nice(NICE),
                )
        except OSError as exc:
            job.seconds, job.skipped = 0.0, f"could not start: {exc}"

    def _end(self, job: Job, returncode: int) -> None:
        job.seconds = time.perf_counter() - job.started
        job.returncode = returncode
        job.hashes = locked_hashes(job.cwd) if (job.cwd / "dvc.lock").exists() else {}

    @staticmethod
    def _kill(job: Job) -> None:
        """Kill ``job``'s command with everything it started (its own process group)."""
        if job.proc is not None and job.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.proc.wait(timeout=5)

    def stop(self) -> None:
        """Kill every run still going."""
        with self.lock:
            for job in self.jobs.values():
                self._kill(job)

    def __contains__(self, name: str) -> bool:
        return name in self.jobs

    def wait(self, name: str) -> SmokeRun:
        """Run ``name`` once it has ended (skips the test where it was left out)."""
        if name in self.left_out:
            pytest.skip(f"run {name} did not start: {self.left_out[name]}")
        if name not in self.jobs:
            pytest.fail(f"the session did not start run {name!r}: mark the test pytest.mark.smoke_run({name!r})")
        job = self.jobs[name]
        with self.lock:
            self.lock.wait_for(lambda: job.ended or not self.thread.is_alive())
        assert job.ended, f"{name} did not end: the session's scheduler stopped"
        if job.skipped:
            return SmokeRun(job.cwd, -1, job.skipped, 0.0, {})
        output = job.log.read_text(errors="replace")
        if job.timed_out:
            output += f"\n[killed: still running {job.run.timeout:.0f} s after it started, its timeout]\n"
        return SmokeRun(job.cwd, job.returncode, output, job.seconds, job.hashes)

    __getitem__ = wait

    def summary(self) -> list[str]:
        """A line per run: its wall time and exit status, when it started, or why it did not."""
        lines = []
        for name, job in self.jobs.items():
            if job.skipped or job.proc is None:
                ended = job.skipped or "not started"
            else:
                ended = "stopped unfinished" if not job.ended else f"{job.seconds:.0f} s, exit {job.returncode}"
                ended += " (killed at its timeout)" if job.timed_out else ""
                ended += f" (started {job.started - self.began:.0f} s into the session)"
            lines.append(f"{name:<11} {ended}")
        return lines + [f"{name:<11} left out: {why}" for name, why in self.left_out.items()]


def start(names: Iterable[str], tmp: pytest.TempPathFactory, cluster: Cluster | str | None = None) -> Scheduler:
    """Start the runs ``names`` (in START_ORDER, each after the runs it waits for), each in a clean
    copy under ``tmp`` with the archive at ../shared/data beside it. ``cluster``: the session's
    SLURM cluster, or why there is none (runs that need it are left out)."""
    shared = tmp.getbasetemp() / "shared" / "data"  # ../shared/data of every copy
    shared.mkdir(parents=True, exist_ok=True)
    shutil.copy(JPEG_ARCHIVE, shared / JPEG_ARCHIVE.name)
    logs = tmp.mktemp("logs")
    jobs: dict[str, Job] = {}
    left_out: dict[str, str] = {}
    for name in (name for name in START_ORDER if name in set(names)):
        run = RUNS[name]
        missing = [before for before in run.waits_for if before not in jobs]
        if missing:
            left_out[name] = f"it waits for {', '.join(missing)}, left out"
        elif run.needs_cluster and not isinstance(cluster, Cluster):
            left_out[name] = cluster if isinstance(cluster, str) else "no SLURM cluster"
        else:
            out = tmp.mktemp(f"{name}_out") if "{out}" in run.command else None
            here = cluster if run.needs_cluster else None
            env = {**smoke_env(here.env if here else None), **run.env}
            cwd = clean_copy(tmp.mktemp(name)) if run.in_copy else REPO
            jobs[name] = Job(run, cwd, logs / f"{name}.txt", env, out, here)
    return Scheduler(jobs, left_out)
