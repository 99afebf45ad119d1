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
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import scaleout
from ..config import Options, help_field

log = logging.getLogger(__name__)

# squeue's states of a job that ended without success (man squeue, JOB STATE CODES)
FAILED_STATES = ("BOOT_FAIL", "CANCELLED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT")


@dataclass(frozen=True)
class Config(Options):
    action: str = help_field(
        help="submit: queue one job per stage to run; status: the jobs and which stages are done",
        positional=True,
        choices=("submit", "status"),
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
        return scaleout.workspace_problems(Path.cwd())


def submit(cfg: Config) -> None:
    graph = scaleout.to_run(scaleout.read_pipeline(Path.cwd()))
    if not graph:
        log.info("nothing to submit: every stage is up to date")
        return
    job = scaleout.SlurmJob(
        workspace=Path.cwd(),
        job_dir=cfg.job_dir.resolve(),
        partition=cfg.partition,
        gpus=cfg.gpus_per_job,
        time=cfg.time,
        path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    if cfg.dry_run:
        print("\n".join(scaleout.job_script(stage, job, sorted(waits_for)) for stage, waits_for in graph.items()))
        return
    ids = scaleout.submit(graph, job, scaleout.run_sbatch)
    log.info("%d jobs submitted; `classaware slurm status` shows how they go", len(ids))


def status(cfg: Config) -> None:
    jobs_file = cfg.job_dir / scaleout.JOBS_FILE
    if not jobs_file.is_file():
        raise ValueError(f"no {jobs_file}: nothing was submitted from here (`classaware slurm submit` writes it)")
    ids = json.loads(jobs_file.read_text())
    states = scaleout.slurm_states(list(ids.values()))
    # a job SLURM still holds that has not ended is pending or running: its stage is not done,
    # and DVC is not asked about files such a job may be writing
    ended = ("COMPLETED", *FAILED_STATES)
    busy = [stage for stage, i in ids.items() if i in states and not states[i].startswith(ended)]
    print(scaleout.status_table(ids, states, scaleout.to_run(scaleout.read_pipeline(Path.cwd(), busy))))
    failed = [s for s, i in ids.items() if states.get(i, "").startswith(FAILED_STATES)]
    if failed:
        raise SystemExit(
            f"classaware slurm: {len(failed)} jobs failed or were cancelled: {', '.join(failed)} "
            f"(a job's output is in {cfg.job_dir}/STAGE.log)"
        )


def run(cfg: Config) -> None:
    {"submit": submit, "status": status}[cfg.action](cfg)
