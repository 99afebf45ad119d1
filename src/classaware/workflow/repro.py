"""Command ``repro``: the pipeline's stages, up to ``--jobs`` at once, each pinned to one device.

Not a DVC stage: it drives DVC. Run it where you would run ``dvc repro``; it runs the stages
that ``dvc repro`` would run (changed ones and what is downstream of them; up-to-date stages
are skipped), each as ``dvc repro --single-item STAGE`` once all its upstream stages succeeded,
so dvc.lock ends with the hashes a serial run gives at the same thread counts. DVC stays the
engine: it says which stages exist, in what order and which have changed
(:func:`classaware.workflow.pipeline.read_pipeline`), and it checks, runs and commits each stage;
this module decides only *when* a stage starts (once every upstream stage it depends on has
succeeded) and *where* (which device). Only the order of dvc.lock's entries (DVC appends each
stage as it commits) and the wall time differ from a serial ``dvc repro``. On the CPU the hashes
agree only at equal thread counts: the same seeds give the same bytes only on the same number of
threads, and this command gives each stage ``OMP_NUM_THREADS`` = its share of the cores unless it
is set, where a plain ``dvc repro`` runs every stage on all of them; set it for both to compare.

``--devices cuda:0,cuda:1`` pins each stage to one GPU through CUDA_VISIBLE_DEVICES, the least
busy one first: with ``--jobs`` equal to the number of devices that is one stage per GPU, with
more jobs several stages share each GPU. Stages keep their own ``--device`` (``auto`` in
params.yaml), which then finds the pinned GPU as cuda:0. Unless OMP_NUM_THREADS is set, each
stage gets an equal share of this process's cores. Each stage's output goes to
``LOG_DIR/STAGE.log``.

At the first failure nothing new starts; running stages finish and stay committed, and the
command exits with status 1, naming the stage and showing the end of its log.

Progress: the console says where each stage's full output goes and, every ``--progress_every``
seconds, the last line of each running stage's log (a stage logs its epochs and batches at most
every 30 s, :mod:`classaware.progress`), as ``  STAGE: LINE``.

Stopping. SIGINT (Ctrl-C) or SIGTERM stops the run: nothing new starts, and every running stage
is stopped by its guard (:mod:`classaware.workflow.guard`), the leader of the stage's process
group, which holds the read end of a pipe only this process writes to. Closing it stops them
all: each guard sends SIGINT to its stage's own processes (the stage's shell and command), the
command stops (``classaware CMD: interrupted``), and DVC, seeing it fail, commits nothing, so
dvc.lock keeps what it held for those stages; DVC is not interrupted in its own bookkeeping, and
whatever still runs ``GRACE_S`` seconds later gets SIGINT, then SIGTERM, then SIGKILL. The same
signal again kills every stage at once. The command then names the stages cut short and exits
with 128 + the signal's number (130, 143). If this process dies without a word (SIGKILL), the
kernel closes the pipe and each guard stops its stage in the same way, so no stage runs on, let
alone commits, after it. A stage that had already finished its command when the stop came may
still be committed (DVC commits in seconds); it is then counted as succeeded.

``--wait-for-lock`` (:data:`~classaware.workflow.pipeline.DVC_REPRO`) is required, not a
nicety: DVC holds its repository lock while it checks a stage and while it hashes and commits the
outputs, and by default gives up after 3 s. Measured with DVC 3.67.1
(``benchmarks/dvc_lock_contention.py``): of 8 concurrent processes writing 100 MB each, 3 ran
their command and then failed to take the lock back to commit, so their work was lost from
dvc.lock; with ``--wait-for-lock`` 8, 16 and 32 concurrent processes all committed. The lock still
serialises that check-and-commit part, which is short next to a training run.
"""

from __future__ import annotations

import contextlib
import graphlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field
from . import pipeline
from .pipeline import DVC_REPRO, log_file
from .profile import missing_archive_problem, params_file_problems

log = logging.getLogger(__name__)
GUARD = Path(__file__).with_name("guard.py")  # run by path: it imports nothing of classaware
GRACE_S = 20.0  # seconds a stopped stage's DVC has to end on its own before SIGINT, SIGTERM, SIGKILL


# ----------------------------------------------------------------------------- scheduling on one machine
@dataclass(frozen=True)
class Outcome:
    """How one stage's ``dvc repro --single-item`` ended."""

    stage: str
    device: str | None
    returncode: int
    seconds: float


@dataclass(frozen=True)
class Report:
    """What a scheduled run did: stages that succeeded and those that failed (each in the order
    they ended: after the first failure, stages still running may fail too), the stages never
    started because of a failure or a stop, and those a stop cut short (they ended without
    success after it)."""

    succeeded: tuple[Outcome, ...]
    failed: tuple[Outcome, ...]
    not_started: tuple[str, ...]
    cut_short: tuple[Outcome, ...] = ()


def least_loaded(load: Mapping[str, int], devices: Sequence[str]) -> str | None:
    """The device running the fewest stages, the first listed among equals (so stages go round
    robin over idle devices, and share them evenly when there are more jobs than devices);
    None when no devices are given (CPU: nothing to pin)."""
    return min(devices, key=lambda d: load[d]) if devices else None


def on_device(device: str | None) -> str:
    """The device part of a log line (" on cuda:K"), empty when the stage is not pinned."""
    return f" on {device}" if device else ""


def schedule(
    graph: Mapping[str, frozenset[str]],
    jobs: int,
    devices: Sequence[str],
    run: Callable[[str, str | None], int],
    stop: threading.Event | None = None,
) -> Report:
    """Run every stage of ``graph`` (stage -> stages it waits for) with ``run(stage, device)``
    (its exit status), up to ``jobs`` at once, each as soon as all it waits for succeeded.

    After the first failure, or once ``stop`` is set, nothing new starts; stages already running
    finish (and are kept): the caller stops them after setting ``stop``, and those that then end
    without success are cut short. ``graphlib.TopologicalSorter`` does the dependency bookkeeping."""
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    stop = stop or threading.Event()
    ready: list[str] = []
    load = Counter({d: 0 for d in devices})
    running: dict[Future, tuple[str, str | None, float]] = {}
    succeeded: list[Outcome] = []
    failed: list[Outcome] = []
    cut_short: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while True:
            if not failed and not stop.is_set():
                ready += sorter.get_ready()
                while ready and len(running) < jobs:
                    stage, device = ready.pop(0), least_loaded(load, devices)
                    if device:
                        load[device] += 1
                    log.info("started %s%s", stage, on_device(device))
                    running[pool.submit(run, stage, device)] = (stage, device, time.perf_counter())
            if not running:
                break
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)  # a stop is seen within 0.5 s
            for future in done:
                stage, device, start = running.pop(future)
                if device:
                    load[device] -= 1
                outcome = Outcome(stage, device, future.result(), time.perf_counter() - start)
                if outcome.returncode == 0:
                    sorter.done(stage)
                    succeeded.append(outcome)
                    log.info(
                        "finished %s%s in %.1f s (%d/%d)",
                        stage,
                        on_device(device),
                        outcome.seconds,
                        len(succeeded),
                        len(graph),
                    )
                elif stop.is_set():
                    log.warning("stopped %s%s after %.1f s", stage, on_device(device), outcome.seconds)
                    cut_short.append(outcome)
                else:
                    log.error(
                        "FAILED %s%s (exit %d) after %.1f s",
                        stage,
                        on_device(device),
                        outcome.returncode,
                        outcome.seconds,
                    )
                    failed.append(outcome)
    started = {o.stage for o in succeeded + failed + cut_short}
    return Report(tuple(succeeded), tuple(failed), tuple(s for s in graph if s not in started), tuple(cut_short))


def stage_env(base: Mapping[str, str], device: str | None, threads: int) -> dict[str, str]:
    """A stage's environment: pinned to ``device`` (``cuda:K`` -> CUDA_VISIBLE_DEVICES=K, so the
    stage's ``--device auto`` finds exactly that GPU as cuda:0), and OpenMP limited to
    ``threads`` unless the caller chose OMP_NUM_THREADS, so concurrent stages do not
    oversubscribe the cores."""
    env = {"OMP_NUM_THREADS": str(threads), **base}
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device.split(":")[1]
    return env


class Stages:
    """Runs each stage as ``dvc repro --single-item STAGE`` in ``root`` under its guard
    (:mod:`classaware.workflow.guard`), its output in the stage's log file (``run`` for
    :func:`schedule`), and stops them all (:meth:`stop`). Use it as a context manager: leaving it
    closes the pipe the guards watch, so no stage outlives it."""

    def __init__(self, root: Path, log_dir: Path, threads: int, grace: float = GRACE_S):
        self.root, self.log_dir, self.threads, self.grace = root, log_dir, threads, grace
        self.watched, self._alive = os.pipe()  # the guards read; only this process holds the write end
        self.lock = threading.RLock()  # a signal handler may stop while the main thread stops
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc) -> None:
        self._close()  # any guard still running (there should be none) stops its stage
        os.close(self.watched)

    def _close(self) -> None:
        if self._alive is not None:
            os.close(self._alive)
            self._alive = None

    def __call__(self, stage: str, device: str | None) -> int:
        command = [sys.executable, str(GUARD), str(self.watched), str(self.grace), "--", *DVC_REPRO, stage]
        with open(log_file(self.log_dir, stage), "w") as out, self.lock:
            if self.stopping:  # started as the stop came: never run
                return 128 + signal.SIGINT
            proc = subprocess.Popen(
                command,
                cwd=self.root,
                env=stage_env(os.environ, device, self.threads),
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(self.watched,),
                start_new_session=True,  # its own process group: stopped as one, and not by the terminal's Ctrl-C
            )
            self.procs[stage] = proc
        try:
            return proc.wait()
        finally:
            with self.lock:
                del self.procs[stage]

    def running(self) -> list[str]:
        with self.lock:
            return list(self.procs)

    def stop(self) -> None:
        """Stop every running stage: the first call closes the pipe, and each guard stops its stage
        (:func:`classaware.workflow.guard.stop`: SIGINT to the stage's command, then SIGINT,
        SIGTERM and SIGKILL to what still runs, :attr:`grace` seconds apart); a second call kills
        every stage's process group at once."""
        with self.lock:
            if not self.stopping:
                self.stopping = True
                self._close()
                return
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, to say why a stage failed."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \S+ [A-Z]+ ")  # the stages' logging format


def last_line(path: Path) -> str:
    """The last line a stage wrote to its log (a progress bar's last redraw counts), without the
    logging prefix; empty when there is none yet."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]
    return _LOG_PREFIX.sub("", lines[-1]) if lines else ""


def show_progress(stages: Stages, every: float, done: threading.Event) -> None:
    """Every ``every`` seconds until ``done``, the last line of each running stage's log, when it is new."""
    shown: dict[str, str] = {}
    while not done.wait(every):
        for stage in stages.running():
            line = last_line(log_file(stages.log_dir, stage))
            if line and shown.get(stage) != line:
                log.info("  %s: %s", stage, line)
                shown[stage] = line


# ----------------------------------------------------------------------------- the command
@dataclass(frozen=True)
class Config(Options):
    jobs: int = help_field(1, "stages run at once", ge=1)
    devices: str = help_field(
        "",
        "CUDA devices to pin stages to, comma-separated, e.g. cuda:0,cuda:1 "
        "(default: no pinning: CPU, or every GPU visible to each stage)",
        pattern=r"(cuda:\d+(,cuda:\d+)*)?",
        expected="CUDA devices separated by commas, e.g. cuda:0,cuda:1 (or nothing)",
    )
    log_dir: Path = help_field(Path("logs/repro"), "folder for each stage's output, STAGE.log", output="dir")
    progress_every: float = help_field(
        30.0, "seconds between two progress lines (each running stage's last log line) on the console; 0: none", ge=0
    )

    def check(self) -> list[str]:
        devices = self.device_list()
        problems = [f"devices lists {d} twice" for d in sorted(set(devices)) if devices.count(d) > 1]
        return problems

    def device_list(self) -> list[str]:
        return self.devices.split(",") if self.devices else []


def failure_message(report: Report, log_dir: Path) -> str:
    """Which stage failed first and why (the end of its log), what else failed, what is kept and
    what never started."""
    first, *others = report.failed
    log_path = log_file(log_dir, first.stage)
    also = f"; also failed: {', '.join(o.stage for o in others)} (see their logs)" if others else ""
    return (
        f"classaware repro: stage {first.stage!r} failed (exit {first.returncode}) after {first.seconds:.1f} s{on_device(first.device)}; "
        f"the end of its log {log_path}:\n{tail(log_path)}\n"
        f"{len(report.succeeded)} stages succeeded and are committed{also}; not started: "
        f"{', '.join(report.not_started) or 'none'}"
    )


def run_problems(root: Path) -> list[str]:
    """What keeps the pipeline of ``root`` from running, said before anything runs: not a DVC
    workspace, a params.yaml no profile would write (a missing group, a misspelt key), or the
    CIFAR-10 archive it names missing (with the fix: ``classaware download`` or ``--data``)."""
    problems = pipeline.workspace_problems(root)
    if not problems:
        problems = params_file_problems(root / "params.yaml", root / "profiles")
    if not problems and (missing := missing_archive_problem(root / "params.yaml")):
        problems.append(missing)
    return problems


def stopped_message(report: Report, sig: int, log_dir: Path) -> str:
    """Which stages a stop cut short (not committed), what was committed, and what never started."""
    cut = ", ".join(o.stage for o in report.cut_short) or "none"
    failed = f"; failed before the stop: {', '.join(o.stage for o in report.failed)}" if report.failed else ""
    return (
        f"classaware repro: stopped by {signal.Signals(sig).name}; cut short, not committed (dvc.lock keeps what it "
        f"held for them): {cut}; {len(report.succeeded)} stages succeeded and are committed{failed}; not started: "
        f"{len(report.not_started)}. Their logs: {log_dir}/STAGE.log; `classaware repro` again runs what is left"
    )


def run(cfg: Config) -> None:
    if problems := run_problems(Path.cwd()):
        raise ValueError("; ".join(problems))
    plan = pipeline.read_pipeline(Path.cwd())
    graph = pipeline.to_run(plan)
    if not graph:
        log.info("nothing to run: all %d stages are up to date", len(plan.order))
        return
    devices = cfg.device_list()
    threads = max(1, len(os.sched_getaffinity(0)) // cfg.jobs)
    log.info(
        "%d of %d stages to run, up to %d at once, %s; OMP_NUM_THREADS=%s",
        len(graph),
        len(plan.order),
        cfg.jobs,
        f"pinned to {cfg.devices}" if devices else "no device pinning",
        os.environ.get("OMP_NUM_THREADS", threads),
    )
    every = f"; the last line of each running stage's log every {cfg.progress_every:g} s" if cfg.progress_every else ""
    log.info("each stage's full output: %s/STAGE.log%s", cfg.log_dir, every)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stop, done = threading.Event(), threading.Event()
    with Stages(Path.cwd(), cfg.log_dir, threads) as stages, _stopped_by_signals(stages, stop) as received:
        if cfg.progress_every:
            threading.Thread(target=show_progress, args=(stages, cfg.progress_every, done), daemon=True).start()
        try:
            report = schedule(graph, cfg.jobs, devices, stages, stop)
        finally:
            done.set()
    if received:
        print(stopped_message(report, received[0], cfg.log_dir), file=sys.stderr)
        raise SystemExit(128 + received[0])
    if report.failed:
        raise SystemExit(failure_message(report, cfg.log_dir))
    log.info("all %d stages succeeded in %.1f s", len(report.succeeded), time.perf_counter() - start)


@contextlib.contextmanager
def _stopped_by_signals(stages: Stages, stop: threading.Event):
    """SIGINT and SIGTERM stop ``stages`` (see the module docstring) instead of this process,
    while inside; yields the list of the signals received. Off the main thread, where Python
    handles no signals, nothing changes."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame) -> None:
        received.append(signum)
        if len(received) == 1:
            stop.set()
            log.warning(
                "%s: stopping %d running stages (%s; the same signal again kills them at once)",
                signal.Signals(signum).name,
                len(stages.running()),
                ", ".join(stages.running()) or "none",
            )
        stages.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
