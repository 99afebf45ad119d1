"""Command ``estimate``: what a profile costs, stage by stage, on a measured device.

Reads the parameters of ``params.yaml`` (or ``--params``, or a profile by ``--profile``), has
DVC render every stage's command of ``dvc.yaml`` with them (:mod:`classaware.pipeline`), lets
each stage count its work for the options its command gives it (:mod:`classaware.costs`) and
converts that to time with the figures of
a throughput file, the JSON ``benchmarks/gpu_check.sh`` writes. The default is the H100 figures
committed as ``benchmarks/results/h100.json``; while there are none, it says so and prints the
work units alone. The last line is ``total: X h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import pipeline
from ..config import Options, help_field
from ..costs import Rates, pipeline_work, table
from ..files import load_json
from ..profiles import merged_params
from . import Stage, configure

H100 = Path("benchmarks/results/h100.json")


@dataclass(frozen=True)
class Config(Options):
    params: Path = help_field(Path("params.yaml"), "the parameters to estimate (ignored with --profile)")
    profile: str | None = help_field(None, "estimate this profile (profiles_dir/<name>.yaml) instead of --params")
    profiles_dir: Path = help_field(Path("profiles"), "folder of the profile files")
    throughput: Path = help_field(H100, "throughput figures (gpu_check.json from benchmarks/gpu_check.sh)")
    dvc_yaml: Path = help_field(Path("dvc.yaml"), "the pipeline whose stages are estimated")

    def check(self) -> list[str]:
        if self.profile is not None and not (self.profiles_dir / f"{self.profile}.yaml").is_file():
            return [f"unknown profile {self.profile!r}: no {self.profiles_dir / self.profile}.yaml"]
        if self.profile is None and not self.params.is_file():
            return [f"--params {self.params} does not exist"]
        if not self.dvc_yaml.is_file():
            return [f"--dvc_yaml {self.dvc_yaml} does not exist"]
        return []


def stages(params: dict, dvc_yaml: Path) -> list[Stage]:
    """The stages of ``dvc_yaml`` with ``params``, each with its Config."""
    return configure(pipeline.rendered_commands(dvc_yaml, params))


def report(params: dict, source: str, throughput: Path, dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    """The estimate's lines for merged parameters ``params`` (read from ``source``)."""
    lines = [f"profile: {params['profile']} ({source})"]
    pipeline_stages = stages(params, dvc_yaml)
    if throughput.is_file():
        rates = Rates.from_results(load_json(throughput, "throughput figures"))
        lines.append(f"throughput: {throughput}, {rates.device}")
        lines += [f"  {note}" for note in rates.notes]
        bf16 = {s.config.bf16 for s in pipeline_stages if hasattr(s.config, "bf16")}
        if rates.train_bf16 is not None and bf16 != {rates.train_bf16}:
            lines.append(
                f"  training rates were measured with bf16 {'on' if rates.train_bf16 else 'off'}; this profile trains with bf16 "
                + " and ".join("on" if b else "off" for b in sorted(bf16))
            )
    else:
        rates = None
        what = (
            "no H100 figures are committed yet (benchmarks/README.md: run benchmarks/gpu_check.sh on a GPU)"
            if throughput == H100
            else "it does not exist"
        )
        lines.append(f"throughput: {throughput}: {what}; work units only")
    return lines + table(pipeline_work(pipeline_stages), rates)


def run(cfg: Config) -> None:
    if cfg.profile is not None:
        params, source = merged_params(cfg.profile, cfg.profiles_dir), f"{cfg.profiles_dir}/{cfg.profile}.yaml"
    else:
        params, source = yaml.safe_load(cfg.params.read_text()), str(cfg.params)
    print("\n".join(report(params, source, cfg.throughput, cfg.dvc_yaml)))
