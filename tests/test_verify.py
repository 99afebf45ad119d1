"""The analysis behind the claims (correlations, named metrics) and the `verify` stage: failed
claims are results, unknown or uncomputable metrics are errors, and the repository's claims
file names a bound for every profile and only metrics the analysis computes."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from helpers_repo import REPO
from helpers_results import claims_file, table1, table2
from hypothesis import assume, given
from hypothesis import strategies as st
from test_figures import write_inputs

from classaware import analysis
from classaware.schema import (
    ClaimResults,
    DistanceResults,
    Table1,
    Table2,
    TransferResults,
)
from classaware.stages import verify
from classaware.text import unpadded

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
    spread = max(b) - min(b)
    assume(spread > 1e-6 * (abs(shift) + max(map(abs, b))))  # else the shift rounds the spread away
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


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    paths = write_inputs(folder)
    table1([0.93]).save(folder / "table1.json")
    table2([("p", "y1", "a", 0.4)], papers=[51.3]).save(folder / "table2.json")
    return {**paths, "table1": folder / "table1.json", "table2": folder / "table2.json"}


def claim(metric: str, test: str, bound, **extra) -> dict:
    return {"id": metric, "figure": "Fig. 3", "claim": metric, "metric": metric, "paper": "x", "test": test,
            "bound": {"smoke": bound}, "why": "a test", **extra}  # fmt: skip


def run_verify(tmp_path, inputs, claims) -> ClaimResults:
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump(claims_file(claims)))
    verify.run(
        verify.Config(
            profile="smoke",
            claims=tmp_path / "claims.yaml",
            transfer=inputs["transfer"],
            distance=inputs["distance"],
            table1=inputs["table1"],
            table2=inputs["table2"],
            conditions=inputs["conditions"],
            out=tmp_path / "claims.json",
            table=tmp_path / "claims.md",
            metrics_dir=tmp_path / "metrics",
        )
    )
    return ClaimResults.load(tmp_path / "claims.json")


def test_failed_claims_are_results_and_unassessed_ones_are_marked(tmp_path, inputs):
    out = run_verify(
        tmp_path,
        inputs,
        [
            claim("table1_min_both", ">=", 0.85),
            claim("table1_min_both", "<=", 0.5) | {"id": "fails"},
            claim("table1_min_both", ">=", 0.93) | {"id": "straddles"},
            claim("table2_max_abs_deviation", "within", 0.005, target=0.1) | {"id": "within"},
            claim("baseline_max_abs_deviation", "<=", None) | {"id": "skipped"},
        ],
    )
    verdicts = {k: v.verdict for k, v in out.claims.items()}
    assert verdicts == {"table1_min_both": "pass", "fails": "fail", "straddles": "pass within noise", "within": "fail",
                        "skipped": "not assessed"}  # fmt: skip
    assert [out.count(v) for v in ("pass", "pass within noise", "fail within noise", "fail", "not assessed")] == [
        1, 1, 0, 2, 1]  # fmt: skip
    assert out.summary() == (
        "1 pass, 1 pass within noise, 0 fail within noise, 2 fail, 0 not under the paper's conditions, "
        "1 not assessed (of 5)"
    )
    table = (tmp_path / "claims.md").read_text()
    assert "| fail |" in table and "| pass within noise |" in table and "not assessed at this scale" in table
    assert "0.930 (93.0%) [0.912, 0.944]" in table  # the value, its unit and its Wilson interval over 1,000 images
    assert "| >= 0.930 (93.0%) | pass within noise |" in table  # the bound as the test it is
    assert "| within 0.005 (a 0.5-point difference) of 0.100 (a 10.0-point difference) | fail |" in table
    headline = json.loads((tmp_path / "metrics" / "straddles.json").read_text())
    assert headline == {"value": 0.93, "ci_low": out.claims["straddles"].ci_low, "ci_high": out.claims["straddles"].ci_high,
                        "bound": ">= 0.930", "verdict": "pass within noise"}  # fmt: skip


def test_dvc_metrics_show_lists_the_claims_in_the_papers_order(tmp_path, inputs):
    """`dvc metrics show` lists metric files in string order: the files are named so that it is the claims' order."""
    ids = ["S3.1", "S3.2", "S3.5a", "S3.5b", "S3.9", "S3.10", "S4.1"]
    run_verify(tmp_path, inputs, [claim("table1_min_both", ">=", 0.5) | {"id": i} for i in ids])
    names = sorted(p.name for p in (tmp_path / "metrics").iterdir())
    assert names == [
        "S03.01.json",
        "S03.02.json",
        "S03.05a.json",
        "S03.05b.json",
        "S03.09.json",
        "S03.10.json",
        "S04.01.json",
    ]
    assert [unpadded(n.removesuffix(".json")) for n in names] == ids


def test_a_claims_text_names_the_runs_models_versions_and_eps(inputs):
    transfer, t1, t2 = (
        TransferResults.load(inputs["transfer"]),
        Table1.load(inputs["table1"]),
        Table2.load(inputs["table2"]),
    )
    facts = verify.run_facts(transfer, t1, t2, 1.0)
    assert facts == {"eps": "1", "eps_min": "0.5", "eps_max": "2", "cases": "8",
                     "early": "v:3", "resnet_source": "res_a", "construct_eps": "1", "table2_cells": "1",
                     "table2_archs": "a", "baseline_archs": "none"}  # fmt: skip
    texts = {c["id"]: verify.claim_text(c, facts) for c in yaml.safe_load((REPO / "claims.yaml").read_text())["claims"]}
    assert texts["S3.5a"] == "The early version of F1 (v:3) is the closest F2 by Dist"
    assert texts["S3.8"].startswith("When F1 is the ResNet source (res_a; the paper's ResNet-18)")
    assert "in all 8 F1 x attack cases at eps 1" in texts["S3.1"] and "from eps 0.5 to eps 2" in texts["S3.10"]
    # the paper's protocol is in each claim's `paper` field, not in its text
    assert not any("{" in t or "v:80" in t for t in texts.values())


def test_a_placeholder_the_run_does_not_provide_is_an_error_before_any_output(tmp_path, inputs):
    with pytest.raises(ValueError) as err:
        run_verify(tmp_path, inputs, [claim("table1_min_both", ">=", 0.5) | {"claim": "F1 is {resnet18}"}])
    assert str(err.value).startswith(
        "claim table1_min_both: its text 'F1 is {resnet18}' has a placeholder the run does not provide ('resnet18'); "
        "known: {eps}, {eps_min}, {eps_max}, {cases}, {early}, {resnet_source}, {construct_eps}"
    )
    assert not (tmp_path / "claims.json").exists()


def test_an_unknown_metric_is_an_error(tmp_path, inputs):
    with pytest.raises(ValueError, match="unknown metric"):
        run_verify(tmp_path, inputs, [claim("no_such_metric", ">=", 0.5)])


def test_an_assessed_claim_whose_metric_cannot_be_computed_is_an_error(tmp_path, inputs):
    # no Table 2 row has a paper value (more pairs than the paper's): no deviation to compute
    table2([("p", "y1", "a", 0.4)]).save(tmp_path / "table2.json")
    changed = {**inputs, "table2": tmp_path / "table2.json"}
    with pytest.raises(ValueError, match="could not be computed"):
        run_verify(tmp_path, changed, [claim("table2_max_abs_deviation", "<=", 0.1)])
    out = run_verify(tmp_path, changed, [claim("table2_max_abs_deviation", "<=", None)])
    assert (out.claims["table2_max_abs_deviation"].value, out.claims["table2_max_abs_deviation"].verdict) == (
        None,
        "not assessed",
    )


def test_a_claim_without_a_bound_for_the_profile_or_a_reason_is_refused(tmp_path, inputs):
    bad = claim("table1_min_both", ">=", 0.9)
    bad["bound"] = {"paper": 0.9}
    with pytest.raises(ValueError, match="no bound for profile 'smoke'"):
        run_verify(tmp_path, inputs, [bad])
    unexplained = claim("table1_min_both", ">=", 0.9)
    del unexplained["why"]
    with pytest.raises(ValueError, match="lacks \\['why'\\]"):
        run_verify(tmp_path, inputs, [unexplained])


def test_the_repository_claims_cover_every_profile_with_known_metrics(inputs):
    profiles = [p.stem for p in (REPO / "profiles").glob("*.yaml")]
    claims = yaml.safe_load((REPO / "claims.yaml").read_text())["claims"]
    for name in profiles:
        assert verify.load_claims(REPO / "claims.yaml", name)
    transfer, distance = TransferResults.load(inputs["transfer"]), DistanceResults.load(inputs["distance"])
    known = set(analysis.section3_metrics(transfer, distance, 1.0)) | set(
        analysis.section4_metrics(Table1.load(inputs["table1"]), Table2.load(inputs["table2"]))
    )
    assert {c["metric"] for c in claims} <= known


def test_section3_metrics_agree_with_the_correlations(inputs):
    transfer, distance = TransferResults.load(inputs["transfer"]), DistanceResults.load(inputs["distance"])
    m = analysis.section3_metrics(transfer, distance, 1.0)
    corr = analysis.correlations(transfer, distance, 1.0)
    assert m["min_corr_fooled_same"].value == min(c.fooled_same.r for c in corr)
    assert m["max_corr_dist_same"].value == max(c.dist_same.r for c in corr)
    assert 0 <= m["frac_same_rises_with_eps"].value <= 1 and 0 <= m["frac_same_majority_untargeted"].value <= 1


def test_the_dist_reading_over_images_that_flip_leaves_out_a_pair_none_flips(inputs):
    """The diagnostic reading of Dist (images neither model leaves censored) drops res_a's pair
    whose target never flips, where the paper's Dist keeps it, censored."""
    transfer, distance = TransferResults.load(inputs["transfer"]), DistanceResults.load(inputs["distance"])
    paper = {(c.source, c.attack): c.dist_same.n for c in analysis.correlations(transfer, distance, 1.0)}
    flipped = distance.over_flipped_images()
    diagnostic = {(c.source, c.attack): c.dist_same.n for c in analysis.correlations(transfer, flipped, 1.0)}
    assert all(diagnostic[k] == paper[k] - (k[0] == "res_a") for k in paper)
    assert distance.pair("res_a", "vgg_a_wsame").n_censored == distance.n_images
    assert flipped.pair("res_a", "vgg_a_wsame") is None
    assert analysis.section3_metrics(transfer, flipped, 1.0)["max_corr_dist_same"].value is not None
