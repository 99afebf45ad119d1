"""Stage ``transfer``: class-aware transferability (section 3.1.1) of every adversarial set,
eps and target model, with 95% Wilson intervals, from the ``predict`` tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Options, help_field
from ..metrics import class_aware_transfer
from ..schema import AttackTransfer, PredictionTable, SourceTransfer, TransferResults, eps_key

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream


@dataclass(frozen=True)
class Config(Options):
    predictions: tuple[Path, ...] = help_field(help="prediction tables from `predict`, one per source", nonempty=True)
    out: Path = help_field(help="JSON file of every ratio", output="file")


def source_transfer(table: PredictionTable) -> SourceTransfer:
    """Every ratio of one source (eq. 1): F1's labels are row 0 of each prediction table. Beside
    them, each target's ratios over the images of D'_F1 it classified right before the attack."""
    attacks = {}
    for name, s in table.sets.items():
        by_eps, target_right = {}, {}
        for eps, labels in zip(s.eps, s.labels, strict=True):
            results = class_aware_transfer(table.y, table.clean[0], labels[0], labels[1:], s.target_classes)
            by_eps[eps_key(eps)] = dict(zip(table.targets, results, strict=True))
            target_right[eps_key(eps)] = {}
            for m, target in enumerate(table.targets, start=1):
                right = table.clean[m] == table.y
                targets_of = None if s.target_classes is None else s.target_classes[right]
                target_right[eps_key(eps)][target] = class_aware_transfer(
                    table.y[right], table.clean[0][right], labels[0][right], labels[m][right], targets_of
                )
        attacks[name] = AttackTransfer(s.method, s.objective, by_eps, target_right)
    return SourceTransfer(
        models=table.models,
        info=table.info,
        clean_acc={m: (row == table.y).float().mean().item() for m, row in zip(table.models, table.clean, strict=True)},
        n_images=len(table.y),
        attacks=attacks,
    )


def results(cfg: Config) -> TransferResults:
    """Every ratio of every source of ``cfg.predictions``."""
    tables = [PredictionTable.load(p) for p in cfg.predictions]
    return TransferResults(dataset=tables[0].provenance.dataset, sources={t.source: source_transfer(t) for t in tables})


def run(cfg: Config) -> None:
    results(cfg).save(cfg.out)


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> dict:
    return {}  # counting over stored labels: no network


def audit_ratios(cfg: Config, ctx: AuditContext) -> int:
    """The ratios, recomputed from the prediction tables, are the stored ones."""
    if results(cfg) != TransferResults.load(cfg.out):
        raise ctx.Mismatch(f"{cfg.out}: the ratios recomputed from {', '.join(map(str, cfg.predictions))} differ")
    return 1


AUDIT = {"derived": audit_ratios}
