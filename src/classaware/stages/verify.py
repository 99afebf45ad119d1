"""Stage ``verify``: every claim of claims.yaml checked against the pipeline's results.

A failed claim is a result, reported with its value and bound, and the stage still succeeds;
a claim naming a metric that does not exist, or whose metric cannot be computed while the
claim is assessed at this profile, is an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..analysis import section3_metrics, section4_metrics
from ..artifacts import save_text
from ..config import Options, help_field
from ..results import ClaimResults, ClaimVerdict, DistanceResults, Table1, Table2, TransferResults
from ..text import markdown_table, number

log = logging.getLogger(__name__)
TESTS = (">=", "<=", "within")


@dataclass(frozen=True)
class Config(Options):
    profile: str = help_field(help="profile whose bounds apply (paper, quick, smoke)")
    claims: Path = help_field(Path("claims.yaml"), "the claims file")
    figure_eps: float = help_field(1.0, "Fig. 3's eps, at which the correlations are taken", gt=0)
    transfer: Path = help_field(Path("results/transfer.json"), "`transfer` results")
    distance: Path = help_field(Path("results/distance.json"), "`distance` results")
    table1: Path = help_field(Path("results/table1.json"), "`tables` Table 1")
    table2: Path = help_field(Path("results/table2.json"), "`tables` Table 2")
    out: Path = help_field(Path("metrics/claims.json"), "JSON verdicts (DVC metrics)", output="file")
    table: Path = help_field(Path("results/claims.md"), "Markdown table of the verdicts", output="file")


def load_claims(path: Path, profile: str) -> list[dict]:
    """The claims, each checked to be complete and to give a bound for ``profile``."""
    claims = yaml.safe_load(Path(path).read_text())
    for c in claims:
        missing = {"id", "figure", "claim", "metric", "paper", "test", "bound"} - set(c)
        if missing:
            raise ValueError(f"{path}: claim {c.get('id', '?')} lacks {sorted(missing)}")
        if c["test"] not in TESTS or (c["test"] == "within" and "target" not in c):
            raise ValueError(
                f"{path}: claim {c['id']} has test {c['test']!r}; use one of {TESTS} ('within' needs a target)"
            )
        if profile not in c["bound"]:
            raise ValueError(f"{path}: claim {c['id']} gives no bound for profile {profile!r}")
    return claims


def verdict(claim: dict, value: float | None, bound: float | None) -> str:
    """ "pass" or "fail", or "not assessed" when the claim has no bound at this profile."""
    if bound is None:
        return "not assessed"
    if claim["test"] == ">=":
        holds = value >= bound
    elif claim["test"] == "<=":
        holds = value <= bound
    else:
        holds = abs(value - claim["target"]) <= bound
    return "pass" if holds else "fail"


def run(cfg: Config) -> None:
    claims = load_claims(cfg.claims, cfg.profile)
    transfer = TransferResults.load(cfg.transfer)
    transfer.check_eps(cfg.figure_eps)
    metrics = {
        **section3_metrics(transfer, DistanceResults.load(cfg.distance), cfg.figure_eps),
        **section4_metrics(Table1.load(cfg.table1), Table2.load(cfg.table2)),
    }
    results, rows = {}, []
    for c in claims:
        if c["metric"] not in metrics:
            raise ValueError(f"claim {c['id']}: unknown metric {c['metric']!r}; known: {', '.join(sorted(metrics))}")
        value, bound = metrics[c["metric"]], c["bound"][cfg.profile]
        if value is None and bound is not None:
            raise ValueError(f"claim {c['id']}: metric {c['metric']} could not be computed from the results")
        results[c["id"]] = ClaimVerdict(
            value=value, bound=bound, verdict=verdict(c, value, bound)
        )  # what and how: claims.yaml
        shown_bound = (
            "not assessed at this scale"
            if bound is None
            else (f"within {bound} of {c['target']}" if c["test"] == "within" else f"{c['test']} {bound}")
        )
        rows.append(
            [
                c["id"],
                c["claim"],
                c["figure"],
                c["paper"],
                number(value),
                shown_bound,
                results[c["id"]].verdict.replace("fail", "FAIL"),
            ]
        )
    verdicts = [r.verdict for r in results.values()]
    summary = ClaimResults(
        profile=cfg.profile,
        dataset=transfer.dataset,
        passed=verdicts.count("pass"),
        failed=verdicts.count("fail"),
        not_assessed=verdicts.count("not assessed"),
        claims=results,
    )
    log.info(
        "claims at profile %s: %d pass, %d fail, %d not assessed",
        cfg.profile,
        summary.passed,
        summary.failed,
        summary.not_assessed,
    )
    summary.save(cfg.out)
    header = [
        f"Claims checked at profile `{cfg.profile}` on {transfer.dataset}: {summary.passed} pass, "
        f"{summary.failed} fail, {summary.not_assessed} not assessed at this scale.",
        "",
    ]
    save_text(
        "\n".join(header + markdown_table(["id", "claim", "where", "paper", "ours", "bound", "result"], rows)) + "\n",
        cfg.table,
    )
