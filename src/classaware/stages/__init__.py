"""The pipeline's DVC stages: one module per stage of ``dvc.yaml``, and the registry that maps
each stage's ``classaware`` subcommand to it. Every module here is a stage; the commands that
drive the pipeline from outside (``classaware profile``, ``repro``, ``audit`` ...) are in
:mod:`classaware.workflow`.

A stage module holds everything about its stage, and this is the protocol every one follows:

* ``Config``: a frozen :class:`~classaware.config.Options` dataclass, its command-line options,
  validated before any compute;
* ``run(config)``: reads the stage's inputs, calls the library, writes its outputs atomically;
* ``work(config, upstream)``: the images one run of the stage puts through each kind of work,
  ``{(kind, arch): count}`` (kinds in :mod:`classaware.workflow.estimate`), through the same
  image selection and batching its ``run`` makes, so the estimate cannot drift from what the stage
  does; ``upstream`` (:class:`Upstream`) answers what the stages before it write;
* ``shapes(config)`` (optional): what it writes, as the work of the stages after it needs it,
  ``{output path: {"images": N, ...}}``;
* ``WORK_BOUND`` (optional): why its counts are upper bounds rather than exact;
* ``AUDIT``: ``{check name: function(config, ctx) -> items checked}``, how ``classaware audit``
  recomputes its outputs (``ctx``: :class:`AuditContext`), empty when the audit's shared check
  (every output as ``dvc.lock`` pins it) is all that applies;
* ``CHECKS`` (optional): ``{check name: what it checks}`` for the checks the stage introduces
  (the audit describes its shared ones, ``checkpoints`` and ``derived``, itself).

A stage that draws at random takes every seed and image selection through its options'
:class:`~classaware.config.Draws` (``cfg.draws``), the one door of a replicate's randomness.

:data:`COMMANDS` is the registry; the CLI builds its parser from it (and from
:data:`classaware.workflow.COMMANDS`), and the estimate and the audit find each stage's module
through it, so a new stage is one module, one line here and its stanza in ``dvc.yaml``.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from ..config import Options, add_arguments, from_args

if TYPE_CHECKING:  # for the protocol's types only: importing them would import torch
    import torch

    from ..data import Cifar10
    from ..environment import Environment

# subcommand -> (module of this package, one-line help); modules are imported only when used
COMMANDS = {
    "prepare": ("prepare", "CIFAR-10 archive -> canonical tensor file"),
    "train": ("train", "train one zoo member"),
    "conditions": ("conditions", "the paper's conditions (claims.yaml) checked on the trained zoo"),
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
}


def load(command: str) -> ModuleType:
    """The module of stage subcommand ``command``; ValueError for one the registry lacks."""
    if command not in COMMANDS:
        raise ValueError(f"unknown classaware stage {command!r}; known: {', '.join(COMMANDS)}")
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


# ----------------------------------------------------------------------------- what a stage's work and audit get
class Upstream:
    """What the pipeline's stages write, as the work of the stages after them needs it: each
    stage module's ``shapes(config)``, ``{output path: {"images": N, ...}}``."""

    def __init__(self, stages: Iterable[Stage]):
        self._shapes: dict[Path, dict] = {}
        for s in stages:
            shapes = getattr(s.module, "shapes", None)
            for path, shape in (shapes(s.config) if shapes else {}).items():
                self._shapes[Path(path)] = shape

    def shape(self, path: str | Path) -> dict:
        """What the stage writing ``path`` says of it; ValueError when no stage writes it."""
        if Path(path) not in self._shapes:
            raise ValueError(f"no stage of the pipeline writes {path}: its work cannot be counted")
        return self._shapes[Path(path)]

    def shapes_in(self, folder: str | Path) -> list[dict]:
        """What the stages say of the files they write directly in ``folder``, by file name."""
        return [shape for path, shape in sorted(self._shapes.items()) if path.parent == Path(folder)]

    def arch(self, models_dir: str | Path, ref: str) -> str:
        """The architecture of zoo reference ``member`` or ``member@epoch`` in ``models_dir``."""
        return self.shape(Path(models_dir) / ref.partition("@")[0])["arch"]


class AuditContext(Protocol):
    """What a stage's audit function gets (``classaware.workflow.audit.Context`` is the one the
    audit passes): where to recompute, which batches to sample, and the comparisons, bit for bit
    when the artifact was made in this environment, else within the audit's tolerances. A
    function raises :attr:`Mismatch` at the first item that does not hold and :attr:`Skip` when
    its check cannot be made here."""

    Mismatch: type[Exception]
    Skip: type[Exception]
    device: torch.device
    sample: int  # at least this many images of each sampled set are recomputed
    generator: torch.Generator  # the audit's own draws (which batches, which eps)

    def data(self, path: Path) -> Cifar10: ...

    def batches(self, n: int, batch_size: int) -> list[slice]: ...

    def pixels_equal(self, made_in: Environment, ours: torch.Tensor, stored: torch.Tensor) -> bool: ...

    def rates_equal(self, made_in: Environment, ours: float, stored: float) -> bool: ...

    def labels_agree(self, made_in: Environment, ours: torch.Tensor, stored: torch.Tensor, where: str) -> None: ...

    def in_ball(self, x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str, where: str) -> None: ...

    def same_json(self, path: Path, values: dict[str, Any]) -> None: ...
