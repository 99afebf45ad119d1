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

``--wait-for-lock`` (:data:`~classaware.workflow.pipeline.DVC_REPRO`) is required, not a
nicety: DVC holds its repository lock while it checks a stage and while it hashes and commits the
outputs, and by default gives up after 3 s. Measured with DVC 3.67.1
(``benchmarks/dvc_lock_contention.py``): of 8 concurrent processes writing 100 MB each, 3 ran
their command and then failed to take the lock back to commit, so their work was lost from
dvc.lock; with ``--wait-for-lock`` 8, 16 and 32 concurrent processes all committed. The lock still
serialises that check-and-commit part, which is short next to a training run.
"""

from __future__ import annotations

import graphlib
import logging
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..config import Options, help_field
from . import pipeline
from .pipeline import DVC_REPRO, log_file

log = logging.getLogger(__name__)


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
    they ended: after the first failure, stages still running may fail too), and the stages
    never started because of a failure."""

    succeeded: tuple[Outcome, ...]
    failed: tuple[Outcome, ...]
    not_started: tuple[str, ...]


def least_loaded(load: Mapping[str, int], devices: Sequence[str]) -> str | None:
    """The device running the fewest stages, the first listed among equals (so stages go round
    robin over idle devices, and share them evenly when there are more jobs than devices);
    None when no devices are given (CPU: nothing to pin)."""
    return min(devices, key=lambda d: load[d]) if devices else None


def on_device(device: str | None) -> str:
    """The device part of a log line (" on cuda:K"), empty when the stage is not pinned."""
    return f" on {device}" if device else ""


def schedule(
    graph: Mapping[str, frozenset[str]], jobs: int, devices: Sequence[str], run: Callable[[str, str | None], int]
) -> Report:
    """Run every stage of ``graph`` (stage -> stages it waits for) with ``run(stage, device)``
    (its exit status), up to ``jobs`` at once, each as soon as all it waits for succeeded.

    After the first failure nothing new starts; stages already running finish (and are kept).
    ``graphlib.TopologicalSorter`` does the dependency bookkeeping."""
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    ready: list[str] = []
    load = Counter({d: 0 for d in devices})
    running: dict[Future, tuple[str, str | None, float]] = {}
    succeeded: list[Outcome] = []
    failed: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while True:
            if not failed:
                ready += sorter.get_ready()
                while ready and len(running) < jobs:
                    stage, device = ready.pop(0), least_loaded(load, devices)
                    if device:
                        load[device] += 1
                    log.info("started %s%s", stage, on_device(device))
                    running[pool.submit(run, stage, device)] = (stage, device, time.perf_counter())
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
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
                else:
                    log.error(
                        "FAILED %s%s (exit %d) after %.1f s",
                        stage,
                        on_device(device),
                        outcome.returncode,
                        outcome.seconds,
                    )
                    failed.append(outcome)
    started = {o.stage for o in succeeded + failed}
    return Report(tuple(succeeded), tuple(failed), tuple(s for s in graph if s not in started))


def stage_env(base: Mapping[str, str], device: str | None, threads: int) -> dict[str, str]:
    """A stage's environment: pinned to ``device`` (``cuda:K`` -> CUDA_VISIBLE_DEVICES=K, so the
    stage's ``--device auto`` finds exactly that GPU as cuda:0), and OpenMP limited to
    ``threads`` unless the caller chose OMP_NUM_THREADS, so concurrent stages do not
    oversubscribe the cores."""
    env = {"OMP_NUM_THREADS": str(threads), **base}
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device.split(":")[1]
    return env


def run_stage(stage: str, device: str | None, root: Path, log_dir: Path, threads: int) -> int:
    """``dvc repro --single-item stage`` in ``root``, its output in the stage's log file."""
    with open(log_file(log_dir, stage), "w") as out:
        env = stage_env(os.environ, device, threads)
        return subprocess.run([*DVC_REPRO, stage], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, to say why a stage failed."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


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

    def check(self) -> list[str]:
        devices = self.device_list()
        problems = [f"devices lists {d} twice" for d in sorted(set(devices)) if devices.count(d) > 1]
        return problems + pipeline.workspace_problems(Path.cwd())

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


def run(cfg: Config) -> None:
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
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = schedule(
        graph, cfg.jobs, devices, partial(run_stage, root=Path.cwd(), log_dir=cfg.log_dir, threads=threads)
    )
    if report.failed:
        raise SystemExit(failure_message(report, cfg.log_dir))
    log.info("all %d stages succeeded in %.1f s", len(report.succeeded), time.perf_counter() - start)
