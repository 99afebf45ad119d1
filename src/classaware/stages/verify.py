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

A metric without an interval is judged on its value (pass or fail). A pass that does not hold on one of the
metric's alternative readings (Spearman's rho, r without the early version) is kept as a pass
with a caveat naming it. A failed claim is a result and the stage still succeeds; a claim
naming an unknown metric, or whose metric cannot be computed where it is assessed, is an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..analysis import Estimate, section3_metrics, section4_metrics
from ..artifacts import save_json, save_text
from ..config import Options, help_field
from ..results import ClaimResults, ClaimVerdict, DistanceResults, Table1, Table2, TransferResults, Verdict
from ..text import markdown_table, number

log = logging.getLogger(__name__)
TESTS = (">=", "<=", "within")
FIELDS = {"id", "figure", "claim", "metric", "paper", "test", "bound", "why"}


@dataclass(frozen=True)
class Config(Options):
    profile: str = help_field(help="profile whose bounds apply (paper, quick, smoke)")
    claims: Path = help_field(Path("claims.yaml"), "the claims file")
    figure_eps: float = help_field(1.0, "Fig. 3's eps, at which the correlations are taken", gt=0)
    transfer: Path = help_field(Path("results/transfer.json"), "`transfer` results")
    distance: Path = help_field(Path("results/distance.json"), "`distance` results")
    table1: Path = help_field(Path("results/table1.json"), "`tables` Table 1")
    table2: Path = help_field(Path("results/table2.json"), "`tables` Table 2")
    out: Path = help_field(Path("results/claims.json"), "every claim's check, as JSON", output="file")
    table: Path = help_field(Path("results/claims.md"), "Markdown table of the verdicts", output="file")
    metrics_dir: Path = help_field(
        Path("metrics/claims"), "one small JSON per claim for `dvc metrics show`", output="dir"
    )


def load_claims(path: Path, profile: str) -> list[dict]:
    """The claims, each checked to be complete and to give a bound for ``profile``."""
    claims = yaml.safe_load(Path(path).read_text())
    for c in claims:
        missing = FIELDS - set(c)
        if missing:
            raise ValueError(f"{path}: claim {c.get('id', '?')} lacks {sorted(missing)}")
        if c["test"] not in TESTS or (c["test"] == "within" and "target" not in c):
            raise ValueError(
                f"{path}: claim {c['id']} has test {c['test']!r}; use one of {TESTS} ('within' needs a target)"
            )
        if profile not in c["bound"]:
            raise ValueError(f"{path}: claim {c['id']} gives no bound for profile {profile!r}")
    return claims


def _side(claim: dict, low: float, high: float, bound: float) -> bool | None:
    """True when all of [low, high] satisfies the claim, False when none of it does, else None."""
    if claim["test"] == ">=":
        return True if low >= bound else False if high < bound else None
    if claim["test"] == "<=":
        return True if high <= bound else False if low > bound else None
    a, b = claim["target"] - bound, claim["target"] + bound
    return True if a <= low and high <= b else False if high < a or low > b else None


def verdict(claim: dict, estimate: Estimate, bound: float | None) -> Verdict:
    """The claim's verdict: its value's side of the bound, and whether the interval (where the
    metric has one) is wholly on that side too (see the module docstring)."""
    if bound is None:
        return "not assessed"
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


def check(claim: dict, estimate: Estimate, bound: float | None) -> ClaimVerdict:
    result = verdict(claim, estimate, bound)
    caveats = ()
    if result == "pass":
        caveats = tuple(
            f"not on {name} ({number(value)})"
            for name, value in estimate.alternatives.items()
            if value is not None and not _side(claim, value, value, bound)
        )
    return ClaimVerdict(
        value=estimate.value,
        ci_low=estimate.ci_low,
        ci_high=estimate.ci_high,
        alternatives=estimate.alternatives,
        notes=estimate.notes,
        bound=bound,
        verdict=result,
        caveats=caveats,
    )


def headline(v: ClaimVerdict) -> dict:
    """What `dvc metrics show` shows of a claim."""
    return {"value": v.value, "ci_low": v.ci_low, "ci_high": v.ci_high, "bound": v.bound, "verdict": v.verdict}


def _shown_bound(claim: dict, bound: float | None) -> str:
    if bound is None:
        return "not assessed at this scale"
    return f"within {bound} of {claim['target']}" if claim["test"] == "within" else f"{claim['test']} {bound}"


def _ours(c: ClaimVerdict) -> str:
    interval = "" if c.ci_low is None else f" [{number(c.ci_low)}, {number(c.ci_high)}]"
    beside = "; ".join(f"{name}: {number(v)}" for name, v in {**c.alternatives, **c.notes}.items())
    return number(c.value) + interval + (f" ({beside})" if beside else "")


def claim_metrics(cfg: Config, transfer: TransferResults) -> dict[str, Estimate]:
    """Every metric a claim can name, from the results below (Fig. 3's eps checked to be attacked)."""
    transfer.check_eps(cfg.figure_eps)
    return {
        **section3_metrics(transfer, DistanceResults.load(cfg.distance), cfg.figure_eps),
        **section4_metrics(Table1.load(cfg.table1), Table2.load(cfg.table2)),
    }


def run(cfg: Config) -> None:
    claims = load_claims(cfg.claims, cfg.profile)
    transfer = TransferResults.load(cfg.transfer)
    metrics = claim_metrics(cfg, transfer)
    checked, rows = {}, []
    for c in claims:
        if c["metric"] not in metrics:
            raise ValueError(f"claim {c['id']}: unknown metric {c['metric']!r}; known: {', '.join(sorted(metrics))}")
        estimate, bound = metrics[c["metric"]], c["bound"][cfg.profile]
        if estimate.value is None and bound is not None:
            raise ValueError(f"claim {c['id']}: metric {c['metric']} could not be computed from the results")
        v = checked[c["id"]] = check(c, estimate, bound)
        result = v.verdict.upper() if v.verdict == "fail" else v.verdict
        rows.append([c["id"], c["claim"], c["figure"], c["paper"], _ours(v), _shown_bound(c, bound),
                     result + "".join(f"; {caveat}" for caveat in v.caveats)])  # fmt: skip
    results = ClaimResults(profile=cfg.profile, dataset=transfer.dataset, claims=checked)
    log.info("claims at profile %s: %s", cfg.profile, results.summary())
    results.save(cfg.out)
    for claim_id, v in checked.items():
        save_json(headline(v), cfg.metrics_dir / f"{claim_id}.json")
    header = [
        f"Claims checked at profile `{cfg.profile}` on {transfer.dataset}: {results.summary()}. Each value is given with "
        "its 95% interval where it has one. The verdict compares the value with the paper's bound, as the paper "
        "does; 'within noise' says that the interval straddles the bound, so this sample cannot tell the side.",
        "",
    ]
    table = markdown_table(["id", "claim", "where", "paper", "ours [95% CI]", "bound", "result"], rows)
    save_text("\n".join(header + table) + "\n", cfg.table)


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream) -> dict:
    return {}  # arithmetic on stored results: no network


def audit_claims(cfg: Config, ctx) -> int:
    """Every claim's check and headline file, recomputed from the results below, are the stored ones."""
    metrics = claim_metrics(cfg, TransferResults.load(cfg.transfer))
    stored = ClaimResults.load(cfg.out)
    n = 0
    for c in load_claims(cfg.claims, cfg.profile):
        ours = check(c, metrics[c["metric"]], c["bound"][cfg.profile])
        ctx.same_json(cfg.metrics_dir / f"{c['id']}.json", headline(ours))
        if ours != stored.claims[c["id"]]:
            theirs = stored.claims[c["id"]]
            raise ctx.Mismatch(
                f"{cfg.out}: claim {c['id']} recomputes to {ours.value} ({ours.verdict}), "
                f"stored {theirs.value} ({theirs.verdict})"
            )
        n += 1
    return n


AUDIT = {"derived": audit_claims}
