"""``classaware score``: evaluate's tables, figures and report recomputed from per-image labels
alone: a ``samples.npz`` that ``classaware evaluate`` wrote, or a predictions CSV
(:func:`classaware.evaluation.samples.from_csv`'s columns) for people who only have labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    samples: Path = help_field(help="samples.npz of classaware evaluate, or a predictions CSV")
    out: Path = help_field(help="folder for the tables, figures and report", output="dir")
    num_classes: int = help_field(0, "number of classes of a predictions CSV (0: 1 + the largest label)", ge=0)
    compare_with: Path | None = help_field(
        None, "another samples.npz or CSV on the same images: paired comparison (McNemar)"
    )
    figures: bool = help_field(True, "draw the figures")


def _read(path: Path, num_classes: int):
    from .result import Evaluation
    from .samples import from_csv

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".csv":
        return Evaluation(from_csv(path, num_classes or None))
    return Evaluation.from_samples(path)


def run(cfg: Config) -> None:
    ev = _read(cfg.samples, cfg.num_classes)
    other = _read(cfg.compare_with, cfg.num_classes) if cfg.compare_with else None
    written = ev.save(cfg.out, ev.compare(other) if other else None, draw=cfg.figures)
    log.info("score: %d files in %s", len(written), cfg.out)
