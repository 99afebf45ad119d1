"""Run the pipeline's independent stages at once: on the devices of one machine, or as SLURM jobs.

DVC stays the engine: it says which stages exist, in what order and which have changed
(:func:`read_pipeline` asks its command line: ``dvc dag`` and ``dvc status``, see
:mod:`classaware.pipeline`), and every stage
runs as DVC's own ``dvc --wait-for-lock repro --single-item STAGE``, which checks the stage
again, runs it only if it changed and commits it to ``dvc.lock``. This module decides only
*when* (a stage starts once every upstream stage it depends on has succeeded) and *where* (which
device, or which SLURM job). So the stages that run, their commands and the final ``dvc.lock``
hashes are those of a serial ``dvc repro``; only the order of dvc.lock's entries (DVC appends
each stage as it commits) and the wall time differ. On the CPU the hashes agree only at equal
thread counts: the same seeds give the same bytes only on the same number of threads, and
``classaware repro`` gives each stage ``OMP_NUM_THREADS`` = its share of the cores unless it is
set, where a plain ``dvc repro`` runs every stage on all of them; set it for both to compare.

``--wait-for-lock`` is required, not a nicety: DVC holds its repository lock while it checks a
stage and while it hashes and commits the outputs, and by default gives up after 3 s. Measured
with DVC 3.67.1 (``benchmarks/dvc_lock_contention.py``): of 8 concurrent processes writing
100 MB each, 3 ran their command and then failed to take the lock back to commit, so their work
was lost from dvc.lock; with ``--wait-for-lock`` 8, 16 and 32 concurrent processes all
committed. The lock still serialises that check-and-commit part, which is short next to a
training run.
"""

from __future__ import annotations

import graphlib
import json
import logging
import os
import re
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from . import pipeline

log = logging.getLogger(__name__)

DVC_REPRO = ("dvc", "--wait-for-lock", "repro", "--single-item")
JOBS_FILE = "jobs.json"  # what `slurm submit` records for `slurm status`


# ----------------------------------------------------------------------------- the DAG, from DVC
@dataclass(frozen=True)
class Pipeline:
    """The stages ``dvc repro`` would visit, upstream first, what each depends on, and which
    have changed (would run now)."""

    order: tuple[str, ...]
    upstream: Mapping[str, frozenset[str]]
    changed: frozenset[str]


def read_pipeline(root: Path, busy: Collection[str] = ()) -> Pipeline:
    """Ask DVC for the pipeline of ``root/dvc.yaml`` as ``dvc repro`` plans it: the stages of
    dvc.yaml and those upstream of them (``dvc dag``), and each stage's own change check (``dvc
    status``). The stages in ``busy`` are being run by another process (a SLURM job): they count
    as changed, and DVC is not asked about them, since it refuses to check files another DVC
    process is writing. A frozen stage keeps its place after its upstream stages, and DVC's own
    check skips it there. DVC's errors (a broken dvc.yaml ...) are ValueErrors: the CLI reports
    them without a traceback."""
    graph = pipeline.graph(root)
    if busy:
        asked = [s for s in graph.order if s not in busy]
        report = pipeline.status(root, pipeline.targets(asked, graph.order)) if asked else {}
    else:  # the quickest way to ask about every stage: dvc.yaml and what is upstream of it
        report = pipeline.status(root, ["dvc.yaml"], with_deps=True)
    changed = (set(report) | set(busy)) & set(graph.order)
    return Pipeline(graph.order, graph.upstream, frozenset(changed))


def to_run(pipeline: Pipeline) -> dict[str, frozenset[str]]:
    """The stages to schedule, in DVC's order, each with the scheduled stages it waits for: every
    changed stage and everything downstream of one (whose inputs may change when it reruns;
    DVC skips it then if they did not). Up-to-date upstream stages are not waited for."""
    selected: dict[str, frozenset[str]] = {}
    for stage in pipeline.order:
        waits_for = frozenset(pipeline.upstream[stage] & selected.keys())
        if stage in pipeline.changed or waits_for:
            selected[stage] = waits_for
    return selected


# ----------------------------------------------------------------------------- one machine
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


def log_file(log_dir: Path, stage: str) -> Path:
    """Where a stage's output goes: its address with path separators replaced (stages of a
    dvc.yaml in a subfolder are addressed ``sub/dvc.yaml:name``)."""
    return log_dir / (re.sub(r"[/:]", "_", stage) + ".log")


def run_stage(stage: str, device: str | None, root: Path, log_dir: Path, threads: int) -> int:
    """``dvc repro --single-item stage`` in ``root``, its output in the stage's log file."""
    with open(log_file(log_dir, stage), "w") as out:
        env = stage_env(os.environ, device, threads)
        return subprocess.run([*DVC_REPRO, stage], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, to say why a stage failed."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ----------------------------------------------------------------------------- SLURM
@dataclass(frozen=True)
class SlurmJob:
    """One ``sbatch`` job: where it runs and on what it may use."""

    workspace: Path
    job_dir: Path
    path: str  # PATH for the job: the `dvc` and `classaware` of the submitting environment first
    partition: str | None = None
    gpus: int = 1
    time: str | None = None


def job_script(stage: str, job: SlurmJob, waits_for: Sequence[str]) -> str:
    """The batch script of one stage: SLURM options as #SBATCH lines, then DVC's command. The
    afterok dependency is given to sbatch on the command line, since it names job ids only
    known at submission; the script says which stages it waits for."""
    options = [
        f"--job-name={stage}",
        f"--chdir={job.workspace}",
        f"--output={log_file(job.job_dir, stage)}",
        f"--export=ALL,PATH={job.path}",
    ]
    options += [f"--partition={job.partition}"] * bool(job.partition) + [f"--time={job.time}"] * bool(job.time)
    options += [f"--gpus={job.gpus}"] * (job.gpus > 0)
    after = f"# runs after: {' '.join(waits_for)}" if waits_for else "# waits for no other job"
    return "\n".join(["#!/bin/bash", *(f"#SBATCH {o}" for o in options), after, shlex.join([*DVC_REPRO, stage]), ""])


def sbatch_args(script: Path, upstream_ids: Sequence[str]) -> list[str]:
    """sbatch's command line: the job starts only after every upstream job ended with exit 0
    (afterok), and SLURM cancels it if one failed (--kill-on-invalid-dep), so a failure cancels
    everything downstream of it and nothing else."""
    dependency = [f"--dependency=afterok:{':'.join(upstream_ids)}", "--kill-on-invalid-dep=yes"] if upstream_ids else []
    return ["sbatch", "--parsable", *dependency, str(script)]


def submit(graph: Mapping[str, frozenset[str]], job: SlurmJob, sbatch: Callable[[list[str]], str]) -> dict[str, str]:
    """Write each stage's script to the job folder and submit it with ``sbatch`` (which returns
    the job id), upstream first; returns stage -> job id. The ids are saved for ``status`` after
    every submission, so that if sbatch refuses one, those already queued are still on record."""
    job.job_dir.mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    for stage, waits_for in graph.items():
        script = log_file(job.job_dir, stage).with_suffix(".sbatch")
        script.write_text(job_script(stage, job, sorted(waits_for)))
        ids[stage] = sbatch(sbatch_args(script, [ids[s] for s in sorted(waits_for)]))
        (job.job_dir / JOBS_FILE).write_text(json.dumps(ids, indent=1) + "\n")
        log.info("submitted %s as job %s", stage, ids[stage])
    return ids


def run_sbatch(args: list[str]) -> str:
    """Run sbatch; its ``--parsable`` output is ``id`` or ``id;cluster``."""
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"{shlex.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip().split(";")[0]


def slurm_states(ids: Sequence[str]) -> dict[str, str]:
    """job id -> SLURM's state and reason (e.g. ``CANCELLED (DependencyNeverSatisfied)``) for the
    jobs slurmctld still knows; finished jobs drop out of its memory after MinJobAge (300 s by
    default), which is why ``status`` also asks DVC what is done. squeue refuses a list of only
    such jobs ("Invalid job id"); any other refusal is an error."""
    done = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}", "--format=%i|%T|%r"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        raise ValueError(f"squeue cannot list the jobs: {done.stderr.strip()}")
    states = {}
    for line in done.stdout.splitlines():
        job_id, state, reason = line.split("|")
        states[job_id] = state if reason in ("None", "") else f"{state} ({reason})"
    return states


def status_table(ids: Mapping[str, str], states: Mapping[str, str], to_do: Collection[str]) -> str:
    """One line per submitted stage: its job, whether it is done (DVC has it and everything
    upstream of it up to date) or still to run, and SLURM's state of the job."""
    width = max(map(len, ids), default=5)
    lines = [f"{'stage':<{width}}  {'job':>8}  {'dvc':<6}  slurm"]
    for stage, job_id in ids.items():
        done = "to run" if stage in to_do else "done"
        lines.append(f"{stage:<{width}}  {job_id:>8}  {done:<6}  {states.get(job_id, 'not in the queue')}")
    return "\n".join(lines)


def workspace_problems(root: Path) -> list[str]:
    """Why ``root`` is not a DVC pipeline workspace, if it is not (checked before any work)."""
    if (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file():
        return []
    return [f"{root.resolve()} holds no DVC pipeline (.dvc and dvc.yaml): run this in the pipeline's workspace"]
