"""Stage ``predict``: every model's labels on the clean images and on every adversarial set of
every source. One table per source: the source is model 0, then its targets F2 (its early
version, then every target but itself)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import Comparison, load_refs
from ..config import Options, device_field, help_field
from ..data import load_canonical, to_float
from ..environment import Environment
from ..models import pick_device, predict
from ..results import AdversarialSet, ModelInfo, PredictionTable, SetPredictions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    compare: Comparison
    adv_dir: Path = help_field(help="folder holding <source>/*.pt adversarial sets from `attack`")
    out_dir: Path = help_field(help="folder for the prediction tables <source>.pt", output="dir")
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    models_dir: Path = help_field(Path("models"), "folder of the zoo's checkpoints")
    batch_size: int = help_field(1000, "images per forward pass", ge=1)
    device: str = device_field()


def load_sets(folder: Path, source: str) -> dict[str, AdversarialSet]:
    """The source's adversarial sets by attack name, checked to be of that source and the same
    test images."""
    files = sorted(folder.glob("*.pt"))
    if not files:
        raise FileNotFoundError(f"no adversarial sets (*.pt) in {folder}")
    sets = {f.stem: AdversarialSet.load(f) for f in files}
    first = next(iter(sets.values()))
    for name, s in sets.items():
        if s.source != source or not torch.equal(s.indices, first.indices):
            raise ValueError(f"adversarial set {folder / name}.pt is not of source {source} on the same test images")
    return sets


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    sets = {source: load_sets(cfg.adv_dir / source, source) for source in cfg.compare.sources}
    models = load_refs(cfg.models_dir, cfg.compare.models, device)
    data = load_canonical(cfg.data)

    def labels(refs: tuple[str, ...], images: torch.Tensor) -> torch.Tensor:  # (M, N): one row per model
        return torch.stack([predict(models[ref][0], images, cfg.batch_size) for ref in refs])

    for source in cfg.compare.sources:
        refs = (source, *cfg.compare.targets_of(source))
        predictions = {}
        for name, s in sets[source].items():
            predictions[name] = SetPredictions(
                s.method, s.objective, s.eps, s.target_classes, torch.stack([labels(refs, xa) for xa in s.x_adv])
            )
            log.info("%s: predicted %d models on %s (%d eps)", source, len(refs), name, len(s.eps))
        first = next(iter(sets[source].values()))
        PredictionTable(
            source=source,
            models=refs,
            info={ref: ModelInfo.of(models[ref][1], models[source][1]) for ref in refs},
            indices=first.indices,
            y=first.y,
            clean=labels(refs, to_float(data.test_x[first.indices])),
            sets=predictions,
            provenance=data.provenance,
            environment=Environment.current(device),
        ).save(cfg.out_dir / f"{source}.pt")
