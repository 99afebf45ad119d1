"""Stage ``predict``: every model's labels on the clean images and on every adversarial set of
every source. One table per source: the source is model 0, then its targets F2 (its early
version, then every target but itself)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..checkpoint import Comparison, load_refs
from ..config import Options, data_field, device_field, help_field, models_dir_field
from ..data import load_canonical, to_float
from ..environment import Environment
from ..models import pick_device, predict
from ..schema import AdversarialSet, ModelInfo, PredictionTable, SetPredictions

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    compare: Comparison
    adv_dir: Path = help_field(help="folder holding <source>/*.pt adversarial sets from `attack`")
    out_dir: Path = help_field(help="folder for the prediction tables <source>.pt", output="dir")
    data: Path = data_field()
    models_dir: Path = models_dir_field()
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


def labels(
    models: dict[str, torch.nn.Module], refs: tuple[str, ...], images: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """(M, N) int64: the labels model ``refs[m]`` gives image n, in batches of ``batch_size``."""
    return torch.stack([predict(models[ref], images, batch_size) for ref in refs])


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    sets = {source: load_sets(cfg.adv_dir / source, source) for source in cfg.compare.sources}
    loaded = load_refs(cfg.models_dir, cfg.compare.models, device)
    models = {ref: model for ref, (model, _) in loaded.items()}
    data = load_canonical(cfg.data)
    for source in cfg.compare.sources:
        refs = (source, *cfg.compare.targets_of(source))
        predictions = {}
        for name, s in sets[source].items():
            on_eps = torch.stack([labels(models, refs, xa, cfg.batch_size) for xa in s.x_adv])
            predictions[name] = SetPredictions(s.method, s.objective, s.eps, s.target_classes, on_eps)
            log.info("%s: predicted %d models on %s (%d eps)", source, len(refs), name, len(s.eps))
        first = next(iter(sets[source].values()))
        PredictionTable(
            source=source,
            models=refs,
            info={ref: ModelInfo.of(loaded[ref][1], loaded[source][1]) for ref in refs},
            indices=first.indices,
            y=first.y,
            clean=labels(models, refs, to_float(data.test_x[first.indices]), cfg.batch_size),
            sets=predictions,
            provenance=data.provenance,
            environment=Environment.current(device),
        ).save(cfg.out_dir / f"{source}.pt")


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> Counter:
    """Every model of a source's table on its clean images and on every set at every eps."""
    units = Counter()
    for source in cfg.compare.sources:
        sets = upstream.shapes_in(cfg.adv_dir / source)
        if not sets:
            raise ValueError(f"no stage of the pipeline writes adversarial sets in {cfg.adv_dir / source}")
        per_model = sets[0]["images"] + sum(s["images"] * s["eps"] for s in sets)
        for ref in (source, *cfg.compare.targets_of(source)):
            units["forward", upstream.arch(cfg.models_dir, ref)] += per_model
    return units


CHECKS = {"predictions": "sampled batches of the prediction tables re-predicted"}


def audit_tables(cfg: Config, ctx: AuditContext) -> int:
    """Randomly chosen batches of the clean images and of one randomly chosen eps of every set,
    predicted again by every model of the table."""
    data = ctx.data(cfg.data)
    n = 0
    for source in cfg.compare.sources:
        path = cfg.out_dir / f"{source}.pt"
        table = PredictionTable.load(path)
        models = {ref: m for ref, (m, _) in load_refs(cfg.models_dir, list(table.models), ctx.device).items()}
        sets = {name: AdversarialSet.load(cfg.adv_dir / source / f"{name}.pt") for name in table.sets}  # each named
        views = [("clean", to_float(data.test_x[table.indices]), table.clean)]
        for name, preds in table.sets.items():
            e = int(torch.randint(len(preds.eps), (1,), generator=ctx.generator))
            views.append((f"{name} eps {preds.eps[e]:g}", sets[name].x_adv[e], preds.labels[e]))
        for view, images, stored in views:
            for b in ctx.batches(len(images), cfg.batch_size):
                ours = labels(models, table.models, images[b], cfg.batch_size).cpu()
                for m, ref in enumerate(table.models):
                    where = f"{path}: {view} labels of {ref}, images {b.start}-{b.stop}"
                    ctx.labels_agree(table.environment, ours[m], stored[m, b], where)
                    n += len(ours[m])
    return n


AUDIT = {"predictions": audit_tables}
