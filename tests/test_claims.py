"""Every claim's metric on hand-built results (tests/helpers_results.py): its value computed by
hand, and a variant where the verdict flips. The background of every other cell differs, so a
metric that reads the wrong attack, objective, ratio, eps or model gets another value."""

from __future__ import annotations

import math

import pytest
import yaml
from helpers_repo import REPO
from helpers_results import EPS, SOURCES, Study, correlated_study, table1, table2, targets

from classaware import analysis
from classaware.metrics import Proportion, difference_interval
from classaware.schema import Reading, Table2
from classaware.stages import verify

CLAIMS = {c["id"]: c for c in yaml.safe_load((REPO / "claims.yaml").read_text())["claims"]}


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
def _set_untargeted(study: Study, wins: int, ties: int, near: int = 0) -> int:
    """Make ``wins`` untargeted cases at eps 1 clearly same > different, then ``near`` cases
    same > different by a near-tie (210 vs 190 of 400 fooled: the Wilson interval of 0.525
    straddles 1/2), ``ties`` equal, the rest clearly same < different; targeted cases the
    opposite of what they would need. Returns the count."""
    cases = [(s, a, t) for s in SOURCES for a in ("fgm-untargeted", "pgd-untargeted") for t in targets(s)]
    kinds = [(100, 300)] * wins + [(190, 210)] * near + [(200, 200)] * ties
    for i, key in enumerate(cases):
        study.counts[(key[0], key[1], 1.0, key[2])] = kinds[i] if i < len(kinds) else (300, 100)
    for s in SOURCES:
        for t in targets(s):
            study.counts[s, "fgm-targeted", 1.0, t] = study.counts[s, "pgd-targeted", 1.0, t] = (300, 100)
    return len(cases)


def test_same_mistakes_outnumber_different_ones_in_most_untargeted_cases():
    study = Study()
    n = _set_untargeted(study, wins=18, ties=1)
    m = section3(study)["frac_same_majority_untargeted"]
    assert n == 24 and m.value == 18 / 24 and m.notes == {"undecided cases": 1 / 24, "ties (same = different)": 1 / 24}
    assert (m.ci_low, m.ci_high) == (18 / 24, 19 / 24)  # the tie could go either way
    assert judge("S3.7", m) == "pass"  # 0.75, and no undecided case can take it below
    _set_untargeted(study, wins=17, ties=2)  # a tie is not a majority
    assert judge("S3.7", section3(study)["frac_same_majority_untargeted"]) == "fail within noise"  # [17, 19] / 24
    _set_untargeted(study, wins=17, ties=0)  # 7 clear losses: no near-tie can lift it
    assert judge("S3.7", section3(study)["frac_same_majority_untargeted"]) == "fail"


def test_near_ties_make_the_majority_claim_within_noise_only_when_they_could_cross_the_bound():
    study = Study()
    share = Proportion.of(210, 400)  # a near-tie's same / (same + different)
    assert share.ci_low < 0.5 < share.ci_high
    _set_untargeted(study, wins=16, ties=0, near=3)  # 19 of 24 by the point values, 16 decided
    m = section3(study)["frac_same_majority_untargeted"]
    assert (m.value, m.ci_low, m.ci_high) == (19 / 24, 16 / 24, 19 / 24) and judge("S3.7", m) == "pass within noise"
    _set_untargeted(study, wins=18, ties=0, near=3)  # 21 by the point values, 18 decided: clear of 0.75
    assert judge("S3.7", section3(study)["frac_same_majority_untargeted"]) == "pass"


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
    study = Study()  # every background curve rises from 400-ish to 500-ish of 1,000: decided
    curves = _curves()
    for s, a, t in curves[:4]:  # 4 of 48 curves fall clearly from the smallest to the largest eps
        study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (50, 500), (50, 300)
    m = section3(study)["frac_same_rises_with_eps"]
    assert (m.value, m.ci_low, m.ci_high) == (44 / 48, 44 / 48, 44 / 48) and judge("S3.9", m) == "pass"
    assert m.notes["untargeted curves"] == 20 / 24 and m.notes["targeted curves"] == 1.0  # the 4 are untargeted
    s, a, t = curves[4]
    study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (50, 500), (50, 500)  # flat: not a rise
    m = section3(study)["frac_same_rises_with_eps"]
    assert (m.value, m.ci_low, m.ci_high) == (43 / 48, 43 / 48, 44 / 48)  # flat is undecided
    assert judge("S3.9", m) == "fail within noise"  # 43/48 < 0.9 <= 44/48: the flat curve could cross it


def test_a_rise_within_noise_counts_by_its_value_and_leaves_the_verdict_within_noise():
    study = Study()
    curves = _curves()
    for s, a, t in curves[:4]:  # four curves rise by 0.02 of 1,000 AEs: not significant
        study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (50, 500), (50, 520)
    low, high = difference_interval(Proportion.of(520, 1000), Proportion.of(500, 1000))
    assert low < 0 < high
    for s, a, t in curves[4:8]:  # four fall clearly
        study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (50, 500), (50, 300)
    m = section3(study)["frac_same_rises_with_eps"]
    assert (m.value, m.ci_low, m.ci_high) == (44 / 48, 40 / 48, 44 / 48) and judge("S3.9", m) == "pass within noise"


def test_different_mistakes_fall_by_at_most_five_points_in_nine_curves_of_ten():
    study = Study()
    curves = _curves()
    for s, a, t in curves[:4]:  # fall by 0.2: counted as falling, decided
        study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (300, 400), (100, 500)
    m = section3(study)["frac_different_holds_with_eps"]
    assert (m.value, m.ci_low, m.ci_high) == (44 / 48, 44 / 48, 44 / 48) and judge("S3.10", m) == "pass"
    for s, a, t in curves[4:8]:  # fall by exactly 0.05 of 1,000: "almost constant" by the value, undecided
        study.counts[s, a, EPS[0], t], study.counts[s, a, EPS[-1], t] = (150, 400), (100, 500)
    m = section3(study)["frac_different_holds_with_eps"]
    assert (m.value, m.ci_low, m.ci_high) == (44 / 48, 40 / 48, 44 / 48) and judge("S3.10", m) == "pass within noise"
    s, a, t = curves[4]
    study.counts[s, a, EPS[0], t] = (151, 400)  # falls by 0.051: over the line by the value
    assert judge("S3.10", section3(study)["frac_different_holds_with_eps"]) == "fail within noise"


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
    without = m["min_corr_fooled_same"].readings["r without the early version"]
    assert without.value == pytest.approx(analysis.pearson(fooled[1:], same[1:]))
    assert (without.ci_low, without.ci_high) == pytest.approx(analysis.fisher_interval(without.value, 5))
    rho = m["min_corr_fooled_same"].readings["Spearman's rho"]
    assert rho.value == pytest.approx(1.0) and (rho.ci_low, rho.ci_high) == (1.0, 1.0)  # both fall monotonically
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
    v = verify.check(claim, analysis.Estimate(m.value, readings=m.readings), -0.5)
    assert v.verdict == "pass" and any("r without the early version" in c for c in v.caveats)


@pytest.mark.parametrize("r, verdict", [(-0.93, "pass within noise"), (-0.85, "fail within noise")])
def test_the_papers_own_design_can_pass_s32(r, verdict):
    """The paper's design, 15 targets per source, with r(Dist, same) = -0.93 in every case (like
    the paper's): the value passes S3.2's -0.9 though the Fisher interval straddles it, so the
    verdict is a pass within noise; at -0.85 every case is on the other side: a fail."""
    transfer, distance = correlated_study(15, r)
    m = analysis.section3_metrics(transfer, distance, 1.0)["max_corr_dist_same"]
    assert m.value == pytest.approx(r, abs=1e-4)
    assert all(c.dist_same.n == 15 for c in analysis.correlations(transfer, distance, 1.0))
    assert m.ci_low < -0.9 < m.ci_high  # 15 targets cannot decide either side
    assert judge("S3.2", m) == verdict


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
        judge("S4.1", analysis.section4_metrics(table1([0.97, 0.85]), Table2("x", 0.1, (), (), ()))["table1_min_both"])
        == "fail"
    )


def test_table2_claim_is_the_weakest_sets_best_gain_over_its_control():
    rows = [("p1", "y1", "res", 0.50), ("p1", "y1", "vgg", 0.30), ("p1", "y2", "res", 0.12), ("p1", "y2", "vgg", 0.18),
            ("p2", "y1", "res", 0.40), ("p2", "y1", "vgg", 0.60), ("p2", "y2", "res", 0.25), ("p2", "y2", "vgg", 0.05)]  # fmt: skip
    controls = {("y1", "res"): 0.12, ("y1", "vgg"): 0.13, ("y2", "res"): 0.11, ("y2", "vgg"): 0.14}
    m = analysis.section4_metrics(table1([0.95]), table2(rows, controls=controls))["table2_min_gain"]
    # best gains: (p1, y1) res +0.38, (p1, y2) vgg +0.04 (res +0.01), (p2, y1) vgg +0.47, (p2, y2) res +0.14
    low, high = difference_interval(Proportion.of(1800, 10000), Proportion.of(1400, 10000))
    assert (m.value, m.ci_low, m.ci_high) == (pytest.approx(0.04), pytest.approx(low), pytest.approx(high))
    assert low > 0 and judge("S4.2", m) == "pass"
    assert m.notes["lowest best test accuracy"] == 0.18 and m.notes["chance"] == 0.1
    controls["y2", "res"], controls["y2", "vgg"] = 0.115, 0.175  # (p1, y2)'s best gain is +0.005: within noise
    m = analysis.section4_metrics(table1([0.95]), table2(rows, controls=controls))["table2_min_gain"]
    assert m.value == pytest.approx(0.005) and m.ci_low < 0 and judge("S4.2", m) == "pass within noise"
    controls["y2", "res"], controls["y2", "vgg"] = 0.2, 0.3  # no learner of (p1, y2) beats its control
    m = analysis.section4_metrics(table1([0.95]), table2(rows, controls=controls))["table2_min_gain"]
    assert m.value == pytest.approx(-0.08) and judge("S4.2", m) == "fail"


# ----------------------------------------------------------------------------- diagnostics beside the claims
def test_spearmans_interval_is_bonett_and_wrights_by_hand():
    """rho = 0.6 over 13 targets: tanh(atanh(0.6) -+ 1.96 sqrt((1 + 0.18) / 10))."""
    half = 1.959963984540054 * math.sqrt((1 + 0.6**2 / 2) / 10)
    lo, hi = analysis.spearman_interval(0.6, 13)
    assert (lo, hi) == pytest.approx((math.tanh(math.atanh(0.6) - half), math.tanh(math.atanh(0.6) + half)))
    assert analysis.spearman_interval(0.6, 3) is None and analysis.spearman_interval(None, 10) is None


def test_the_ratio_readings_use_the_images_each_target_got_right():
    """S3.4 over the images the w:same targets got right: pooled from the ``right`` cells alone
    (out of 900 each), never the paper's D'_F1 cells."""
    study = Study()
    for s, (d, same) in zip(SOURCES, [(90, 400), (180, 300)], strict=True):
        study.right[s, "fgm-targeted", 1.0, f"{s}_ws"] = (d, same)
    m = analysis.section3_readings(study.transfer(), study.distance(), 1.0)
    reading = m["wsame_different_targeted_fgm"].readings["over the images the target got right"]
    pooled = Proportion.of(90 + 180, 1800)
    assert (reading.value, reading.ci_low, reading.ci_high) == (pooled.ratio, pooled.ci_low, pooled.ci_high)
    assert m["wsame_different_targeted_fgm"].value == section3(study)["wsame_different_targeted_fgm"].value
    assert "Dist over the images that flip" not in m["wsame_different_targeted_fgm"].readings  # it reads no Dist


def test_the_dist_readings_use_the_images_that_flip():
    """S3.8 holds by the paper's Dist and not over the images that flip, where a VGG comes first."""
    study = Study()
    for j, t in enumerate(targets("res")):
        study.dist["res", t] = 0.2 + j if "res" in t else 10.0 + j
        study.flipped["res", t] = 0.2 + j if "res" in t else 0.1
    m = analysis.section3_readings(study.transfer(), study.distance(), 1.0)
    assert m["resnet_family_closest"].value == 1.0
    assert m["resnet_family_closest"].readings["Dist over the images that flip"].value == 0.0
    assert "over the images the target got right" not in m["resnet_family_closest"].readings  # it reads no ratio
    both = m["max_corr_dist_same"].readings
    assert {"Spearman's rho", "r without the early version", "over the images the target got right",
            "Dist over the images that flip"} == set(both)  # fmt: skip


def test_a_pass_that_a_diagnostic_contradicts_keeps_its_verdict_with_a_caveat():
    claim = CLAIMS["S3.4"]
    estimate = analysis.Estimate(0.2, 0.19, 0.21, readings={"over the images the target got right": Reading(0.05)})
    v = verify.check(claim, estimate, claim["bound"]["paper"])
    assert v.verdict == "pass" and v.caveats == ("not on over the images the target got right (0.050)",)


@pytest.mark.parametrize("value", [0.2, 0.9])
def test_a_claim_reading_a_model_outside_the_conditions_is_not_judged_whatever_its_value(value):
    claim = CLAIMS["S3.4"]
    v = verify.check(claim, analysis.Estimate(value, value - 0.01, value + 0.01), 0.1, outside=("weak",))
    assert v.verdict == "not under the paper's conditions" and v.outside == ("weak",) and v.value == value
    assert verify.check(claim, analysis.Estimate(value), None, outside=("weak",)).verdict == "not assessed"
