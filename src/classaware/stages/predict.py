"""Stage ``predict``: every model's labels on the clean images and on every adversarial set of
every source. One table per source: the source is model 0, then its targets F2 (every target
but itself)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..artifacts import load_tensors, save_tensors
from ..checkpoint import load_refs
from ..config import Options, device_field, help_field
from ..data import load_canonical, to_float
from ..models import family, pick_device, predict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    sources: tuple[str, ...] = help_field(help="zoo references of the source models F1", nonempty=True)
    targets: tuple[str, ...] = help_field(
        help="zoo references of the target models F2 (a source is skipped as its own target)", nonempty=True)
    adv_dir: Path = help_field(help="folder holding <source>/*.pt adversarial sets from `attack`")
    out_dir: Path = help_field(help="folder for the prediction tables <source>.pt", output="dir")
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    models_dir: Path = help_field(Path("models"), "folder of the zoo's checkpoints")
    batch_size: int = help_field(1000, "images per forward pass", ge=1)
    device: str = device_field()


def relation(meta: dict, source: dict) -> str:
    """How a model relates to the source, in the paper's words: "source", "v:E" (the source at
    epoch E), "w:same" (same architecture and initial weights, other data order), "w:diff"
    (same architecture, other initial weights) or "other" (another architecture)."""
    if meta["arch"] != source["arch"]:
        return "other"
    if meta["init_seed"] != source["init_seed"]:
        return "w:diff"
    if meta["data_seed"] != source["data_seed"]:
        return "w:same"
    return "source" if meta["epoch"] == source["epoch"] else f"v:{meta['epoch']}"


def model_info(meta: dict, source: dict) -> dict:
    return {
        "arch": meta["arch"], "family": family(meta["arch"]), "epoch": meta["epoch"],
        "init_seed": meta["init_seed"], "data_seed": meta["data_seed"], "relation": relation(meta, source),
    }


def load_sets(folder: Path, source: str) -> dict[str, dict]:
    """The source's adversarial sets, checked to be of that source and the same test images."""
    files = sorted(folder.glob("*.pt"))
    if not files:
        raise FileNotFoundError(f"no adversarial sets (*.pt) in {folder}")
    sets = {f.stem: load_tensors(f, "adversarial set") for f in files}
    first = next(iter(sets.values()))
    for name, s in sets.items():
        if s["source"] != source or not torch.equal(s["indices"], first["indices"]):
            raise ValueError(f"adversarial set {folder / name}.pt is not of source {source} on the same test images")
    return sets


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    sets = {source: load_sets(cfg.adv_dir / source, source) for source in cfg.sources}
    models = load_refs(cfg.models_dir, list(dict.fromkeys(cfg.sources + cfg.targets)), device)
    data = load_canonical(cfg.data)
    for source in cfg.sources:
        refs = [source] + [t for t in cfg.targets if t != source]

        def labels(images: torch.Tensor) -> torch.Tensor:  # (M, N): one row per model
            return torch.stack([predict(models[ref][0], images, cfg.batch_size) for ref in refs])

        first = next(iter(sets[source].values()))
        out = {
            "source": source, "models": refs,
            "info": {ref: model_info(models[ref][1], models[source][1]) for ref in refs},
            "indices": first["indices"], "y": first["y"], "clean": labels(to_float(data.test_x[first["indices"]])),
            "data_source": data.source, "sets": {},
        }
        for name, s in sets[source].items():
            out["sets"][name] = {
                "method": s["method"], "objective": s["objective"], "eps": s["eps"], "targets": s["targets"],
                "pred": torch.stack([labels(xa) for xa in s["x_adv"]]),  # (E, M, N)
            }
            log.info("%s: predicted %d models on %s (%d eps)", source, len(refs), name, len(s["eps"]))
        save_tensors(out, cfg.out_dir / f"{source}.pt")
