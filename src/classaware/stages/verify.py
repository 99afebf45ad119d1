"""Stage ``verify``: every claim of claims.yaml checked against the pipeline's results.

The paper reports point values (over 15 targets, one training per model), so a claim's metric
(``analysis.Estimate``) is judged first as the paper would judge it, by its value against the
bound, and then by its 95% interval, which says whether this run's sample can tell:

* pass: the value and its whole interval are on the claim's side of the bound (inside it, for
  "within");
* pass within noise: the value is on the claim's side, but the interval straddles the bound;
* fail within noise: the value is on the other side, and the interval straddles the bound;
* fail: the value and the whole interval are on the other side;
* not assessed: the claim has no bound at this profile.

* not under the paper's conditions: the claim reads a model that breaks claims.yaml's
  ``conditions`` (stage ``conditions``); its value and interval are still reported, with the
  models that broke the rule, but this run says nothing about the paper's claim.

A metric without an interval is judged on its value (pass or fail). Beside the paper's
definition, every metric carries its diagnostic readings, each with its own interval
(``analysis.section3_readings``: Spearman's rho and r without the early version for the
correlations, the ratios over the images each target got right before the attack, Dist over the
images that flip); they explain a verdict and never replace it. A pass that does not hold on one
of them is kept as a pass with a caveat naming it. A failed claim is a result and the stage still
succeeds; a claim naming an unknown metric, or whose metric cannot be computed where it is
assessed, is an error.

A claim's text in claims.yaml states the paper's claim in this run's terms: it names the run's
models, versions and eps by placeholders (``{early}``, ``{resnet_source}``, ``{eps}``, ... : see
:func:`run_facts`) that verify fills from the run's records, while the claim's ``paper`` field
keeps the paper's own numbers and words. Each bound is written as the test it is (">= 0.98",
"within 0.1 of 0.2"), values with their unit where they have one (:data:`UNITS`), intervals as
[low, high]. ``metrics_dir`` gets one JSON per claim for `dvc metrics show`, named so that plain
string order is the paper's claim order (S03.01, S03.02, ..., S03.10, S04.01: ``text.padded``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..analysis import Estimate, section3_readings, section4_metrics
from ..claims import load_claims
from ..config import Options, help_field
from ..files import save_json, save_text
from ..schema import (
    OUTSIDE,
    ClaimResults,
    ClaimVerdict,
    DistanceResults,
    Table1,
    Table2,
    TransferResults,
    Verdict,
    ZooConditions,
    eps_key,
)
from ..text import interval, markdown_table, number, padded, percent

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    profile: str = help_field(help="profile whose bounds apply (profiles/NAME.yaml)")
    claims: Path = help_field(Path("claims.yaml"), "the claims file")
    figure_eps: float = help_field(1.0, "Fig. 3's eps, at which the correlations are taken", gt=0)
    transfer: Path = help_field(Path("results/transfer.json"), "`transfer` results")
    distance: Path = help_field(Path("results/distance.json"), "`distance` results")
    table1: Path = help_field(Path("results/table1.json"), "`tables` Table 1")
    table2: Path = help_field(Path("results/table2.json"), "`tables` Table 2")
    conditions: Path = help_field(Path("results/conditions.json"), "`conditions`: the zoo under the paper's conditions")
    out: Path = help_field(Path("results/claims.json"), "every claim's check, as JSON", output="file")
    table: Path = help_field(Path("results/claims.md"), "Markdown table of the verdicts", output="file")
    metrics_dir: Path = help_field(
        Path("metrics/claims"), "one small JSON per claim for `dvc metrics show` (S03.01.json, ...)", output="dir"
    )


def _side(claim: dict, low: float, high: float, bound: float) -> bool | None:
    """True when all of [low, high] satisfies the claim, False when none of it does, else None."""
    if claim["test"] == ">=":
        return True if low >= bound else False if high < bound else None
    if claim["test"] == "<=":
        return True if high <= bound else False if low > bound else None
    a, b = claim["target"] - bound, claim["target"] + bound
    return True if a <= low and high <= b else False if high < a or low > b else None


def verdict(claim: dict, estimate: Estimate, bound: float | None, outside: tuple[str, ...] = ()) -> Verdict:
    """The claim's verdict: its value's side of the bound, and whether the interval (where the
    metric has one) is wholly on that side too; "not under the paper's conditions" when it
    reads a model ``outside`` them (see the module docstring)."""
    if bound is None:
        return "not assessed"
    if outside:
        return OUTSIDE
    passes = _side(claim, estimate.value, estimate.value, bound)
    low = estimate.value if estimate.ci_low is None else estimate.ci_low
    high = estimate.value if estimate.ci_high is None else estimate.ci_high
    if not low <= estimate.value <= high:
        raise ValueError(
            f"claim {claim.get('id', '?')}: value {estimate.value} lies outside its interval [{low}, {high}]"
        )
    decided = _side(claim, low, high, bound) is not None
    if passes:
        return "pass" if decided else "pass within noise"
    return "fail" if decided else "fail within noise"


def check(claim: dict, estimate: Estimate, bound: float | None, outside: tuple[str, ...] = ()) -> ClaimVerdict:
    """The claim judged on its metric's ``estimate`` against ``bound``, with the models it reads
    that break the paper's conditions (``outside``)."""
    result = verdict(claim, estimate, bound, outside)
    caveats = ()
    if result == "pass":
        caveats = tuple(
            f"not on {name} ({number(r.value)})"
            for name, r in estimate.readings.items()
            if r.value is not None and not _side(claim, r.value, r.value, bound)
        )
    return ClaimVerdict(
        value=estimate.value,
        ci_low=estimate.ci_low,
        ci_high=estimate.ci_high,
        readings=estimate.readings,
        notes=estimate.notes,
        bound=bound,
        verdict=result,
        caveats=caveats,
        outside=outside,
    )


# The unit of each metric whose value is not a correlation or a fraction of cases: "l2" (a
# distance), "%" (a rate, shown also as a percentage), "points" (a difference of accuracies).
UNITS = {
    "early_max_dist": "l2",
    "table1_min_both": "%",
    "table2_min_gain": "points",
    "table2_max_abs_deviation": "points",
    "baseline_max_abs_deviation": "points",
}


def with_unit(x: float | None, unit: str | None) -> str:
    """A metric's value (or bound) with its unit: 0.603 in "points" -> "0.603 (a 60.3-point
    difference)", which no reader takes for an accuracy of 60.3%."""
    if x is None or unit is None:
        return number(x)
    if unit == "l2":
        return f"{number(x)} (l2)"
    return f"{number(x)} ({percent(x)}%)" if unit == "%" else f"{number(x)} (a {percent(x)}-point difference)"


def shown_bound(claim: dict, bound: float | None, units: bool = True) -> str:
    """The bound as the test it is: ">= 0.98", "<= 0.5 (l2)", "within 0.1 of 0.2"; without
    ``units``, the numbers alone (for `dvc metrics show`'s columns)."""
    if bound is None:
        return "not assessed at this scale"
    unit = UNITS.get(claim["metric"]) if units else None
    if claim["test"] == "within":
        return f"within {with_unit(bound, unit)} of {with_unit(claim['target'], unit)}"
    return f"{claim['test']} {with_unit(bound, unit)}"


def metric_file(metrics_dir: Path, claim_id: str) -> Path:
    """Where a claim's headline is for `dvc metrics show`, which lists files in string order:
    S3.1 -> S03.01.json, so the claims come in the paper's order (``text.padded``)."""
    return Path(metrics_dir) / f"{padded(claim_id)}.json"


def headline(claim: dict, v: ClaimVerdict) -> dict:
    """What `dvc metrics show` shows of a claim: the numbers, the bound as the test it is (its
    numbers alone, so that a row fits 100 columns), the verdict."""
    return {"value": v.value, "ci_low": v.ci_low, "ci_high": v.ci_high, "bound": shown_bound(claim, v.bound, units=False),
            "verdict": v.verdict}  # fmt: skip


def _ours(claim: dict, c: ClaimVerdict) -> str:
    ci = "" if c.ci_low is None else f" {interval(c.ci_low, c.ci_high)}"
    return with_unit(c.value, UNITS.get(claim["metric"])) + ci


def diagnostics(c: ClaimVerdict) -> str:
    """The readings beside the paper's value, each with its interval, then the notes."""
    shown = [f"{name}: {number(r.value)}" + ("" if r.ci_low is None else f" {interval(r.ci_low, r.ci_high)}")
             for name, r in c.readings.items()]  # fmt: skip
    shown += [f"{name}: {number(v)}" for name, v in c.notes.items()]
    return "; ".join(shown) or "-"


def result_text(c: ClaimVerdict) -> str:
    """The verdict with its caveats, and the models that broke the paper's conditions."""
    text = c.verdict + "".join(f"; {caveat}" for caveat in c.caveats)
    return text + (f" ({', '.join(c.outside)} outside them)" if c.outside else "")


def _names(items) -> str:
    """Distinct items in their first order, "a", "a and b", "a, b and c"; "none" when there are none."""
    names = list(dict.fromkeys(items))
    return "none" if not names else names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def run_facts(transfer: TransferResults, table1: Table1, table2: Table2, figure_eps: float) -> dict[str, str]:
    """What a claim's text may name, as this run made it (its records, not the paper's protocol):

    ``eps`` Fig. 3's eps; ``eps_min``, ``eps_max`` the ends of Fig. 5's sweep; ``cases`` the
    number of F1 x attack cases; ``early`` the early versions' relation ("v:12"); ``resnet_source`` the sources of the ResNet family; ``construct_eps``
    Table 1's eps; ``table2_cells`` Table 2's number of accuracies and ``table2_archs`` its
    architectures; ``baseline_archs`` those trained on the original set.
    """
    sources = list(transfer.sources)
    sweep = sorted({e for s in sources for a in transfer.attack_names(s) for e in transfer.eps_values(s, a)})
    return {
        "eps": eps_key(figure_eps),
        "eps_min": eps_key(sweep[0]) if sweep else "n/a",
        "eps_max": eps_key(sweep[-1]) if sweep else "n/a",
        "cases": str(sum(len(transfer.attack_names(s)) for s in sources)),
        "early": _names(transfer.info(s, t).relation for s in sources for t in transfer.targets_by_relation(s, "v:")),
        "resnet_source": _names(s for s in sources if transfer.info(s, s).family == "resnet"),
        "construct_eps": _names(eps_key(r.eps) for r in table1.rows),
        "table2_cells": str(len(table2.rows)),
        "table2_archs": _names(r.arch for r in table2.rows),
        "baseline_archs": _names(b.arch for b in table2.baseline),
    }


def claim_text(claim: dict, facts: dict[str, str]) -> str:
    """The claim's text with its placeholders filled from ``facts`` (:func:`run_facts`); ValueError
    naming the claim and the known names for a placeholder the run does not provide."""
    try:
        return claim["claim"].format_map(facts)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"claim {claim['id']}: its text {claim['claim']!r} has a placeholder the run does not provide ({exc}); "
            f"known: {', '.join('{' + k + '}' for k in facts)}"
        ) from None


def claim_metrics(cfg: Config, transfer: TransferResults, table1: Table1, table2: Table2) -> dict[str, Estimate]:
    """Every metric a claim can name, with its readings, from the results below (Fig. 3's eps
    checked to be attacked)."""
    transfer.check_eps(cfg.figure_eps)
    return {
        **section3_readings(transfer, DistanceResults.load(cfg.distance), cfg.figure_eps),
        **section4_metrics(table1, table2),
    }


def models_read(transfer: TransferResults, table1: Table1) -> dict[str, set[str]]:
    """The zoo references each kind of claim reads (claims.yaml's ``reads``): ``comparison``, every
    source and its targets (early versions included); ``pairs``, section 4's attacked models."""
    return {
        "comparison": {m for s in transfer.sources for m in (s, *transfer.targets(s))},
        "pairs": {m for row in table1.rows for m in row.pair.split("+")},
    }


def checks(cfg: Config, transfer: TransferResults, table1: Table1, table2: Table2) -> dict[str, ClaimVerdict]:
    """Every claim of ``cfg.claims`` checked (see the module docstring), by id."""
    claims = load_claims(cfg.claims, cfg.profile)
    metrics = claim_metrics(cfg, transfer, table1, table2)
    conditions, reads = ZooConditions.load(cfg.conditions), models_read(transfer, table1)
    checked = {}
    for c in claims:
        if c["metric"] not in metrics:
            raise ValueError(f"claim {c['id']}: unknown metric {c['metric']!r}; known: {', '.join(sorted(metrics))}")
        estimate, bound = metrics[c["metric"]], c["bound"][cfg.profile]
        if estimate.value is None and bound is not None:
            raise ValueError(f"claim {c['id']}: metric {c['metric']} could not be computed from the results")
        checked[c["id"]] = check(c, estimate, bound, conditions.outside(reads[c["reads"]]))
    return checked


def run(cfg: Config) -> None:
    claims = load_claims(cfg.claims, cfg.profile)
    transfer, table1, table2 = TransferResults.load(cfg.transfer), Table1.load(cfg.table1), Table2.load(cfg.table2)
    facts = run_facts(transfer, table1, table2, cfg.figure_eps)
    texts = {c["id"]: claim_text(c, facts) for c in claims}  # every placeholder checked before any output
    checked = checks(cfg, transfer, table1, table2)
    rows = [[c["id"], texts[c["id"]], c["figure"], c["paper"], _ours(c, checked[c["id"]]),
             shown_bound(c, checked[c["id"]].bound), result_text(checked[c["id"]]), diagnostics(checked[c["id"]])]
            for c in claims]  # fmt: skip
    results = ClaimResults(profile=cfg.profile, dataset=transfer.dataset, claims=checked)
    log.info("claims at profile %s: %s", cfg.profile, results.summary())
    results.save(cfg.out)
    for c in claims:
        save_json(headline(c, checked[c["id"]]), metric_file(cfg.metrics_dir, c["id"]))
    header = [
        f"Claims checked at profile `{cfg.profile}` on {transfer.dataset}: {results.summary()}. Each value is given with "
        "its 95% interval where it has one. The verdict compares the value with the paper's bound, as the paper "
        "does; 'within noise' says that the interval straddles the bound, so this sample cannot tell the side; "
        "'not under the paper's conditions' says that the claim reads a model that breaks them (claims.yaml). "
        "The diagnostics beside each claim are other readings of the same quantity, each with its interval: they "
        "explain a verdict, never replace it. The claims name this run's models, versions and eps; the paper's own "
        "numbers are in column 'paper'.",
        "",
    ]
    table = markdown_table(["id", "claim", "where", "paper", "ours [95% CI]", "bound", "result", "diagnostics"], rows)
    save_text("\n".join(header + table) + "\n", cfg.table)


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> dict:
    return {}  # arithmetic on stored results: no network


def audit_claims(cfg: Config, ctx: AuditContext) -> int:
    """Every claim's check and headline file, recomputed from the results below, are the stored ones."""
    checked = checks(cfg, TransferResults.load(cfg.transfer), Table1.load(cfg.table1), Table2.load(cfg.table2))
    stored = ClaimResults.load(cfg.out)
    n = 0
    for c in load_claims(cfg.claims, cfg.profile):
        ours = checked[c["id"]]
        ctx.same_json(metric_file(cfg.metrics_dir, c["id"]), headline(c, ours))
        if ours != stored.claims[c["id"]]:
            theirs = stored.claims[c["id"]]
            raise ctx.Mismatch(
                f"{cfg.out}: claim {c['id']} recomputes to {ours.value} ({ours.verdict}), "
                f"stored {theirs.value} ({theirs.verdict})"
            )
        n += 1
    return n


AUDIT = {"derived": audit_claims}
