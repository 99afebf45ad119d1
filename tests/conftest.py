"""Shared test set-up: hypothesis profiles, small fixtures, and the session's pipeline runs.

Profiles (chosen by HYPOTHESIS_PROFILE; tox sets ``ci``): ``ci`` is derandomized, so a CI run
is repeatable, with no deadline (CPU timings vary); ``dev`` explores more examples.

The end-to-end tests (marked ``slow``, and ``smoke_run(NAMES)`` with the runs they read) check
what a few real runs of the `smoke` pipeline left,
each in a clean copy of the repository: a plain ``dvc repro`` and ``classaware repro --jobs 2``
(each computing everything: the two must pin the same hashes), ``--jobs 8`` and SLURM (when a
one-node cluster can be started; both reuse the serial run's DVC cache, so their stages are
restored from DVC's run cache: they test the orchestration, the serial/--jobs 2 pair tests the
arithmetic), README's commands up to two seed replicates (README_SEQUENCE: ``classaware profile``
with the archive beside the copy, ``dvc repro`` restored from the --jobs 2 run's cache, then
``classaware replicate``, whose experiments run in copies at another depth), and the GPU check's
--cpu rehearsal. The runs the session's tests read (``smoke_run`` marks, and the runs those need
first) start at its beginning and go two at a time, every stage on one thread, while the other
tests run; a test that needs a run waits for it, and the slow tests are moved to the end of the
session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import slurm_cluster
import torch
from helpers_repo import JPEG_ARCHIVE, REPO, clean_copy, locked_hashes, smoke_env
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


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tests run tiny tensors, many times faster on one thread than on two busy cores (OpenMP
    threads spin while they wait); the DVC pipeline test sets its own subprocesses' threads."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """80 random uint8 CIFAR-sized images with labels 0-9 in turn: 64 to train on, 16 to test on
    (train_x, train_y, test_x, test_y), the same in every test."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (80, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.arange(80) % 10
    return x[:64], y[:64], x[64:], y[64:]


# ----------------------------------------------------------------------------- the session's pipeline runs
# README's command: the archive beside the repository, found through a relative path (each copy's
# folder has ../shared/data/ beside it), brought into the copy under DVC by `classaware profile`
SMOKE_PROFILE = "classaware profile smoke --data ../shared/data/cifar10-jpeg.tar.gz"
README_SEQUENCE = f"{SMOKE_PROFILE} && dvc repro && classaware replicate --runs 2"
# how each clean copy runs the pipeline after switching to the smoke profile
SMOKE_RUNNERS = {
    "serial": "dvc repro",
    "jobs2": "classaware repro --jobs 2",
    "jobs8": "classaware repro --jobs 8",
    "slurm": "classaware slurm submit --gpus_per_job 0",
}
BACKGROUND = pytest.StashKey["Background"]()  # the session's runs, for the terminal summary
AT_ONCE = 2  # runs at a time: the machines are 2-core, and the other tests run beside them
RUN_TIMEOUT = 3600  # seconds: a hung run fails the session instead of stalling it


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


@dataclass
class Job:
    """One background run: a shell command in ``cwd`` once the jobs in ``after`` have ended."""

    cwd: Path
    command: str
    log: Path
    after: tuple[str, ...] = ()
    prepare: Callable[[], None] | None = None  # run first, when the job starts
    done: Callable[[subprocess.Popen], bool] = lambda proc: proc.poll() is not None
    slot: bool = True  # takes one of the AT_ONCE slots (False: something else limits what it runs at once)
    proc: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float | None = None  # set when it has ended (or was skipped)
    skipped: str = ""  # why it never started: a job it comes after failed
    hashes: dict = field(default_factory=dict)


class Background:
    """Runs the session's jobs in dependency order, at most AT_ONCE of those that take a slot at
    a time, on a thread of its own; ``wait(name)`` blocks until a job has ended."""

    def __init__(self, jobs: dict[str, Job], env: dict, paths: dict[str, Path]):
        self.jobs, self.env, self.paths = jobs, env, paths  # paths: where a job writes what tests read
        self.began = time.perf_counter()
        self.lock = threading.Condition()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        begin = time.perf_counter()
        while any(j.seconds is None for j in self.jobs.values()):
            with self.lock:
                for j in self.jobs.values():
                    if j.proc is not None and j.seconds is None and j.done(j.proc):
                        j.seconds = time.perf_counter() - j.started
                        j.hashes = locked_hashes(j.cwd) if (j.cwd / "dvc.lock").exists() else {}
                running = sum(j.slot and j.proc is not None and j.seconds is None for j in self.jobs.values())
                for j in self.jobs.values():
                    if j.proc is not None or j.seconds is not None:
                        continue
                    failed = [a for a in j.after if self.jobs[a].seconds is not None and not self.succeeded(a)]
                    if failed:
                        j.seconds, j.skipped = 0.0, f"not run: {', '.join(failed)} failed"
                    elif (running < AT_ONCE or not j.slot) and all(self.jobs[a].seconds is not None for a in j.after):
                        if j.prepare:
                            j.prepare()
                        j.started = time.perf_counter()
                        j.proc = subprocess.Popen(j.command, shell=True, cwd=j.cwd, env=self.env, text=True,
                                                  stdout=open(j.log, "w"), stderr=subprocess.STDOUT,
                                                  start_new_session=True)  # fmt: skip
                        running += j.slot
                self.lock.notify_all()
            if time.perf_counter() - begin > RUN_TIMEOUT:
                self.stop()
            time.sleep(1)

    def succeeded(self, name: str) -> bool:
        j = self.jobs[name]
        return j.proc is not None and j.proc.returncode == 0

    def stop(self) -> None:
        """Kill every job still running, with everything it started (its own process group)."""
        for j in self.jobs.values():
            if j.proc is not None and j.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(j.proc.pid, signal.SIGKILL)

    def wait(self, name: str) -> SmokeRun:
        if name not in self.jobs:
            pytest.fail(f"the session did not start run {name!r}: mark the test pytest.mark.smoke_run({name!r})")
        j = self.jobs[name]
        with self.lock:
            self.lock.wait_for(lambda: j.seconds is not None or not self.thread.is_alive())
        assert j.seconds is not None, f"{name} did not end within {RUN_TIMEOUT} s"
        if j.skipped:
            return SmokeRun(j.cwd, -1, j.skipped, 0.0, {})
        return SmokeRun(j.cwd, j.proc.returncode, j.log.read_text(), j.seconds, j.hashes)


def _cache_of_the_run_before(name: str, copy: Path, runs: dict[str, Path]) -> Callable[[], None] | None:
    """For a run that comes after another (AFTER): point ``copy``'s DVC cache at a hard-linked copy
    of that run's (run cache included), made when it starts. None for a run that comes after none."""
    if not AFTER[name]:
        return None
    (before,) = AFTER[name]

    def link() -> None:
        shutil.copytree(runs[before] / ".dvc" / "cache", copy / ".dvc" / "cache", copy_function=os.link)

    return link


# what each background run needs before it starts (they also run in this order, as slots free up); a run
# that comes after another starts from a hard-linked copy of that run's DVC cache, so its stages are
# restored from the run cache (the longest chain, the --jobs 2 run then the replicates, is started first)
AFTER = {
    "serial": (),
    "jobs2": (),
    "replicates": ("jobs2",),
    "gpu_check": (),
    "jobs8": ("serial",),
    "slurm": ("serial",),
}


def needed_runs(items) -> list[str]:
    """The background runs the session's tests read (their ``smoke_run`` marks), with the runs
    those need first, in AFTER's order."""
    named = {name for item in items for mark in item.iter_markers("smoke_run") for name in mark.args}
    unknown = named - set(AFTER)
    if unknown:
        raise pytest.UsageError(f"smoke_run marks name unknown runs {sorted(unknown)}; known: {', '.join(AFTER)}")
    while True:
        more = named | {before for name in named for before in AFTER[name]}
        if more == named:
            return [name for name in AFTER if name in named]
        named = more


@pytest.fixture(scope="session", autouse=True)
def background(request, tmp_path_factory) -> Iterator[Background | None]:
    """The session's pipeline runs that its tests read, started at its beginning."""
    wanted = needed_runs(request.session.items)
    if not JPEG_ARCHIVE.is_file() or not wanted:
        yield None
        return
    cluster = request.getfixturevalue("slurm") if "slurm" in wanted else None
    cluster = None if isinstance(cluster, str) else cluster
    env = smoke_env(cluster.env if cluster else None)
    shared = tmp_path_factory.getbasetemp() / "shared" / "data"  # ../shared/data of every copy
    shared.mkdir(parents=True, exist_ok=True)
    shutil.copy(JPEG_ARCHIVE, shared / JPEG_ARCHIVE.name)
    smoke = [name for name in SMOKE_RUNNERS if name in wanted and (name != "slurm" or cluster)]
    runs = {name: clean_copy(tmp_path_factory.mktemp(name)) for name in smoke}
    logs = tmp_path_factory.mktemp("logs")
    jobs = {
        name: Job(repo, f"{SMOKE_PROFILE} && {SMOKE_RUNNERS[name]}", logs / f"{name}.txt", after=AFTER[name],
                  prepare=_cache_of_the_run_before(name, repo, runs))
        for name, repo in runs.items()
    }  # fmt: skip
    if cluster:  # a SLURM submission is over when its jobs are
        jobs["slurm"].done = lambda proc: proc.poll() is not None and (proc.returncode != 0 or not cluster.busy())
        # the cluster runs at most one job per core, and its jobs wait on its scheduler between stages:
        # it takes no slot, so that its waits fall while the other runs keep the cores busy
        jobs["slurm"].slot = False
    if "replicates" in wanted:
        # README's commands exactly, in a copy of their own (its `dvc repro` restored from the --jobs 2 run's
        # cache: the serial run's hashes, as the pair checks, and ready about a minute sooner)
        replicates = clean_copy(tmp_path_factory.mktemp("replicates"))
        jobs["replicates"] = Job(replicates, README_SEQUENCE, logs / "replicates.txt", after=AFTER["replicates"],
                                 prepare=_cache_of_the_run_before("replicates", replicates, runs))  # fmt: skip
    paths = {}
    if "gpu_check" in wanted:
        paths["gpu_check"] = rehearsal = tmp_path_factory.mktemp("gpu_check_out")
        env["PYTHON"], env["GPU_CHECK_DATA"] = sys.executable, str(JPEG_ARCHIVE)
        # its 280 s budget is for a machine of its own; here it shares 2 cores with the other runs
        env["GPU_CHECK_BUDGET_S"] = "900"
        jobs["gpu_check"] = Job(REPO, f"bash benchmarks/gpu_check.sh --cpu {rehearsal}", logs / "gpu_check.txt")
    background = Background({name: jobs[name] for name in AFTER if name in jobs}, env, paths)
    request.config.stash[BACKGROUND] = background
    yield background
    background.stop()  # an interrupted session leaves nothing running


def pytest_terminal_summary(terminalreporter, config) -> None:
    """Each background run's wall time, so that a CI log records what the smoke pipeline took
    serially, with --jobs 2 and 8, and through SLURM (beside each other and the other tests)."""
    background = config.stash.get(BACKGROUND, None)
    if background is None:
        return
    terminalreporter.write_sep(
        "-", f"the session's pipeline runs ({AT_ONCE} at a time and SLURM's on its cluster, beside the other tests)"
    )
    for name, j in background.jobs.items():
        if j.skipped or j.proc is None:
            ended = j.skipped or "not started"
        else:
            ended = f"{j.seconds:.0f} s, exit {j.proc.returncode}" if j.seconds is not None else "stopped unfinished"
            ended += f" (started {j.started - background.began:.0f} s into the session)"
        terminalreporter.write_line(f"{name:<11} {ended}")


def pytest_collection_modifyitems(items) -> None:
    """The slow tests last, so that the others run while the pipeline runs they check go on;
    among them, those reading runs that start later come later (AFTER's order)."""

    def last_run(item) -> int:
        names = [name for mark in item.iter_markers("smoke_run") for name in mark.args if name in AFTER]
        return max((list(AFTER).index(name) for name in names), default=-1)

    items.sort(key=lambda item: (item.get_closest_marker("slow") is not None, last_run(item)))


class SmokeRuns:
    """The pipeline runs of SMOKE_RUNNERS by name, each waited for when first asked for."""

    def __init__(self, background: Background):
        self.background = background

    def __contains__(self, name: str) -> bool:
        return name in SMOKE_RUNNERS and name in self.background.jobs

    def __getitem__(self, name: str) -> SmokeRun:
        return self.background.wait(name)


@pytest.fixture(scope="session")
def smoke_runs(background) -> SmokeRuns:
    """Every pipeline run of SMOKE_RUNNERS (SLURM's only when a cluster started)."""
    if background is None:
        pytest.skip(f"needs the CIFAR-10 archive {JPEG_ARCHIVE}")
    return SmokeRuns(background)


@pytest.fixture(scope="session")
def prepared(smoke_runs) -> Path:
    """The canonical file the serial run's ``prepare`` stage made from the JPEG archive: the
    tests of the real data read it rather than decode the 60,000 images again."""
    serial = smoke_runs["serial"]
    assert serial.returncode == 0, f"{SMOKE_RUNNERS['serial']} failed in {serial.repo}:\n{serial.output[-6000:]}"
    return serial.repo / "data" / "cifar10.pt"


@pytest.fixture(scope="session")
def runs(smoke_runs) -> tuple[Path, Path]:
    """The plain `dvc repro` and the ``classaware repro --jobs 2`` copies, both succeeded."""
    for name in ("serial", "jobs2"):
        assert smoke_runs[name].returncode == 0, (
            f"{SMOKE_RUNNERS[name]} failed in {smoke_runs[name].repo}:\n{smoke_runs[name].output[-6000:]}"
        )
    return smoke_runs["serial"].repo, smoke_runs["jobs2"].repo
