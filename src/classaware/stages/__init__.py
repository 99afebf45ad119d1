"""One module per ``classaware`` subcommand, and the registry that maps each subcommand to it.

A stage module holds everything about its stage:

* ``Config``: a frozen :class:`~classaware.config.Options` dataclass, its command-line options,
  validated before any compute;
* ``run(config)``: reads the stage's inputs, calls the library, writes its outputs atomically.

A module that is a DVC stage of ``dvc.yaml`` also says what it costs and how it is audited,
through the same functions its ``run`` calls (the same image selection and batching), so the
estimate and the audit cannot drift from what the stage does:

* ``work(config, upstream)``: the images one run of the stage puts through each kind of work,
  ``{(kind, arch): count}`` (kinds in :mod:`classaware.costs`); ``upstream`` answers what the
  stages before it write (:class:`classaware.costs.Upstream`);
* ``shapes(config)`` (optional): what it writes, as the work of the stages after it needs it,
  ``{output path: {"images": N, ...}}``;
* ``WORK_BOUND`` (optional): why its counts are upper bounds rather than exact;
* ``AUDIT``: ``{check name: function(config, ctx) -> items checked}``, how ``classaware audit``
  recomputes its outputs (``ctx``: :class:`classaware.stages.audit.Context`), empty when the
  audit's shared check (every output as ``dvc.lock`` pins it) is all that applies;
* ``CHECKS`` (optional): ``{check name: what it checks}`` for the checks the stage introduces
  (the audit describes its shared ones, ``checkpoints`` and ``derived``, itself).

:data:`COMMANDS` is the registry; the CLI builds its parser from it, and the estimate and the
audit find each pipeline stage's module through it, so a new stage is one module and one line
here.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .. import profiles
from ..config import Options, add_arguments, from_args

# subcommand -> (module of this package, one-line help); modules are imported only when used
COMMANDS = {
    "download": ("download", "fetch the official CIFAR-10 archive (internet, md5-checked)"),
    "prepare": ("prepare", "CIFAR-10 archive -> canonical tensor file"),
    "train": ("train", "train one zoo member"),
    "attack": ("attack", "adversarial examples of one source model, attack and objective"),
    "predict": ("predict", "every model's predictions on a source's adversarial examples"),
    "transfer": ("transfer", "class-aware transferability ratios with confidence intervals"),
    "distance": ("distance", "decision-boundary distances Dist(F1, F2)"),
    "plane": ("plane", "decision planes of one image (Fig. 4 data)"),
    "figures": ("figures", "Figs. 3-5 as PNG plus their data as CSV"),
    "construct": ("construct", "non-robust set of one model pair by the N-targeted attack (Table 1)"),
    "train-grid": ("train_grid", "grid-searched training on a non-robust or the original set (Table 2)"),
    "tables": ("tables", "Tables 1 and 2 from the section 4 metrics"),
    "verify": ("verify", "check the paper's claims against the metrics"),
    "report": ("report", "report.md / report.html for reviewers"),
    "audit": ("audit", "check a finished run's artifacts without retraining (for reviewers, after dvc pull)"),
    "profile": ("profile", f"switch params.yaml to a profile: {', '.join(profiles.NAMES)}"),
    "replicate": ("replicate", "run the pipeline again with other seeds (DVC experiments) and summarize the claims"),
    "estimate": ("estimate", "each stage's expected time for params.yaml's profile on a measured device"),
    "repro": ("repro", "run the pipeline's stages up to N at once, each pinned to one device"),
    "slurm": ("slurm", "submit the pipeline to SLURM as one job per stage, or show the jobs' status"),
}


def load(command: str) -> ModuleType:
    """The module of subcommand ``command``; ValueError for a subcommand the registry lacks."""
    if command not in COMMANDS:
        raise ValueError(f"unknown classaware subcommand {command!r}; known: {', '.join(COMMANDS)}")
    return importlib.import_module(f"{__name__}.{COMMANDS[command][0]}")


def parse(cmd: str, root: Path | None = None) -> tuple[str, Options] | None:
    """(subcommand, its Config) of the shell command ``cmd`` of a DVC stage, or None when it is
    not a ``classaware`` command. With ``root``, globs are expanded there, as the shell that DVC
    runs the command in expands them (sorted); ValueError for options the stage refuses."""
    argv = shlex.split(cmd)
    if not argv or argv[0] != "classaware":
        return None
    if root is not None:
        argv = [e for a in argv for e in (_expand(a, root) if glob.has_magic(a) else [a])]
    command = argv[1] if len(argv) > 1 else ""
    config = load(command).Config
    try:
        return command, from_args(config, parser(command).parse_args(argv[2:]))
    except ValueError as exc:
        raise ValueError(f"`{cmd}` does not parse: {exc}") from exc


class _Parser(argparse.ArgumentParser):
    """Raises ValueError where argparse would print and exit."""

    def error(self, message: str):
        raise ValueError(message)


def parser(command: str) -> argparse.ArgumentParser:
    """The options of subcommand ``command`` alone, as the CLI reads them, raising ValueError
    where the CLI would print and exit."""
    found = _Parser(prog=f"classaware {command}")
    add_arguments(found, load(command).Config)
    return found


@dataclass(frozen=True)
class Stage:
    """One DVC stage of the pipeline: its name in DVC (``train@resnet18``: foreach and matrix
    stages are ``group@key``), its subcommand and the Config its command line gives."""

    name: str
    command: str
    config: Options

    @property
    def module(self) -> ModuleType:
        return load(self.command)


def configure(commands: Mapping[str, str], root: Path | None = None) -> list[Stage]:
    """The ``classaware`` stages among DVC's ``{stage name: command}``, in that order, each with
    its Config (see :func:`parse`); ValueError naming the stage whose command does not parse."""
    stages = []
    for name, cmd in commands.items():
        try:
            parsed = parse(cmd, root)
        except ValueError as exc:
            raise ValueError(f"stage {name}: {exc}") from exc
        if parsed is not None:
            stages.append(Stage(name, *parsed))
    return stages


def _expand(pattern: str, root: Path) -> list[str]:
    matches = sorted(str(Path(p).relative_to(root)) for p in glob.glob(str(root / pattern)))
    return matches or [pattern]  # as bash does, a pattern matching nothing stays as written
