"""Stage ``transfer``: class-aware transferability (section 3.1.1) of every adversarial set,
eps and target model, with 95% Wilson intervals, from the ``predict`` tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..analysis import eps_key
from ..artifacts import load_tensors, save_json
from ..config import Options, help_field
from ..metrics import class_aware_transfer


@dataclass(frozen=True)
class Config(Options):
    predictions: tuple[Path, ...] = help_field(help="prediction tables from `predict`, one per source", nonempty=True)
    out: Path = help_field(help="JSON file of every ratio", output="file")


def source_results(table: dict) -> dict:
    """Ratios for one source: {set name: {eps: {target: ClassAwareTransfer.as_dict()}}}."""
    y, clean = table["y"], table["clean"]
    targets = table["models"][1:]
    attacks = {}
    for name, s in table["sets"].items():
        per_eps = {}
        for e, pred in zip(s["eps"], s["pred"]):
            results = class_aware_transfer(y, clean[0], pred[0], pred[1:], s["targets"])
            per_eps[eps_key(e)] = {t: r.as_dict() for t, r in zip(targets, results)}
        attacks[name] = {"method": s["method"], "objective": s["objective"], "eps": per_eps}
    return {
        "models": table["models"],
        "info": table["info"],
        "clean_acc": {m: (row == y).float().mean().item() for m, row in zip(table["models"], clean)},
        "n_images": len(y),
        "attacks": attacks,
    }


def run(cfg: Config) -> None:
    tables = [load_tensors(p, "prediction table") for p in cfg.predictions]
    save_json(
        {"dataset": tables[0]["data_source"]["dataset"], "sources": {t["source"]: source_results(t) for t in tables}},
        cfg.out,
    )
