"""Stage ``conditions``: the paper's conditions (claims.yaml's ``conditions``) checked on the
trained zoo, once it is trained and before anything is read from it.

The paper's zoo is five architectures trained to convergence on the same task, whose accuracies
lie within a few points of each other; a target's clean errors enter its fooled and
different-mistake ratios (eq. 1 does not ask F2 to be right on x), so a zoo with a far weaker
member measures clean accuracy as much as transfer. This stage records, for every zoo member and
every saved early version, its clean test accuracy and how far it lies below the mean of the
zoo's most accurate architecture, and whether that is within the rule's bound. The ``verify``
stage then gives every claim that reads a model outside it the verdict "not under the paper's
conditions", and the report lists the models. A zoo outside the conditions is a result to
report, not an error: the stage succeeds and logs a warning naming them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..analysis import zoo_conditions
from ..checkpoint import Comparison
from ..claims import load_conditions
from ..config import Options, help_field
from ..files import save_json
from ..schema import ZooConditions
from ..text import percent
from ..training import TrainMetrics

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    compare: Comparison  # its sources' early versions are targets too: the rule applies to them
    train_results: Path = help_field(Path("results/train"), "folder of `train`'s results, one JSON per zoo member")
    claims: Path = help_field(Path("claims.yaml"), "the claims file, whose `conditions` give the rule")
    out: Path = help_field(Path("results/conditions.json"), "every model's place under the rule", output="file")
    metrics: Path = help_field(
        Path("metrics/conditions.json"), "whether the zoo holds the rule, for `dvc metrics show`", output="file"
    )


def check(cfg: Config) -> ZooConditions:
    """The rule applied to every training result in ``cfg.train_results``; ValueError when there are none."""
    rule = load_conditions(cfg.claims)
    files = sorted(cfg.train_results.glob("*.json"))
    if not files:
        raise ValueError(f"{cfg.train_results} holds no training results (run the `train` stages first)")
    results = {f.stem: TrainMetrics.load(f) for f in files}
    datasets = {r.dataset for r in results.values()}
    if len(datasets) != 1:
        raise ValueError(f"{cfg.train_results}: the zoo was trained on several datasets: {sorted(datasets)}")
    zoo = {member: (r.arch, r.test_acc, r.n_test) for member, r in results.items()}
    early = tuple(ref for ref in cfg.compare.models if "@" in ref)
    means, best, models = zoo_conditions(zoo, rule.within, early)
    return ZooConditions(
        dataset=datasets.pop(), rule=rule.rule, within=rule.within, arch_means=means, best_arch=best, models=models
    )


def headline(conditions: ZooConditions) -> dict:
    """What `dvc metrics show` shows, in the columns the claims already use (so the plain command
    stays a few columns wide): ``value`` the number of models outside the rule, ``verdict``
    "holds" or "broken", ``bound`` the rule's points."""
    outside = sum(not m.holds for m in conditions.models.values())
    return {
        "value": outside,
        "verdict": "holds" if conditions.holds() else "broken",
        "bound": round(100 * conditions.within, 6),
    }


def run(cfg: Config) -> None:
    conditions = check(cfg)
    conditions.save(cfg.out)
    save_json(headline(conditions), cfg.metrics)
    best = conditions.arch_means[conditions.best_arch]
    outside = {ref: m for ref, m in conditions.models.items() if not m.holds}
    if outside:
        log.warning(
            "%d models lie more than %s points below %s (%s%%): %s; the claims that read them are not judged "
            "under the paper's conditions",
            len(outside),
            percent(conditions.within),
            conditions.best_arch,
            percent(best),
            ", ".join(f"{ref} {percent(m.accuracy)}%" for ref, m in outside.items()),
        )
    else:
        log.info("every model lies within %s points of %s (%s%%)", percent(conditions.within), conditions.best_arch,
                 percent(best))  # fmt: skip


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> dict:
    return {}  # arithmetic on stored accuracies: no network


def audit_conditions(cfg: Config, ctx: AuditContext) -> int:
    """Every model's place under the rule, recomputed from the training results, is the stored one."""
    ours = check(cfg)
    if ours != ZooConditions.load(cfg.out):
        raise ctx.Mismatch(f"{cfg.out}: the conditions recomputed from {cfg.train_results} differ")
    ctx.same_json(cfg.metrics, headline(ours))
    return len(ours.models)


AUDIT = {"derived": audit_conditions}
