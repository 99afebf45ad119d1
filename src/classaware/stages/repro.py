"""Command ``repro``: the pipeline's stages, up to ``--jobs`` at once, each pinned to one device.

Not a DVC stage: it drives DVC. Run it where you would run ``dvc repro``; it runs the stages
that ``dvc repro`` would run (changed ones and what is downstream of them; up-to-date stages
are skipped), each as ``dvc repro --single-item STAGE`` once all its upstream stages succeeded,
so dvc.lock ends with the hashes a serial run gives at the same thread counts (on the CPU, other
thread counts give other bytes: see :mod:`classaware.scaleout`).

``--devices cuda:0,cuda:1`` pins each stage to one GPU through CUDA_VISIBLE_DEVICES, the least
busy one first: with ``--jobs`` equal to the number of devices that is one stage per GPU, with
more jobs several stages share each GPU. Stages keep their own ``--device`` (``auto`` in
params.yaml), which then finds the pinned GPU as cuda:0. Unless OMP_NUM_THREADS is set, each
stage gets an equal share of this process's cores. Each stage's output goes to
``LOG_DIR/STAGE.log``.

At the first failure nothing new starts; running stages finish and stay committed, and the
command exits with status 1, naming the stage and showing the end of its log.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .. import scaleout
from ..config import Options, help_field

log = logging.getLogger(__name__)


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
        return problems + scaleout.workspace_problems(Path.cwd())

    def device_list(self) -> list[str]:
        return self.devices.split(",") if self.devices else []


def failure_message(report: scaleout.Report, log_dir: Path) -> str:
    """Which stage failed first and why (the end of its log), what else failed, what is kept and
    what never started."""
    first, *others = report.failed
    log_path = scaleout.log_file(log_dir, first.stage)
    also = f"; also failed: {', '.join(o.stage for o in others)} (see their logs)" if others else ""
    return (
        f"classaware repro: stage {first.stage!r} failed (exit {first.returncode}) after {first.seconds:.1f} s{scaleout.on_device(first.device)}; "
        f"the end of its log {log_path}:\n{scaleout.tail(log_path)}\n"
        f"{len(report.succeeded)} stages succeeded and are committed{also}; not started: "
        f"{', '.join(report.not_started) or 'none'}"
    )


def run(cfg: Config) -> None:
    pipeline = scaleout.read_pipeline(Path.cwd())
    graph = scaleout.to_run(pipeline)
    if not graph:
        log.info("nothing to run: all %d stages are up to date", len(pipeline.order))
        return
    devices = cfg.device_list()
    threads = max(1, len(os.sched_getaffinity(0)) // cfg.jobs)
    log.info(
        "%d of %d stages to run, up to %d at once, %s; OMP_NUM_THREADS=%s",
        len(graph),
        len(pipeline.order),
        cfg.jobs,
        f"pinned to {cfg.devices}" if devices else "no device pinning",
        os.environ.get("OMP_NUM_THREADS", threads),
    )
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = scaleout.schedule(
        graph, cfg.jobs, devices, partial(scaleout.run_stage, root=Path.cwd(), log_dir=cfg.log_dir, threads=threads)
    )
    if report.failed:
        raise SystemExit(failure_message(report, cfg.log_dir))
    log.info("all %d stages succeeded in %.1f s", len(report.succeeded), time.perf_counter() - start)
