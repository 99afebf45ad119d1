"""Stage ``figures``: Figs. 3, 4 and 5 of the paper as PNG, each beside the numbers it shows.

Writes, in ``out_dir``: fig3.png / fig3.csv (class-aware transferability at ``figure_eps``,
targets by Dist descending), fig4.png / fig4.json (decision planes and transfer regions),
fig5.png / fig5.csv (the ratios against eps) and correlations.csv (section 3.3's correlations
at ``figure_eps``). Every number comes from :mod:`classaware.analysis`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from .. import plots
from ..analysis import RATIOS, attack_names, check_eps, correlations, eps_curves, eps_key, transfer_rows
from ..artifacts import load_json, load_tensors, save_json, save_text
from ..boundary import REGION_NAMES, transfer_regions
from ..config import Options, help_field

FIG3_COLUMNS = ["source", "attack", "eps", "target", "relation", "family", "n", "dist", "dist_ci_low", "dist_ci_high",
                *(f"{k}{s}" for k in RATIOS for s in ("", "_ci_low", "_ci_high")), "target_hit"]
FIG5_COLUMNS = ["source", "attack", "target", "eps", *RATIOS]
CORRELATIONS = ("fooled_same", "dist_same", "dist_fooled")
CORRELATION_COLUMNS = ["source", "attack", "eps", "n_targets",
                       *(f"r_{c}{s}" for c in CORRELATIONS for s in ("", "_ci_low", "_ci_high"))]


@dataclass(frozen=True)
class Config(Options):
    transfer: Path = help_field(help="`transfer` results (JSON)")
    distance: Path = help_field(help="`distance` results (JSON)")
    plane: Path = help_field(help="`plane` decision planes")
    out_dir: Path = help_field(help="folder for the PNGs and their data", output="dir")
    figure_eps: float = help_field(1.0, "Fig. 3's eps, one of the attacked eps (paper: 1.0)", gt=0)


def plane_data(plane: dict) -> dict:
    """Fig. 4's data from the ``plane`` stage's file, with each F2's transfer regions."""
    labels, y = plane["labels"], int(plane["true_label"])
    return {
        "source": plane["source"], "models": list(plane["models"]), "classes": list(plane["classes"]),
        "true_label": y, "image_index": int(plane["index"]), "unit": float(plane["unit"]),
        "all_right": bool(plane["all_right"]), "dataset": plane["data_source"]["dataset"],
        "coords": plane["coords"].tolist(), "labels": labels.tolist(), "region_names": list(REGION_NAMES),
        "regions": {m: transfer_regions(labels[0], labels[i], y).tolist() for i, m in enumerate(plane["models"]) if i > 0},
    }


def _write_csv(rows: list[dict], columns: list[str], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    save_text(buf.getvalue(), path)


def run(cfg: Config) -> None:
    transfer = load_json(cfg.transfer, "transfer results")
    distance = load_json(cfg.distance, "distance results")
    plane = load_tensors(cfg.plane, "decision planes")
    eps = eps_key(cfg.figure_eps)
    check_eps(transfer, eps)
    dataset = transfer["dataset"]
    if distance["dataset"] != dataset:
        raise ValueError(f"{cfg.transfer} is on {dataset} but {cfg.distance} on {distance['dataset']}")
    out = Path(cfg.out_dir)
    attacks = {s: attack_names(transfer, s) for s in transfer["sources"]}

    columns = [{"source": s, "attacks": {a: transfer_rows(transfer, distance, s, a, eps) for a in names}}
               for s, names in attacks.items()]
    plots.fig3(columns, out / "fig3.png", dataset=dataset, eps=float(eps))
    _write_csv([{"source": c["source"], "attack": a, "eps": float(eps), **r} for c in columns for a, rows in c["attacks"].items() for r in rows],
               FIG3_COLUMNS, out / "fig3.csv")

    fig4 = plane_data(plane)
    plots.fig4(fig4, out / "fig4.png")
    save_json(fig4, out / "fig4.json")

    panels = [{"source": s, "attack": a, "curves": eps_curves(transfer, s, a)} for s, names in attacks.items() for a in names]
    plots.fig5(panels, out / "fig5.png", dataset=dataset)
    _write_csv([{"source": p["source"], "attack": p["attack"], "target": t, "eps": e, **{k: c[k][i] for k in RATIOS}}
                for p in panels for t, c in p["curves"].items() for i, e in enumerate(c["eps"])],
               FIG5_COLUMNS, out / "fig5.csv")

    corr = []
    for c in correlations(transfer, distance, eps):
        row = {"source": c["source"], "attack": c["attack"], "eps": float(eps), "n_targets": c["n_targets"]}
        for name in CORRELATIONS:
            ci = c[f"r_{name}_ci"] or (None, None)
            row.update({f"r_{name}": c[f"r_{name}"], f"r_{name}_ci_low": ci[0], f"r_{name}_ci_high": ci[1]})
        corr.append(row)
    _write_csv(corr, CORRELATION_COLUMNS, out / "correlations.csv")
