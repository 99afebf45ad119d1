"""Command ``estimate``: what a profile costs, stage by stage, on a measured device, and the cost
model behind it.

Reads the parameters of ``params.yaml`` (or ``--params``, or a profile by ``--profile``), has
DVC render every stage's command of ``dvc.yaml`` with them (:mod:`classaware.workflow.pipeline`),
lets each stage count its work for the options its command gives it (its ``work``, see
:mod:`classaware.stages`) and converts that to time with the figures of a throughput file, the
JSON ``benchmarks/gpu_check.sh`` writes. The default is the H100 figures committed as
``benchmarks/results/h100.json``; while there are none, it says so and prints the work units
alone. The last line is ``total: X h``.

The cost model: each stage module counts its own work from its configuration, per
architecture, in units of one image:

  train    one image through one SGD step (forward, backward, update) at the recipe's batch size
  forward  one image through one eval-mode forward pass (predictions, accuracies, Dist's scan,
           the decision plane)
  grad     one gradient of a loss with respect to one input image (forward and backward to the
           input): one attack step of one model, one Dist direction
  save     one write of a training's resume state or checkpoint (``training.state_epochs``)
  decode   one image decoded from the CIFAR-10 archive (``prepare``)

plus one process per DVC stage instance (``runs``). Time is

  seconds = sum over (kind, arch) of units / rate(kind, arch)  +  runs * stage_overhead_s

with the rates of a throughput file (the ``throughput`` section ``gpu_check.py`` writes):
``train`` and ``forward`` are measured per architecture; ``save`` is 1 / state_save_s;
``grad`` is forward * g, where g = steps * pgd img/s / forward img/s is measured on the PGD
benchmark's architecture, both rates on the same images and batches, back to back: a gradient
is taken to cost the same multiple of a forward pass for every architecture (both are
convolutions through the same layers). ``decode`` and the
per-process overhead (start-up, loading data and checkpoints, DVC's bookkeeping) come from the
measured pipeline run.

Where the throughput figures do not cover a stage (no file, or not its architectures: a CPU
profile), its time is the one this workspace measured when it last ran that stage with the very
command these parameters give (``logs/timings.jsonl``, which every stage run under DVC appends
to, and ``dvc.lock``, which says the command it last ran), marked ``*`` and said so; a stage
neither covers is ``?``.

A stage counts exactly unless it declares why its counts are upper bounds (``WORK_BOUND``,
e.g. Dist's scan, whose length depends on where each model's boundary lies). Training rates
are measured at one batch size (128) and apply to every batch size of a grid.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Options, help_field
from ..files import load_json, parse_yaml
from ..stages import Stage, Upstream, configure
from . import pipeline
from .profile import merged_params, params_file_problems

KINDS = ("train", "forward", "grad", "save", "decode")
DECODE = ""  # the "architecture" of decode units: none
H100 = Path("benchmarks/results/h100.json")


@dataclass
class Work:
    """One row of the estimate, a dvc.yaml stage with every instance of it: ``units[(kind,
    arch)]`` images, ``runs`` processes; ``bounds``: why the counts are upper bounds (empty:
    exact)."""

    stage: str
    runs: int = 0
    units: Counter = field(default_factory=Counter)
    bounds: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()  # its foreach or matrix instances' names in DVC (or the stage's own)

    @property
    def bound(self) -> bool:
        return bool(self.bounds)

    def total(self, kind: str) -> float:
        return sum(n for (k, _), n in self.units.items() if k == kind)


def pipeline_work(stages: list[Stage]) -> list[Work]:
    """The work of every stage of a pipeline, one row per dvc.yaml stage (its foreach or matrix
    instances together), in the pipeline's order; ValueError for a stage module that does not
    count its work or counts a kind of work this model does not know."""
    upstream = Upstream(stages)
    rows: dict[str, Work] = {}
    for s in stages:
        work = getattr(s.module, "work", None)
        if work is None:
            raise ValueError(f"stage {s.name}: {s.module.__name__} does not count its work (a work function)")
        units = Counter(work(s.config, upstream))
        unknown = {kind for kind, _ in units} - set(KINDS)
        if unknown:
            raise ValueError(f"stage {s.name}: unknown kinds of work {sorted(unknown)}; known: {', '.join(KINDS)}")
        row = rows.setdefault(s.name.split("@")[0], Work(s.name.split("@")[0]))
        row.runs += 1
        row.instances += (s.name,)
        row.units.update(units)
        bound = getattr(s.module, "WORK_BOUND", None)
        if bound and bound not in row.bounds:
            row.bounds += (bound,)
    return list(rows.values())


@dataclass(frozen=True)
class Rates:
    """Units per second by (kind, arch) and the per-process overhead, from a throughput file;
    a benchmark that did not run leaves its rates out (the stages needing them show as missing)."""

    device: str
    per_s: dict
    overhead_s: float | None
    train_bf16: bool | None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_results(cls, doc: dict) -> Rates:
        """From the JSON ``benchmarks/gpu_check.py`` writes (see the module docstring)."""
        t = {name: section or {} for name, section in doc["throughput"].items()}
        train, infer, pgd, pipeline = t["train"], t["infer"].get("img_per_s", {}), t["pgd"], t["pipeline"]
        per_s = {}
        if pipeline.get("decode_img_per_s"):
            per_s["decode", DECODE] = pipeline["decode_img_per_s"]
        for a, rate in train.get("img_per_s", {}).items():
            per_s["train", a] = rate
        for a, seconds in train.get("state_save_s", {}).items():
            per_s["save", a] = 1 / seconds
        g = pgd["steps"] * pgd["img_per_s"] / pgd["forward_img_per_s"] if pgd else None  # gradients/s over forwards/s
        for a, rate in infer.items():
            per_s["forward", a] = rate
            if g is not None:
                per_s["grad", a] = rate * g
        return cls(doc["device"], per_s, pipeline.get("stage_overhead_s"), train.get("bf16"), _checks(t, per_s))

    def seconds(self, w: Work) -> float | None:
        """The stage's time, or None when a figure it needs was not measured (see :meth:`missing`)."""
        if self.missing(w):
            return None
        return sum(n / self.per_s[key] for key, n in w.units.items() if n) + w.runs * self.overhead_s

    def missing(self, w: Work) -> list[str]:
        gaps = [f"{kind} {arch}".strip() for (kind, arch), n in w.units.items() if n and (kind, arch) not in self.per_s]
        return sorted(gaps + (["stage start-up"] if w.runs and self.overhead_s is None else []))


def _checks(t: dict, per_s: dict) -> tuple[str, ...]:
    """What the other benchmarks say about the model: the N-targeted attack predicted from the
    gradient rates against its measured rate, the concurrent trainings' total speed-up."""
    notes = []
    nt, ct = t["n_targeted"], t["concurrent_train"]
    if nt and all(("grad", a) in per_s for a in nt["archs"]):
        predicted = 1 / (nt["steps"] * sum(1 / per_s["grad", a] for a in nt["archs"]))
        notes.append(
            f"model check: N-targeted {'+'.join(nt['archs'])}, {nt['steps']} steps: "
            f"predicted {predicted:.4g} img/s, measured {nt['img_per_s']:.4g} img/s"
        )
    if ct.get("img_per_s", {}).get("1"):
        one = ct["img_per_s"]["1"]
        notes.append(
            f"{ct['arch']} trainings at once, total throughput / one training's: "
            + ", ".join(f"{k} at once {v / one:.2f}x" for k, v in ct["img_per_s"].items())
        )
    return tuple(notes)


def fmt_count(n: float) -> str:
    if n == 0:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def fmt_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"


MEASURED = "*"  # marks a time measured in this workspace (see measured_times)


def measured_times(timings: Path, lock: Path, rendered: Mapping[str, str]) -> dict[str, float]:
    """{stage instance: seconds} of the stages whose last run in this workspace (the last line of
    ``timings`` for it, outside DVC's experiments) ran the command ``rendered`` gives it now (as
    ``lock``, dvc.lock, records it), so the time was measured for these very settings."""
    if not timings.is_file() or not lock.is_file():
        return {}
    locked = pipeline.locked_commands(lock)
    last: dict[str, float] = {}
    for line in timings.read_text().splitlines():
        try:
            entry = json.loads(line)
            if entry.get("experiment") is None:
                last[entry["stage"]] = float(entry["seconds"])
        except (ValueError, KeyError, TypeError, AttributeError):  # a line a killed run cut short
            continue
    return {stage: t for stage, t in last.items() if stage in rendered and locked.get(stage) == rendered[stage]}


def table(works: list[Work], rates: Rates | None, measured: Mapping[str, float] | None = None) -> list[str]:
    """One line per stage: processes, units of every kind, time and share of the total (upper
    bounds marked <=), then the total; without rates, the work units and ``total: ? h``. A stage
    the rates do not cover takes its ``measured`` time (by instance, all of them measured),
    marked :data:`MEASURED`."""
    measured = measured or {}
    times = {w.stage: rates.seconds(w) for w in works} if rates else {}
    here = {
        w.stage: sum(measured[i] for i in w.instances)
        for w in works
        if times.get(w.stage) is None and w.instances and all(i in measured for i in w.instances)
    }
    times |= here
    known = [s for s in times.values() if s is not None]
    total = sum(known)
    row = "{:<16} {:>5} {:>10} {:>10} {:>10} {:>8} {:>8} {:>12} {:>6}".format
    lines = [row("stage", "runs", "train img", "fwd img", "grad img", "saves", "decoded", "time", "share")]
    for w in works:
        mark = "<=" if w.bound else ""
        seconds = times.get(w.stage)
        time = "?" if seconds is None else mark + fmt_seconds(seconds) + (MEASURED if w.stage in here else "")
        share = "" if seconds is None or not total else f"{100 * seconds / total:.1f}%"
        counts = [fmt_count(w.total(k)) for k in KINDS]
        counts[1] = mark + counts[1] if counts[1] != "-" else counts[1]
        lines.append(row(w.stage, w.runs, *counts, time, share))
    missing = sorted({m for w in works if w.stage not in here for m in (rates.missing(w) if rates else [])})
    unknown = [w.stage for w in works if times.get(w.stage) is None]
    if here:
        lines.append(
            f"{MEASURED} measured here: the time of this workspace's last run of the stage with this very command "
            f"(logs/timings.jsonl, dvc.lock), for {len(here)} stage{'s' if len(here) > 1 else ''} the throughput "
            "figures do not cover"
        )
    if rates is None and unknown:
        lines.append(
            "total: ? h (no throughput figures"
            + (f"; measured here: {total / 3600:.2f} h of it; not: {', '.join(unknown)})" if here else ")")
        )
    elif unknown:
        gaps = ", ".join(missing) if missing else ", ".join(unknown)
        lines.append(f"total: ? h (not measured: {gaps}; the stages that are: {total / 3600:.2f} h)")
    else:
        bounds = list(dict.fromkeys(b for w in works for b in w.bounds))
        lines.append(
            f"total: {total / 3600:.2f} h"
            + (f" ({len(here)} stages as measured here)" if here else "")
            + (f" (an upper bound: {'; '.join(bounds)})" if bounds else "")
        )
    return lines


# ----------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class Config(Options):
    params: Path = help_field(Path("params.yaml"), "the parameters to estimate (ignored with --profile)")
    profile: str | None = help_field(None, "estimate this profile (profiles_dir/<name>.yaml) instead of --params")
    profiles_dir: Path = help_field(Path("profiles"), "folder of the profile files")
    throughput: Path = help_field(H100, "throughput figures (gpu_check.json from benchmarks/gpu_check.sh)")
    dvc_yaml: Path = help_field(Path("dvc.yaml"), "the pipeline whose stages are estimated")
    timings: Path = help_field(
        Path("logs/timings.jsonl"), "stage times measured in this workspace, for the stages the figures do not cover"
    )

    def check(self) -> list[str]:
        if self.profile is not None and not (self.profiles_dir / f"{self.profile}.yaml").is_file():
            return [f"unknown profile {self.profile!r}: no {self.profiles_dir / self.profile}.yaml"]
        if self.profile is None and not self.params.is_file():
            return [f"--params {self.params} does not exist"]
        if not self.dvc_yaml.is_file():
            return [f"--dvc_yaml {self.dvc_yaml} does not exist"]
        if self.throughput != H100 and not self.throughput.is_file():
            return [
                f"--throughput {self.throughput} does not exist (give the JSON benchmarks/gpu_check.sh writes, "
                f"or leave it out for {H100})"
            ]
        return []


def stages(params: dict, dvc_yaml: Path) -> list[Stage]:
    """The stages of ``dvc_yaml`` with ``params``, each with its Config."""
    return configure(pipeline.rendered_commands(dvc_yaml, params))


def report(
    params: dict, source: str, throughput: Path, dvc_yaml: Path = Path("dvc.yaml"), timings: Path | None = None
) -> list[str]:
    """The estimate's lines for merged parameters ``params`` (read from ``source``); ``timings``:
    the stage times measured in the workspace of ``dvc_yaml`` (:func:`measured_times`)."""
    lines = [f"profile: {params['profile']} ({source})"]
    pipeline_stages = stages(params, dvc_yaml)
    measured = {}
    if timings is not None:
        measured = measured_times(timings, dvc_yaml.with_name("dvc.lock"), pipeline.rendered_commands(dvc_yaml, params))
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
        alone = "work units, and the times measured here" if measured else "work units only"
        lines.append(f"throughput: {throughput}: {what}; {alone}")
    return lines + table(pipeline_work(pipeline_stages), rates, measured)


def run(cfg: Config) -> None:
    if cfg.profile is None and (problems := params_file_problems(cfg.params, cfg.profiles_dir)):
        raise ValueError("; ".join(problems))
    if cfg.profile is not None:
        params, source = merged_params(cfg.profile, cfg.profiles_dir), f"{cfg.profiles_dir}/{cfg.profile}.yaml"
    else:
        params, source = parse_yaml(cfg.params.read_text()), str(cfg.params)
    print("\n".join(report(params, source, cfg.throughput, cfg.dvc_yaml, cfg.timings)))
