"""Every claim's metric on hand-built results (tests/helpers_results.py): its value computed by
hand, and a variant where the verdict flips. The background of every other cell differs, so a
metric that reads the wrong attack, objective, ratio, eps or model gets another value."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO
from helpers_results import EPS, SOURCES, Study, baseline, table1, table2, targets

from classaware import analysis
from classaware.metrics import Proportion
from classaware.results import Table2
from classaware.stages import verify

CLAIMS = {c["id"]: c for c in yaml.safe_load((REPO / "claims.yaml").read_text())}


def judge(claim_id: str, estimate: analysis.Estimate, profile: str = "paper") -> str:
    """The verdict the repository's claim gives ``estimate`` at ``profile``."""
    claim = CLAIMS[claim_id]
    return verify.check(claim, estimate, claim["bound"][profile]).verdict


def section3(study: Study, eps: float = 1.0) -> dict[str, analysis.Estimate]:
    return analysis.section3_metrics(study.transfer(), study.distance(), eps)


def test_every_claim_has_a_metric_tested_here():
    computed = set(section3(Study())) | set(analysis.section4_metrics(table1([0.95]), table2([("p", "y1", "a", 0.5)])))
    assert {c["metric"] for c in CLAIMS.values()} <= computed


# ----------------------------------------------------------------------------- S3.4, S3.6
@pytest.mark.parametrize("claim_id, relation, res, vgg", [("S3.4", "_ws", 150, 250), ("S3.6", "@4", 75, 125)])
def test_different_mistakes_of_targeted_fgm_are_pooled_over_the_targets_of_a_relation(claim_id, relation, res, vgg):
    study = Study()
    target = {s: f"{s}{relation}" for s in SOURCES}
    study.counts["res", "fgm-targeted", 1.0, target["res"]] = (res, 500)
    study.counts["vgg", "fgm-targeted", 1.0, target["vgg"]] = (vgg, 400)
    estimate = section3(study)[CLAIMS[claim_id]["metric"]]
    pooled = Proportion.of(res + vgg, 2000)  # different mistakes over both sources' D'_F1
    assert (estimate.value, estimate.ci_low, estimate.ci_high) == ((res + vgg) / 2000, pooled.ci_low, pooled.ci_high)
    assert estimate.value == CLAIMS[claim_id]["target"] and judge(claim_id, estimate) == "pass"
    for s in SOURCES:  # no different mistakes at all: the claim fails
        study.counts[s, "fgm-targeted", 1.0, target[s]] = (0, 500)
    assert section3(study)[CLAIMS[claim_id]["metric"]].value == 0.0
    assert judge(claim_id, section3(study)[CLAIMS[claim_id]["metric"]]) == "fail"


# ----------------------------------------------------------------------------- S3.5
def test_the_early_version_must_be_the_closest_target_of_every_source():
    study = Study()
    study.dist["res", "res@4"], study.dist["vgg", "vgg@4"] = 0.3, 0.4
    m = section3(study)
    assert m["early_version_closest"].value == 1.0 and judge("S3.5a", m["early_version_closest"]) == "pass"
    study.dist["vgg", "vgg_ws"] = 0.35  # closer to the VGG source than its early version
    m = section3(study)
    assert m["early_version_closest"].value == 0.5 and judge("S3.5a", m["early_version_closest"]) == "fail"


def test_the_early_versions_largest_dist_must_be_below_a_half():
    study = Study()
    study.dist["res", "res@4"], study.dist["vgg", "vgg@4"] = 0.3, 0.4
    m = section3(study)["early_max_dist"]
    assert (m.value, m.ci_low, m.ci_high) == (0.4, pytest.approx(0.39), pytest.approx(0.41))  # the VGG pair's interval
    assert judge("S3.5b", m) == "pass"
    study.dist["vgg", "vgg@4"] = 0.55
    assert judge("S3.5b", section3(study)["early_max_dist"]) == "fail"
    study.dist["vgg", "vgg@4"] = 0.495  # 0.495 +- 0.01 straddles 0.5
    assert judge("S3.5b", section3(study)["early_max_dist"]) == "pass within noise"
    study.dist["vgg", "vgg@4"] = 0.505
    assert judge("S3.5b", section3(study)["early_max_dist"]) == "fail within noise"


# ----------------------------------------------------------------------------- S3.7
def _set_untargeted(study: Study, wins: int, ties: int) -> int:
    """Make ``wins`` untargeted cases at eps 1 same > different, ``ties`` equal, the rest
    same < different; targeted cases the opposite of what they would need. Returns the count."""
    cases = [(s, a, t) for s in SOURCES for a in ("fgm-untargeted", "pgd-untargeted") for t in targets(s)]
    for i, key in enumerate(cases):
        study.counts[(key[0], key[1], 1.0, key[2])] = (
            (100, 300) if i < wins else (200, 200) if i < wins + ties else (300, 100)
        )
    for s in SOURCES:
        for t in targets(s):
            study.counts[s, "fgm-targeted", 1.0, t] = study.counts[s, "pgd-targeted", 1.0, t] = (300, 100)
    return len(cases)


def test_same_mistakes_outnumber_different_ones_in_most_untargeted_cases():
    study = Study()
    n = _set_untargeted(study, wins=18, ties=1)
    m = section3(study)["frac_same_majority_untargeted"]
    assert n == 24 and m.value == 18 / 24 and m.notes == {"ties (same = different)": 1 / 24}
    assert judge("S3.7", m) == "pass"  # 0.75
    _set_untargeted(study, wins=17, ties=2)  # a tie is not a majority
    assert judge("S3.7", section3(study)["frac_same_majority_untargeted"]) == "fail"


# ----------------------------------------------------------------------------- S3.8
def test_the_resnet_family_must_be_closer_to_the_resnet_source_than_every_other_model():
    study = Study()
    for j, t in enumerate(targets("res")):  # res@4, res_ws, res_wd, then the VGG family
        study.dist["res", t] = 0.3 + 0.1 * j if t.startswith("res") else 2.0 + j
    for t in targets("vgg"):  # the VGG source's own family is not closest: not the claim
        study.dist["vgg", t] = 3.0 if t.startswith("vgg") else 1.0
    m = section3(study)["resnet_family_closest"]
    assert m.value == 1.0 and judge("S3.8", m) == "pass"
    study.dist["res", "res_wd"], study.dist["res", "vgg"] = 2.5, 2.4  # the w:diff ResNet beyond the nearest VGG
    assert section3(study)["resnet_family_closest"].value == 0.0
    assert judge("S3.8", section3(study)["resnet_family_closest"]) == "fail"


# ----------------------------------------------------------------------------- S3.9, S3.10
def _curves() -> list[tuple[str, str, str]]:
    return [(s, a, t) for s in SOURCES for a in ("fgm-untargeted", "fgm-targeted", "pgd-untargeted", "pgd-targeted")
            for t in targets(s)]  # fmt: skip


def test_same_mistakes_rise_with_eps_in_nine_curves_of_ten():
    study = Study()
    curves = _curves()
    for s, a, t in curves[:4]:  # 4 of 48 curves fall from the smallest to the largest eps
        study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (50, 500), (50, 400)
    m = section3(study)["frac_same_rises_with_eps"]
    assert m.value == 44 / 48 and judge("S3.9", m) == "pass"
    s, a, t = curves[4]
    study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (50, 500), (50, 500)  # flat: not a rise
    assert section3(study)["frac_same_rises_with_eps"].value == 43 / 48
    assert judge("S3.9", section3(study)["frac_same_rises_with_eps"]) == "fail"


def test_different_mistakes_fall_by_at_most_five_points_in_nine_curves_of_ten():
    study = Study()
    curves = _curves()
    for s, a, t in curves[:4]:  # falls by 0.06: counted as falling
        study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (160, 400), (100, 500)
    for s, a, t in curves[4:10]:  # falls by 0.05: still "almost constant"
        study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (150, 400), (100, 500)
    m = section3(study)["frac_different_holds_with_eps"]
    assert m.value == 44 / 48 and judge("S3.10", m) == "pass"
    s, a, t = curves[4]
    study.counts[s, a, EPS[0], t] = (151, 400)
    assert judge("S3.10", section3(study)["frac_different_holds_with_eps"]) == "fail"


# ----------------------------------------------------------------------------- S3.1-S3.3
def _line(study: Study, fooled: list[float], same: list[float], dist: list[float]) -> None:
    """Every case at eps 1: target j of each source gets these fooled and same ratios and Dist."""
    for s in SOURCES:
        for j, t in enumerate(targets(s)):
            study.dist[s, t] = dist[j]
            for a in ("fgm-untargeted", "fgm-targeted", "pgd-untargeted", "pgd-targeted"):
                study.counts[s, a, 1.0, t] = (round(1000 * (fooled[j] - same[j])), round(1000 * same[j]))


def test_correlations_are_pearsons_r_of_the_worst_case_with_spearman_and_without_the_early_version():
    study = Study()
    fooled = [0.9, 0.5, 0.45, 0.40, 0.35, 0.30]
    same = [0.8, 0.35, 0.30, 0.28, 0.22, 0.20]
    dist = [0.3, 1.0, 1.1, 1.2, 1.3, 1.4]
    _line(study, fooled, same, dist)
    m = section3(study)
    assert m["min_corr_fooled_same"].value == pytest.approx(analysis.pearson(fooled, same))
    assert m["max_corr_dist_same"].value == pytest.approx(analysis.pearson(dist, same))
    assert m["max_corr_dist_fooled"].value == pytest.approx(analysis.pearson(dist, fooled))
    without = m["min_corr_fooled_same"].alternatives["r without the early version"]
    assert without == pytest.approx(analysis.pearson(fooled[1:], same[1:]))
    assert m["min_corr_fooled_same"].alternatives["Spearman's rho"] == pytest.approx(1.0)  # both fall monotonically
    lo, hi = analysis.fisher_interval(m["min_corr_fooled_same"].value, 6)
    assert (m["min_corr_fooled_same"].ci_low, m["min_corr_fooled_same"].ci_high) == (
        pytest.approx(lo),
        pytest.approx(hi),
    )


def test_a_correlation_carried_by_the_early_version_alone_is_flagged():
    """Five targets without any relation between Dist and same, and one far point: Pearson's r
    is strongly negative only because of the early version."""
    study = Study()
    _line(study, [0.95, 0.5, 0.5, 0.5, 0.5, 0.5], [0.90, 0.30, 0.32, 0.28, 0.31, 0.29], [0.1, 2.0, 2.1, 2.2, 2.3, 2.4])
    m = section3(study)["max_corr_dist_same"]
    claim = dict(CLAIMS["S3.2"], bound={"paper": -0.5})  # a bound the worst case passes, interval included
    v = verify.check(claim, analysis.Estimate(m.value, alternatives=m.alternatives), -0.5)
    assert v.verdict == "pass" and any("r without the early version" in c for c in v.caveats)


def test_correlations_use_every_case_and_the_worst_one_decides():
    study = Study()
    _line(study, [0.9, 0.7, 0.6, 0.5, 0.4, 0.3], [0.85, 0.66, 0.55, 0.46, 0.37, 0.28], [0.3, 0.6, 0.9, 1.2, 1.5, 1.8])
    for j, t in enumerate(targets("vgg")):  # one case breaks the pattern: its same ratio runs the other way
        study.counts["vgg", "pgd-targeted", 1.0, t] = (100 + 100 * j, 400 - 60 * j)
    m = section3(study)["min_corr_fooled_same"]
    worst = min(c.fooled_same.r for c in analysis.correlations(study.transfer(), study.distance(), 1.0))
    assert m.value == worst and worst < 0.98 and judge("S3.1", m) == "fail"


# ----------------------------------------------------------------------------- section 4
def test_table1_claim_is_the_worst_pairs_both_hit_rate_with_its_interval_and_the_probes():
    m = analysis.section4_metrics(
        table1([0.97, 0.93, 0.99], {"0.1": [0.02, 0.01, 0.03]}), table2([("p", "y1", "a", 0.5)])
    )
    both = m["table1_min_both"]
    p = Proportion.of(930, 1000)
    assert (both.value, both.ci_low, both.ci_high) == (0.93, p.ci_low, p.ci_high)
    assert both.notes == {"at eps 0.1 (probe)": 0.01}
    assert judge("S4.1", both) == "pass"  # [0.913, 0.944] above 0.9
    assert (
        judge("S4.1", analysis.section4_metrics(table1([0.97, 0.85]), Table2("x", 0.1, (), ()))["table1_min_both"])
        == "fail"
    )


def test_table2_claim_is_the_worst_labellings_best_architecture():
    rows = [("p1", "y1", "res", 0.50), ("p1", "y1", "vgg", 0.30), ("p1", "y2", "res", 0.12), ("p1", "y2", "vgg", 0.18),
            ("p2", "y1", "res", 0.40), ("p2", "y1", "vgg", 0.60), ("p2", "y2", "res", 0.25), ("p2", "y2", "vgg", 0.05)]  # fmt: skip
    m = analysis.section4_metrics(table1([0.95]), table2(rows))["table2_min_best_arch"]
    p = Proportion.of(1800, 10000)
    assert (m.value, m.ci_low, m.ci_high) == (0.18, p.ci_low, p.ci_high)  # (p1, y2)'s best
    assert judge("S4.2", m) == "pass"
    rows[3] = ("p1", "y2", "vgg", 0.14)  # now the best of (p1, y2) is near chance
    assert judge("S4.2", analysis.section4_metrics(table1([0.95]), table2(rows))["table2_min_best_arch"]) == "fail"


def test_table2_and_baseline_deviations_from_the_paper():
    t2 = table2([("p", "y1", "a", 0.50), ("p", "y1", "b", 0.60), ("p", "y2", "a", 0.10)], papers=[51.3, 53.9, None])
    t2 = Table2(t2.dataset, t2.chance, t2.rows, baseline([(0.86, 88.0), (0.94, 93.0)]))
    m = analysis.section4_metrics(table1([0.95]), t2)
    assert m["table2_max_abs_deviation"].value == pytest.approx(0.061)
    assert m["baseline_max_abs_deviation"].value == pytest.approx(0.02)
    assert (
        judge("S4.3", m["table2_max_abs_deviation"]) == "pass"
        and judge("S4.4", m["baseline_max_abs_deviation"]) == "pass"
    )


# ----------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize(
    "test, bound, target, value, interval, expected",
    [
        (">=", 0.9, None, 0.93, (0.91, 0.95), "pass"),
        (">=", 0.9, None, 0.87, (0.85, 0.89), "fail"),
        (">=", 0.9, None, 0.91, (0.88, 0.92), "pass within noise"),
        (">=", 0.9, None, 0.89, (0.88, 0.92), "fail within noise"),
        (">=", 0.9, None, 0.9, (0.88, 0.92), "pass within noise"),  # the bound itself passes
        ("<=", -0.9, None, -0.97, (-0.99, -0.95), "pass"),
        ("<=", -0.9, None, -0.7, (-0.85, -0.5), "fail"),
        ("<=", -0.9, None, -0.92, (-0.95, -0.85), "pass within noise"),
        ("<=", -0.9, None, -0.88, (-0.95, -0.85), "fail within noise"),
        ("within", 0.1, 0.2, 0.2, (0.15, 0.25), "pass"),
        ("within", 0.1, 0.2, 0.35, (0.31, 0.40), "fail"),
        ("within", 0.1, 0.2, 0.02, (0.0, 0.05), "fail"),
        ("within", 0.1, 0.2, 0.12, (0.05, 0.15), "pass within noise"),
        ("within", 0.1, 0.2, 0.08, (0.05, 0.15), "fail within noise"),
        ("within", 0.1, 0.2, 0.2, (0.05, 0.35), "pass within noise"),  # wider than the band on both sides
    ],
)
def test_verdicts_judge_the_value_and_say_whether_the_interval_clears_the_bound(
    test, bound, target, value, interval, expected
):
    claim = {"test": test, "target": target}
    estimate = analysis.Estimate(value, *interval)
    assert verify.verdict(claim, estimate, bound) == expected
    assert verify.verdict(claim, estimate, None) == "not assessed"
    value_only = analysis.Estimate(estimate.value)  # no interval: the value decides
    assert verify.verdict(claim, value_only, bound) == ("pass" if expected.startswith("pass") else "fail")


def test_a_value_outside_its_own_interval_is_an_error():
    with pytest.raises(ValueError, match="outside its interval"):
        verify.verdict({"id": "X", "test": ">="}, analysis.Estimate(0.5, 0.6, 0.7), 0.55)


def test_every_claim_bound_is_the_same_at_every_assessed_profile_and_says_why():
    for c in CLAIMS.values():
        assessed = {v for v in c["bound"].values() if v is not None}
        assert len(assessed) <= 1, c["id"]  # never tuned per profile
        assert len(c["why"]) > 20, c["id"]
        if c["test"] == "within":
            assert c["bound"]["paper"] < c["target"], c["id"]  # zero must fail: the side that matters
