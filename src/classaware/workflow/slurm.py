"""Command ``slurm``: run the pipeline on a SLURM cluster, one job per stage, or see how it goes.

``classaware slurm submit`` turns the stages ``dvc repro`` would run into one ``sbatch`` job
each, upstream jobs first, each starting only after its upstream jobs succeeded
(``afterok``, with the dependencies of DVC's DAG); a job that fails makes SLURM cancel
everything downstream of it. Every job runs ``dvc repro --single-item STAGE`` in this workspace,
which must be on a file system all nodes share (on NFS or Lustre, set ``dvc config
core.hardlink_lock true``: DVC's default lock relies on flock). Job scripts, their output
(STAGE.log) and the job ids (jobs.json) go to ``--job_dir``; ``--dry_run`` prints the scripts
and submits nothing.

``classaware slurm status`` shows each submitted stage's job, SLURM's state, and whether the
stage is done (DVC has it and all upstream of it up to date); it exits with status 1 when a
job failed or was cancelled.

``classaware slurm cancel`` stops the run: ``scancel`` of every recorded job SLURM still holds
(pending or running). SLURM sends a running job's processes SIGTERM (then SIGKILL), which ends
DVC before it commits, so dvc.lock keeps what it held for the stages cut short; the command names
them, and the pending ones that never started. A ``submit`` stopped half-way (Ctrl-C, SIGTERM)
cancels the jobs it had already queued, so no half pipeline runs on.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field
from . import pipeline
from .pipeline import DVC_REPRO, log_file
from .repro import run_problems

log = logging.getLogger(__name__)

# squeue's states of a job that ended without success (man squeue, JOB STATE CODES)
JOBS_FILE = "jobs.json"  # what `slurm submit` records for `slurm status`
FAILED_STATES = ("BOOT_FAIL", "CANCELLED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT")


# ----------------------------------------------------------------------------- jobs
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


def submit_jobs(
    graph: Mapping[str, frozenset[str]], job: SlurmJob, sbatch: Callable[[list[str]], str]
) -> dict[str, str]:
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


def run_scancel(ids: Sequence[str]) -> None:
    """``scancel`` the jobs ``ids``; ValueError with its message when it refuses."""
    done = subprocess.run(["scancel", *ids], capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"scancel {' '.join(ids)} failed: {done.stderr.strip()}")


def status_table(ids: Mapping[str, str], states: Mapping[str, str], to_do: Collection[str]) -> str:
    """One line per submitted stage: its job, whether it is done (DVC has it and everything
    upstream of it up to date) or still to run, and SLURM's state of the job."""
    width = max(map(len, ids), default=5)
    lines = [f"{'stage':<{width}}  {'job':>8}  {'dvc':<6}  slurm"]
    for stage, job_id in ids.items():
        done = "to run" if stage in to_do else "done"
        lines.append(f"{stage:<{width}}  {job_id:>8}  {done:<6}  {states.get(job_id, 'not in the queue')}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the command
@dataclass(frozen=True)
class Config(Options):
    action: str = help_field(
        help="submit: queue one job per stage to run; status: the jobs and which stages are done; "
        "cancel: scancel the submitted jobs still pending or running",
        positional=True,
        choices=("submit", "status", "cancel"),
    )
    partition: str | None = help_field(None, "partition to submit to (default: the cluster's)")
    gpus_per_job: int = help_field(1, "GPUs per job (0: CPU-only jobs)", ge=0)
    time: str | None = help_field(
        None,
        "time limit per job in sbatch's format, e.g. 12:00:00 or 1-00:00:00 (default: the partition's)",
        pattern=r"\d+(-\d+)?(:\d+){0,2}",
        expected="a time in sbatch's format: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS or DAYS-HOURS[:MINUTES[:SECONDS]]",
    )
    dry_run: bool = help_field(False, "print the job scripts, submit nothing")
    job_dir: Path = help_field(
        Path("logs/slurm"), "folder for the job scripts, their output and jobs.json", output="dir"
    )

    def check(self) -> list[str]:
        return pipeline.workspace_problems(Path.cwd())


def submit(cfg: Config) -> None:
    if problems := run_problems(Path.cwd()):
        raise ValueError("; ".join(problems))
    graph = pipeline.to_run(pipeline.read_pipeline(Path.cwd()))
    if not graph:
        log.info("nothing to submit: every stage is up to date")
        return
    job = SlurmJob(
        workspace=Path.cwd(),
        job_dir=cfg.job_dir.resolve(),
        partition=cfg.partition,
        gpus=cfg.gpus_per_job,
        time=cfg.time,
        path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    if cfg.dry_run:
        print("\n".join(job_script(stage, job, sorted(waits_for)) for stage, waits_for in graph.items()))
        return
    submitted: dict[str, str] = {}

    def sbatch(args: list[str]) -> str:
        submitted[args[-1]] = run_sbatch(args)
        return submitted[args[-1]]

    try:
        ids = submit_jobs(graph, job, sbatch)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM half-way: no half pipeline runs on
        if submitted:
            run_scancel(list(submitted.values()))
            log.warning("submission stopped: cancelled the %d jobs already queued", len(submitted))
        raise
    log.info("%d jobs submitted; `classaware slurm status` shows how they go", len(ids))


def _recorded(cfg: Config) -> dict[str, str]:
    jobs_file = cfg.job_dir / JOBS_FILE
    if not jobs_file.is_file():
        raise ValueError(f"no {jobs_file}: nothing was submitted from here (`classaware slurm submit` writes it)")
    return json.loads(jobs_file.read_text())


def _live(ids: Mapping[str, str], states: Mapping[str, str]) -> list[str]:
    """The stages whose job SLURM still holds and has not ended: pending or running."""
    ended = ("COMPLETED", *FAILED_STATES)
    return [stage for stage, i in ids.items() if i in states and not states[i].startswith(ended)]


def status(cfg: Config) -> None:
    ids = _recorded(cfg)
    states = slurm_states(list(ids.values()))
    # a job SLURM still holds that has not ended is pending or running: its stage is not done,
    # and DVC is not asked about files such a job may be writing
    busy = _live(ids, states)
    print(status_table(ids, states, pipeline.to_run(pipeline.read_pipeline(Path.cwd(), busy))))
    failed = [s for s, i in ids.items() if states.get(i, "").startswith(FAILED_STATES)]
    if failed:
        raise SystemExit(
            f"classaware slurm: {len(failed)} jobs failed or were cancelled: {', '.join(failed)} "
            f"(a job's output is in {cfg.job_dir}/STAGE.log)"
        )


def cancel(cfg: Config) -> None:
    """``scancel`` every recorded job still pending or running, and say which stages it cut short."""
    ids = _recorded(cfg)
    states = slurm_states(list(ids.values()))
    live = _live(ids, states)
    if not live:
        print("classaware slurm: no submitted job is pending or running: nothing to cancel")
        return
    run_scancel([ids[s] for s in live])
    running = [s for s in live if states[ids[s]].startswith(("RUNNING", "COMPLETING", "CONFIGURING"))]
    pending = [s for s in live if s not in running]
    print(
        f"classaware slurm: cancelled {len(live)} jobs; cut short, not committed (dvc.lock keeps what it held for "
        f"them): {', '.join(running) or 'none'}; never started: {', '.join(pending) or 'none'}"
    )


def run(cfg: Config) -> None:
    {"submit": submit, "status": status, "cancel": cancel}[cfg.action](cfg)
