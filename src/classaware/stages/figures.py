"""Stage ``figures``: Figs. 3, 4 and 5 of the paper as PNG, each beside the numbers it shows.

Writes, in ``out_dir``: fig3.png / fig3.csv (class-aware transferability at ``figure_eps``,
targets by Dist descending), fig4.png / fig4.json (decision planes and transfer regions),
fig5.png / fig5.csv (the ratios against eps, with the Wilson intervals of the same and
different ratios, and each target's group, the colour of its line) and correlations.csv (section 3.3's correlations at ``figure_eps``). Every
number comes from :mod:`classaware.analysis`, or, for Fig. 5's intervals, from the transfer
results themselves. dvc.yaml declares fig3.csv and fig5.csv as DVC plots too.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from .. import plots
from ..analysis import Fig3Row, correlations, eps_curves, fig3_rows
from ..boundary import REGION_NAMES, transfer_regions
from ..codec import encode
from ..config import Options, help_field
from ..files import save_json, save_text
from ..schema import RATIOS, DecisionPlanes, DistanceResults, TransferResults

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import Upstream


FIG3_COLUMNS = ["source", "attack", "eps", *(f.name for f in fields(Fig3Row))]
FIG5_COLUMNS = ["source", "attack", "target", "relation", "group", "eps", *RATIOS,
                *(f"{kind}_ci_{end}" for kind in ("same", "different") for end in ("low", "high"))]  # fmt: skip
CORRELATIONS = ("fooled_same", "dist_same", "dist_fooled")
# each case's correlations as the paper defines them, then their diagnostic readings (analysis):
# Spearman's rho, r without the early version, r over the ratios of the images each target got
# right, r with Dist over the images that flip (the Dist correlations only)
READINGS = ("spearman", "without_early", "target_right", "flipped")
CORRELATION_COLUMNS = [
    "source",
    "attack",
    "eps",
    "n_targets",
    *(f"r_{c}{s}" for c in CORRELATIONS for s in ("", "_ci_low", "_ci_high")),
    *(f"{c}_{r}{s}" for c in CORRELATIONS for r in READINGS for s in ("", "_ci_low", "_ci_high")
      if r != "flipped" or c.startswith("dist")),
]  # fmt: skip


@dataclass(frozen=True)
class Config(Options):
    transfer: Path = help_field(help="`transfer` results (JSON)")
    distance: Path = help_field(help="`distance` results (JSON)")
    plane: Path = help_field(help="`plane` decision planes")
    out_dir: Path = help_field(help="folder for the PNGs and their data", output="dir")
    figure_eps: float = help_field(1.0, "Fig. 3's eps, one of the attacked eps (paper: 1.0)", gt=0)


def fig4_data(plane: DecisionPlanes) -> plots.Fig4Data:
    """Fig. 4's data from the ``plane`` stage's planes, with each F2's transfer regions."""
    return plots.Fig4Data(
        source=plane.source,
        models=list(plane.models),
        classes=list(plane.classes),
        true_label=plane.true_label,
        image_index=plane.index,
        unit=plane.unit,
        all_right=plane.all_right,
        dataset=plane.provenance.dataset,
        coords=plane.coords.tolist(),
        labels=plane.labels.tolist(),
        region_names=list(REGION_NAMES),
        regions={
            m: transfer_regions(plane.labels[0], plane.labels[i], plane.true_label).tolist()
            for i, m in enumerate(plane.models)
            if i > 0
        },
    )


def group(transfer: TransferResults, source: str, target: str) -> str:
    """Fig. 5's group of a target: its relation to the source, an architecture of the source's
    family or of another (:data:`plots.GROUP_COLOURS`)."""
    info = transfer.info(source, target)
    if info.relation.startswith("v:"):
        return "early version"
    if info.relation != "other":
        return info.relation
    same_family = info.family == transfer.info(source, source).family
    return "other architecture, same family" if same_family else "other family"


def fig5_lines(transfer: TransferResults, source: str, attack: str) -> list[plots.Fig5Line]:
    """Fig. 5's lines of one source and attack: ``analysis.eps_curves`` with each point's interval."""
    lines = []
    for target, c in eps_curves(transfer, source, attack).items():
        results = [transfer.result(source, attack, e, target) for e in c.eps]
        lines.append(
            plots.Fig5Line(
                target=target,
                relation=transfer.info(source, target).relation,
                group=group(transfer, source, target),
                eps=c.eps,
                same=c.same,
                different=c.different,
                **{
                    f"{kind}_ci_{end}": [getattr(getattr(r, kind), f"ci_{end}") for r in results]
                    for kind in ("same", "different")
                    for end in ("low", "high")
                },
            )
        )
    return lines


def _write_csv(rows: list[dict], columns: list[str], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    save_text(buf.getvalue(), path)


def run(cfg: Config) -> None:
    transfer, distance, plane = (
        TransferResults.load(cfg.transfer),
        DistanceResults.load(cfg.distance),
        DecisionPlanes.load(cfg.plane),
    )
    eps = cfg.figure_eps
    transfer.check_eps(eps)
    if distance.dataset != transfer.dataset:
        raise ValueError(f"{cfg.transfer} is on {transfer.dataset} but {cfg.distance} on {distance.dataset}")
    out = Path(cfg.out_dir)

    columns = [
        plots.Fig3Column(s, {a: fig3_rows(transfer, distance, s, a, eps) for a in transfer.attack_names(s)})
        for s in transfer.sources
    ]
    plots.fig3(columns, out / "fig3.png", dataset=transfer.dataset, eps=eps)
    _write_csv(
        [
            {"source": c.source, "attack": a, "eps": eps, **asdict(r)}
            for c in columns
            for a, rows in c.attacks.items()
            for r in rows
        ],
        FIG3_COLUMNS,
        out / "fig3.csv",
    )

    fig4 = fig4_data(plane)
    plots.fig4(fig4, out / "fig4.png")
    save_json(encode(fig4), out / "fig4.json")

    panels = [
        plots.Fig5Panel(s, a, fig5_lines(transfer, s, a)) for s in transfer.sources for a in transfer.attack_names(s)
    ]
    plots.fig5(panels, out / "fig5.png", dataset=transfer.dataset)
    rows = []
    for p in panels:
        curves = eps_curves(transfer, p.source, p.attack)  # every ratio, for the CSV
        for line in p.lines:
            c = curves[line.target]
            rows += [
                {"source": p.source, "attack": p.attack, "target": line.target, "relation": line.relation,
                 "group": line.group, "eps": e,
                 **{k: getattr(c, k)[i] for k in RATIOS},
                 **{k: getattr(line, k)[i] for k in FIG5_COLUMNS if "_ci_" in k}}
                for i, e in enumerate(c.eps)
            ]  # fmt: skip
    _write_csv(rows, FIG5_COLUMNS, out / "fig5.csv")

    rows = []
    right = correlations(transfer.over_target_right(), distance, eps)
    flipped = correlations(transfer, distance.over_flipped_images(), eps)
    for c, c_right, c_flipped in zip(correlations(transfer, distance, eps), right, flipped, strict=True):
        row = {"source": c.source, "attack": c.attack, "eps": eps, "n_targets": c.n_targets}
        for name in CORRELATIONS:
            r = getattr(c, name)
            row |= {f"r_{name}": r.r, f"r_{name}_ci_low": r.ci_low, f"r_{name}_ci_high": r.ci_high}
            readings = {
                "spearman": r.spearman,
                "without_early": r.without_early,
                "target_right": getattr(c_right, name).reading(),
                "flipped": getattr(c_flipped, name).reading(),
            }
            for reading, value in readings.items():
                if f"{name}_{reading}" in CORRELATION_COLUMNS:
                    row |= {f"{name}_{reading}": value.value, f"{name}_{reading}_ci_low": value.ci_low,
                            f"{name}_{reading}_ci_high": value.ci_high}  # fmt: skip
        rows.append(row)
    _write_csv(rows, CORRELATION_COLUMNS, out / "correlations.csv")


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> dict:
    return {}  # drawing stored results: no network


AUDIT: dict = {}  # drawn from results the other checks recompute; dvc status pins the files
