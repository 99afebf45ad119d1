"""The analysis behind the claims (correlations, named metrics) and the `verify` stage: failed
claims are results, unknown or uncomputable metrics are errors, and the repository's claims
file names a bound for every profile and only metrics the analysis computes."""

from __future__ import annotations

import math

import pytest
import yaml
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st
from test_figures import write_inputs

from classaware import analysis
from classaware.metrics import Proportion
from classaware.results import (
    BaselineRow,
    ClaimResults,
    DistanceResults,
    Table1,
    Table1Rates,
    Table1Row,
    Table2,
    Table2Row,
    TransferResults,
)
from classaware.stages import verify

finite = st.floats(-100, 100, allow_nan=False)


def test_pearson_hand_computed():
    assert analysis.pearson([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    assert analysis.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert analysis.pearson([1, 2], [1, 2]) is None  # too few pairs
    assert analysis.pearson([1, 1, 1], [1, 2, 3]) is None  # constant sample


@given(st.lists(st.tuples(finite, finite), min_size=3, max_size=20), st.floats(0.5, 3), finite)
def test_pearson_is_bounded_symmetric_and_affine_invariant(pairs, scale, shift):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    r = analysis.pearson(a, b)
    if r is None:
        return
    assert -1 <= r <= 1 and r == pytest.approx(analysis.pearson(b, a), abs=1e-9)
    r2 = analysis.pearson(a, [scale * v + shift for v in b])
    if r2 is not None:
        assert r2 == pytest.approx(r, abs=1e-6)


@given(st.floats(-0.99, 0.99), st.integers(4, 200))
def test_fisher_interval_contains_r_and_narrows_with_n(r, n):
    lo, hi = analysis.fisher_interval(r, n)
    assert -1 <= lo <= r <= hi <= 1
    lo2, hi2 = analysis.fisher_interval(r, n + 50)
    assert hi2 - lo2 < hi - lo
    assert analysis.fisher_interval(r, 3) is None and analysis.fisher_interval(None, 10) is None


def test_fisher_interval_hand_computed():
    half = 1.959963984540054 / math.sqrt(10 - 3)
    assert analysis.fisher_interval(0.5, 10) == pytest.approx(
        (math.tanh(math.atanh(0.5) - half), math.tanh(math.atanh(0.5) + half))
    )


def table1(*both: float) -> Table1:
    """A Table 1 whose rows' both-hit rates are ``both`` (of 100 images)."""
    rows = []
    for rate in both:
        hits = Proportion.of(round(100 * rate), 100)
        rows.append(Table1Row("p", None, 1.0, 100, Table1Rates(hits, hits, hits), {}, None))
    return Table1("toy", tuple(rows))


def table2(rows: list[tuple[str, str, float, float | None]], baseline: list[tuple[float, float | None]]) -> Table2:
    """A Table 2 from (pair, labelling, test accuracy, paper %) rows and (accuracy, paper %) baselines."""
    return Table2(
        "toy",
        0.1,
        tuple(Table2Row(p, lab, f"arch{i}", acc, None, "c", ref) for i, (p, lab, acc, ref) in enumerate(rows)),
        tuple(BaselineRow(f"arch{i}", acc, "c", ref) for i, (acc, ref) in enumerate(baseline)),
    )


def test_section4_metrics_hand_computed():
    t2 = table2(
        [("p", "y1", 0.50, 51.3), ("p", "y1", 0.60, 53.9), ("p", "y2", 0.10, 10.2), ("p", "y2", 0.30, 71.0)],
        [(0.86, 88.0), (0.94, 93.0)],
    )
    m = analysis.section4_metrics(table1(0.95, 0.91), t2)
    assert m["table1_min_both"] == 0.91
    assert m["table2_min_best_arch"] == 0.30  # the y2 labelling's best architecture
    assert m["table2_max_abs_deviation"] == pytest.approx(0.41)
    assert m["baseline_max_abs_deviation"] == pytest.approx(0.02)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    paths = write_inputs(folder)
    table1(0.93).save(folder / "table1.json")
    table2([("p", "y1", 0.4, 51.3)], [(0.5, 88.0)]).save(folder / "table2.json")
    return {**paths, "table1": folder / "table1.json", "table2": folder / "table2.json"}


def claim(metric: str, test: str, bound, **extra) -> dict:
    return {
        "id": metric,
        "figure": "Fig. 3",
        "claim": metric,
        "metric": metric,
        "paper": "x",
        "test": test,
        "bound": {"smoke": bound},
        **extra,
    }


def run_verify(tmp_path, inputs, claims) -> dict:
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump(claims))
    verify.run(
        verify.Config(
            profile="smoke",
            claims=tmp_path / "claims.yaml",
            transfer=inputs["transfer"],
            distance=inputs["distance"],
            table1=inputs["table1"],
            table2=inputs["table2"],
            out=tmp_path / "claims.json",
            table=tmp_path / "claims.md",
        )
    )
    return ClaimResults.load(tmp_path / "claims.json")


def test_failed_claims_are_results_and_unassessed_ones_are_marked(tmp_path, inputs):
    out = run_verify(
        tmp_path,
        inputs,
        [
            claim("table1_min_both", ">=", 0.9),
            claim("table1_min_both", "<=", 0.5) | {"id": "fails"},
            claim("table2_max_abs_deviation", "within", 0.005, target=0.1) | {"id": "within"},
            claim("baseline_max_abs_deviation", "<=", None) | {"id": "skipped"},
        ],
    )
    verdicts = {k: v.verdict for k, v in out.claims.items()}
    assert verdicts == {"table1_min_both": "pass", "fails": "fail", "within": "fail", "skipped": "not assessed"}
    assert (out.passed, out.failed, out.not_assessed) == (1, 2, 1)
    table = (tmp_path / "claims.md").read_text()
    assert "FAIL" in table and "not assessed at this scale" in table


def test_an_unknown_metric_is_an_error(tmp_path, inputs):
    with pytest.raises(ValueError, match="unknown metric"):
        run_verify(tmp_path, inputs, [claim("no_such_metric", ">=", 0.5)])


def test_an_assessed_claim_whose_metric_cannot_be_computed_is_an_error(tmp_path, inputs):
    # no Table 2 row has a paper value (more pairs than the paper's): no deviation to compute
    table2([("p", "y1", 0.4, None)], []).save(tmp_path / "table2.json")
    with pytest.raises(ValueError, match="could not be computed"):
        run_verify(
            tmp_path, {**inputs, "table2": tmp_path / "table2.json"}, [claim("table2_max_abs_deviation", "<=", 0.1)]
        )
    out = run_verify(
        tmp_path, {**inputs, "table2": tmp_path / "table2.json"}, [claim("table2_max_abs_deviation", "<=", None)]
    )
    assert (out.claims["table2_max_abs_deviation"].value, out.claims["table2_max_abs_deviation"].verdict) == (
        None,
        "not assessed",
    )


def test_a_claim_without_a_bound_for_the_profile_is_refused(tmp_path, inputs):
    bad = claim("table1_min_both", ">=", 0.9)
    bad["bound"] = {"paper": 0.9}
    with pytest.raises(ValueError, match="no bound for profile 'smoke'"):
        run_verify(tmp_path, inputs, [bad])


def test_the_repository_claims_cover_every_profile_with_known_metrics(inputs):
    profiles = [p.stem for p in (REPO / "profiles").glob("*.yaml")]
    claims = yaml.safe_load((REPO / "claims.yaml").read_text())
    for name in profiles:
        assert verify.load_claims(REPO / "claims.yaml", name)
    known = set(
        analysis.section3_metrics(
            TransferResults.load(inputs["transfer"]), DistanceResults.load(inputs["distance"]), 1.0
        )
    ) | set(analysis.section4_metrics(Table1.load(inputs["table1"]), Table2.load(inputs["table2"])))
    assert {c["metric"] for c in claims} <= known


def test_section3_metrics_agree_with_the_correlations(inputs):
    transfer, distance = TransferResults.load(inputs["transfer"]), DistanceResults.load(inputs["distance"])
    m = analysis.section3_metrics(transfer, distance, 1.0)
    corr = analysis.correlations(transfer, distance, 1.0)
    assert m["min_corr_fooled_same"] == min(c.fooled_same.r for c in corr)
    assert m["max_corr_dist_same"] == max(c.dist_same.r for c in corr)
    assert 0 <= m["frac_same_rises_with_eps"] <= 1 and 0 <= m["frac_same_majority_untargeted"] <= 1
