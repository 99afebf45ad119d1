"""Section 3's analysis of the ratios and distances: the bars of Fig. 3, the curves of Fig. 5,
the correlations the paper reports, and every named quantity the claims are checked on.

Inputs are the typed results of the ``transfer``, ``distance`` and ``tables`` stages; outputs
are small dataclasses (figures, CSVs) and named floats (claims), so the figures, the claims and
the report all read the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .metrics import Z_95, Proportion, difference_interval
from .schema import (
    RATIOS,
    DistanceResults,
    ModelCondition,
    Ratio,
    Reading,
    Table1,
    Table2,
    Table2Row,
    TransferResults,
)


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson's r of paired samples; None below 3 pairs or with a constant sample."""
    if len(a) != len(b):
        raise ValueError("samples must be paired")
    n = len(a)
    if n < 3:
        return None
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    if saa == 0 or sbb == 0:
        return None
    return max(-1.0, min(1.0, sab / (math.sqrt(saa) * math.sqrt(sbb))))  # no underflow of saa * sbb


def fisher_interval(r: float | None, n: int) -> tuple[float, float] | None:
    """95% interval of a correlation by Fisher's z: tanh(atanh(r) -+ 1.96 / sqrt(n - 3))."""
    if r is None or n < 4:
        return None
    if abs(r) == 1.0:
        return (r, r)
    z, half = math.atanh(r), Z_95 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


@dataclass(frozen=True)
class Fig3Row:
    """One bar of Fig. 3: a target F2 of one source and attack at one eps, with Dist(F1, F2)."""

    target: str
    relation: str
    family: str
    n: int  # |D'_F1|
    dist: float | None
    dist_ci_low: float | None
    dist_ci_high: float | None
    dist_censored: float | None  # fraction of the images with a censored distance (a lower bound)
    unfooled: float | None
    unfooled_ci_low: float | None
    unfooled_ci_high: float | None
    different: float | None
    different_ci_low: float | None
    different_ci_high: float | None
    same: float | None
    same_ci_low: float | None
    same_ci_high: float | None
    fooled: float | None
    fooled_ci_low: float | None
    fooled_ci_high: float | None
    target_class_hit: float | None  # P[F2(x') = the targeted attack's class]


def fig3_rows(
    transfer: TransferResults,
    distance: DistanceResults,
    source: str,
    attack: str,
    eps: float,
) -> list[Fig3Row]:
    """Fig. 3's bars for one source and attack: one per target F2, sorted by Dist descending (the
    most similar F2 on the right, as in the paper); targets without a Dist go first."""
    rows = []
    for target in transfer.targets(source):
        info, result = transfer.info(source, target), transfer.result(source, attack, eps, target)
        pair = distance.pair(source, target)
        ratios = {}
        for kind in RATIOS:
            p = getattr(result, kind)
            ratios |= {kind: p.ratio, f"{kind}_ci_low": p.ci_low, f"{kind}_ci_high": p.ci_high}
        rows.append(
            Fig3Row(
                target=target,
                relation=info.relation,
                family=info.family,
                n=result.n,
                dist=distance.dist(source, target),
                dist_ci_low=pair.ci_low if pair else None,
                dist_ci_high=pair.ci_high if pair else None,
                dist_censored=pair.n_censored / pair.n_images if pair else None,
                target_class_hit=None if result.target_class_hit is None else result.target_class_hit.ratio,
                **ratios,
            )
        )
    return sorted(rows, key=lambda row: (row.dist is not None, -(row.dist or 0.0)))


def ranks(values: list[float]) -> list[float]:
    """Ranks 1..n, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho: Pearson's r of the ranks; None where Pearson's is."""
    return pearson(ranks(a), ranks(b))


def spearman_interval(rho: float | None, n: int) -> tuple[float, float] | None:
    """95% interval of Spearman's rho by Fisher's z with Bonett and Wright's standard error
    (Psychometrika 65:23, 2000): tanh(atanh(rho) -+ 1.96 sqrt((1 + rho^2 / 2) / (n - 3)))."""
    if rho is None or n < 4:
        return None
    if abs(rho) == 1.0:
        return (rho, rho)
    z, half = math.atanh(rho), Z_95 * math.sqrt((1 + rho * rho / 2) / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


@dataclass(frozen=True)
class Correlation:
    """Pearson's r across the targets F2 (the paper's statistic) with its Fisher 95% interval,
    and two readings, each with its own interval, that show whether it rests on one point:
    Spearman's rho, and r without the source's early version (usually the one target far from
    the others)."""

    r: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    spearman: Reading
    without_early: Reading

    def reading(self) -> Reading:
        """Pearson's r and its interval, as a reading of another correlation."""
        return Reading(self.r, self.ci_low, self.ci_high)

    @classmethod
    def of(cls, xs: list[float], ys: list[float], early: list[bool]) -> Correlation:
        r, rho = pearson(xs, ys), spearman(xs, ys)
        kept = [i for i, e in enumerate(early) if not e]
        r_kept = pearson([xs[i] for i in kept], [ys[i] for i in kept])
        return cls(
            r,
            *(fisher_interval(r, len(xs)) or (None, None)),
            len(xs),
            Reading(rho, *(spearman_interval(rho, len(xs)) or (None, None))),
            Reading(r_kept, *(fisher_interval(r_kept, len(kept)) or (None, None))),
        )


@dataclass(frozen=True)
class Correlations:
    """Section 3.3's correlations across the targets F2 of one source and attack."""

    source: str
    attack: str
    n_targets: int
    fooled_same: Correlation  # r(fooled ratio, same-mistake ratio)
    dist_same: Correlation  # r(Dist(F1, F2), same-mistake ratio)
    dist_fooled: Correlation  # r(Dist(F1, F2), fooled ratio)


def correlations(transfer: TransferResults, distance: DistanceResults, eps: float) -> list[Correlations]:
    """Per source and attack, across the targets F2 whose D'_F1 is not empty (and, for the
    Dist correlations, that have a Dist)."""
    out = []
    for source in transfer.sources:
        for attack in transfer.attack_names(source):
            rows = [r for r in fig3_rows(transfer, distance, source, attack, eps) if r.same is not None]
            with_dist = [r for r in rows if r.dist is not None]
            out.append(
                Correlations(
                    source=source,
                    attack=attack,
                    n_targets=len(rows),
                    fooled_same=Correlation.of(
                        [r.fooled for r in rows], [r.same for r in rows], [_early(r) for r in rows]
                    ),
                    dist_same=Correlation.of(
                        [r.dist for r in with_dist], [r.same for r in with_dist], [_early(r) for r in with_dist]
                    ),
                    dist_fooled=Correlation.of(
                        [r.dist for r in with_dist], [r.fooled for r in with_dist], [_early(r) for r in with_dist]
                    ),
                )
            )
    return out


def _early(row: Fig3Row) -> bool:
    return row.relation.startswith("v:")


@dataclass(frozen=True)
class Curve:
    """One target's ratios against eps (Fig. 5)."""

    eps: list[float]
    unfooled: list[float | None]
    different: list[float | None]
    same: list[float | None]
    fooled: list[float | None]


def eps_curves(transfer: TransferResults, source: str, attack: str) -> dict[str, Curve]:
    """Fig. 5's curves of one source and attack: {target: its ratios over the eps sweep}."""
    eps = transfer.eps_values(source, attack)
    return {
        target: Curve(eps, *([transfer.ratio(source, attack, e, target, kind) for e in eps] for kind in RATIOS))
        for target in transfer.targets(source)
    }


@dataclass(frozen=True)
class Estimate:
    """A claim's metric: its value, a 95% interval where the value has a sampling one, other
    readings of the same quantity, each with its interval (``readings``: diagnostics beside the
    paper's definition, never in its place; the ``verify`` stage flags a claim that passes on
    the value but not on one of them), and related numbers shown beside it (``notes``)."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    readings: dict[str, Reading] = field(default_factory=dict)
    notes: dict[str, float | None] = field(default_factory=dict)

    def reading(self) -> Reading:
        """The value and interval as a reading of another estimate."""
        return Reading(self.value, self.ci_low, self.ci_high)


def _fraction(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


@dataclass(frozen=True)
class Case:
    """One case of a claim that counts cases (S3.7, S3.9, S3.10): whether its comparison holds
    by the point values, and what its 95% interval says: True (holds), False (does not), None
    (the interval straddles the comparison's threshold: a near-tie)."""

    holds: bool
    decided: bool | None


def _side_of(low: float, high: float, threshold: float, strict: bool) -> bool | None:
    """Whether an interval [low, high] of a quantity lies wholly above ``threshold`` (True),
    wholly at or below it (False), or across it (None); ``strict=False`` counts a low end at
    the threshold as above (the comparison is >=)."""
    if low > threshold or (not strict and low == threshold):
        return True
    if high < threshold or (strict and high == threshold):
        return False
    return None


def counted(cases: list[Case], notes: dict[str, float | None] | None = None) -> Estimate:
    """The fraction of cases whose comparison holds, with the range the near-ties leave: from
    the cases decided to hold to those not decided against, over all cases. A verdict is within
    noise only when the undecided cases could move the fraction across the bound."""
    if not cases:
        return Estimate(None)
    n = len(cases)
    surely, possibly = sum(c.decided is True for c in cases), sum(c.decided is not False for c in cases)
    return Estimate(sum(c.holds for c in cases) / n, surely / n, possibly / n,
                    notes={"undecided cases": (possibly - surely) / n, **(notes or {})})  # fmt: skip


def _pick(values: list[float | None], pick) -> float | None:
    """min or max of ``values``; None when there are none or any is None (a claim over all
    cases cannot be checked on some of them)."""
    return None if not values or None in values else pick(values)


def _pooled(transfer: TransferResults, pairs: list[tuple[str, str]], attack: str, eps: float, kind: Ratio) -> Estimate:
    """A ratio pooled over (source, target) pairs, sum of counts over the sum of |D'_F1|, with
    its Wilson interval."""
    if not pairs:
        return Estimate(None)
    props = [getattr(transfer.result(s, attack, eps, t), kind) for s, t in pairs]
    pooled = Proportion.of(sum(p.count for p in props), sum(p.n for p in props))
    return Estimate(pooled.ratio, pooled.ci_low, pooled.ci_high)


def _worst_reading(readings: list[Reading], pick) -> Reading:
    """The reading with the smallest (``pick=min``) or largest value, with its interval; none
    when any case has no value (a claim over all cases cannot be read on some of them)."""
    if not readings or any(r.value is None for r in readings):
        return Reading(None)
    return pick(readings, key=lambda r: r.value)


def _worst_correlation(corr: list[Correlations], name: str, pick) -> Estimate:
    """The smallest (``pick=min``) or largest (``max``) r of one correlation over the cases,
    with that case's interval, and the same extreme of Spearman's rho and of r without the
    early version, each with its case's interval."""
    cases = [getattr(c, name) for c in corr]
    if not cases or any(c.r is None for c in cases):
        return Estimate(None)
    worst = pick(cases, key=lambda c: c.r)
    return Estimate(
        worst.r,
        worst.ci_low,
        worst.ci_high,
        readings={
            SPEARMAN: _worst_reading([c.spearman for c in cases], pick),
            WITHOUT_EARLY: _worst_reading([c.without_early for c in cases], pick),
        },
    )


# The readings beside the paper's definitions (each a diagnostic, never a verdict): the names the
# report and claims.json give them, and which metric reads which. A metric that reads the ratios
# is also computed over the images of D'_F1 each target classified right before the attack; one
# that reads Dist, with Dist over the images neither model leaves censored.
SPEARMAN = "Spearman's rho"
WITHOUT_EARLY = "r without the early version"
TARGET_RIGHT = "over the images the target got right"
FLIPPED = "Dist over the images that flip"
READS_RATIOS = {
    "min_corr_fooled_same", "max_corr_dist_same", "max_corr_dist_fooled", "wsame_different_targeted_fgm",
    "early_different_targeted_fgm", "frac_same_majority_untargeted", "frac_same_rises_with_eps",
    "frac_different_holds_with_eps",
}  # fmt: skip
READS_DIST = {
    "max_corr_dist_same", "max_corr_dist_fooled", "early_version_closest", "early_max_dist", "resnet_family_closest",
}  # fmt: skip


def section3_readings(transfer: TransferResults, distance: DistanceResults, eps: float) -> dict[str, Estimate]:
    """:func:`section3_metrics` by the paper's definitions, each with its diagnostic readings
    (see :data:`READS_RATIOS`, :data:`READS_DIST`) added to those it has (Spearman's rho, r
    without the early version)."""
    paper = section3_metrics(transfer, distance, eps)
    right = section3_metrics(transfer.over_target_right(), distance, eps)
    flipped = section3_metrics(transfer, distance.over_flipped_images(), eps)
    out = {}
    for name, estimate in paper.items():
        readings = dict(estimate.readings)
        if name in READS_RATIOS:
            readings[TARGET_RIGHT] = right[name].reading()
        if name in READS_DIST:
            readings[FLIPPED] = flipped[name].reading()
        out[name] = replace(estimate, readings=readings)
    return out


def section3_metrics(transfer: TransferResults, distance: DistanceResults, eps: float) -> dict[str, Estimate]:
    """The named quantities section 3's claims are checked on (see claims.yaml). ``eps`` is Fig.
    3's budget; the eps trends compare the smallest and largest eps."""
    corr = correlations(transfer, distance, eps)
    sources = list(transfer.sources)
    wsame = [(s, t) for s in sources for t in transfer.targets_by_relation(s, "w:same")]
    return {
        # "The correlations between the fooled ratio and the same mistake ratio were above 0.98
        # and the correlations between Dist(F1, F2) and the same mistake ratio were under -0.90
        # in all 8 cases."
        "min_corr_fooled_same": _worst_correlation(corr, "fooled_same", min),
        "max_corr_dist_same": _worst_correlation(corr, "dist_same", max),
        # "both the qualitative and quantitative similarity ... are positively correlated with the fooled ratio"
        "max_corr_dist_fooled": _worst_correlation(corr, "dist_fooled", max),
        # "Even when the models are the same architecture and trained using the same initial
        # weights, the different mistake ratios of targeted FGM were around 20%."
        "wsame_different_targeted_fgm": _pooled(transfer, wsame, "fgm-targeted", eps, "different"),
        **_early_version(transfer, distance, eps),
        "frac_same_majority_untargeted": _same_majority(transfer, eps),
        "resnet_family_closest": _resnet_family_closest(transfer, distance),
        **_eps_trends(transfer),
    }


def _early_version(transfer: TransferResults, distance: DistanceResults, eps: float) -> dict:
    """S3.5a, S3.5b, S3.6: "even the models with only a 20-epoch difference with the smallest
    Dist(F1, F2) < 0.5 had 10% of different mistake ratio when attacked by targeted FGM"."""
    sources = list(transfer.sources)
    early = [(s, t) for s in sources for t in transfer.targets_by_relation(s, "v:")]

    def dist(s: str, t: str) -> float:
        d = distance.dist(s, t)
        return math.inf if d is None else d

    closest = [min(transfer.targets(s), key=lambda t, s=s: dist(s, t)) for s in sources]
    m = {
        "early_version_closest": Estimate(
            _fraction([transfer.info(s, t).relation.startswith("v:") for s, t in zip(sources, closest, strict=True)])
        ),
        "early_different_targeted_fgm": _pooled(transfer, early, "fgm-targeted", eps, "different"),
    }
    if not early or any(distance.dist(s, t) is None for s, t in early):
        return m | {"early_max_dist": Estimate(None)}
    s, t = max(early, key=lambda st: dist(*st))
    pair = distance.pair(s, t)
    # "< 0.5" is in the paper's models' l2 units; the scale-free reading divides each early
    # version's Dist by that of its source's next closest F2 (chosen before any run was seen)
    nearest_other = {s: min((dist(s, u) for u in transfer.targets(s) if (s, u) not in early), default=0.0)
                     for s in sources}  # fmt: skip
    relative = [dist(s, t) / nearest_other[s] for s, t in early if 0 < nearest_other[s] < math.inf]
    notes = {
        "relative to the next closest F2 (larger of the sources)": max(relative, default=None),
        "images with a censored distance": pair.n_censored / pair.n_images,
    }
    return m | {"early_max_dist": Estimate(dist(s, t), pair.ci_low, pair.ci_high, notes=notes)}


def _same_majority(transfer: TransferResults, eps: float) -> Estimate:
    """S3.7: "the same mistake ratio is the majority of the fooled ratio" (non-targeted
    attacks). Per case, same > different, decided by the Wilson interval of same / (same +
    different) against 1/2 (a tie is undecided, and not a majority)."""
    majority, ties = [], []
    for s in transfer.sources:
        for attack in transfer.attack_names(s):
            if transfer.attack(s, attack).objective != "untargeted":
                continue
            for t in transfer.targets(s):
                r = transfer.result(s, attack, eps, t)
                if r.n == 0:
                    continue
                share = Proportion.of(r.same.count, r.same.count + r.different.count)
                decided = None if share.n == 0 else _side_of(share.ci_low, share.ci_high, 0.5, strict=True)
                majority.append(Case(r.same.count > r.different.count, decided))
                ties.append(r.same.count == r.different.count)
    return counted(majority, {"ties (same = different)": _fraction(ties)})


def _resnet_family_closest(transfer: TransferResults, distance: DistanceResults) -> Estimate:
    """S3.8: "when F1 was ResNet-18, F2 for the ResNet family have shorter Dist(F1, F2) than other models"."""
    ordered = []
    for s in transfer.sources:
        if transfer.info(s, s).family != "resnet":
            continue
        own = [distance.dist(s, t) for t in transfer.targets(s) if transfer.info(s, t).family == "resnet"]
        other = [distance.dist(s, t) for t in transfer.targets(s) if transfer.info(s, t).family != "resnet"]
        if None not in own + other and own and other:
            ordered.append(max(own) < min(other))
    return Estimate(_fraction(ordered))


def _eps_trends(transfer: TransferResults) -> dict[str, Estimate]:
    """S3.9, S3.10: "a larger perturbation can enable AEs to have a stronger effect to cause same
    mistakes, the different mistake ratio stays almost constant or increase" (Fig. 5). Per curve,
    the change from the smallest to the largest eps, decided by its Newcombe interval. Both
    objectives count: the sentence and Fig. 5's caption name no objective (REPRODUCE.md)."""
    rises: dict[str, list[Case]] = {"untargeted": [], "targeted": []}
    holds: list[Case] = []
    for s in transfer.sources:
        for attack in transfer.attack_names(s):
            eps = transfer.eps_values(s, attack)
            if len(eps) < 2:
                continue
            for t in transfer.targets(s):
                first, last = transfer.result(s, attack, eps[0], t), transfer.result(s, attack, eps[-1], t)
                if first.n == 0 or last.n == 0:
                    continue
                rise = difference_interval(last.same, first.same)
                rises[transfer.attack(s, attack).objective].append(
                    Case(last.same.ratio > first.same.ratio, _side_of(*rise, 0.0, strict=True))
                )
                change = difference_interval(last.different, first.different)
                holds.append(
                    Case(
                        last.different.ratio - first.different.ratio >= -DIFFERENT_FALL,
                        _side_of(*change, -DIFFERENT_FALL, strict=False),
                    )
                )
    return {
        "frac_same_rises_with_eps": counted(
            rises["untargeted"] + rises["targeted"], {f"{o} curves": counted(c).value for o, c in rises.items()}
        ),
        "frac_different_holds_with_eps": counted(holds),
    }


# "almost constant": a different-mistake ratio that falls by at most this much over the sweep
DIFFERENT_FALL = 0.05


@dataclass(frozen=True)
class Gain:
    """A Table 2 row's clean test accuracy minus its matched control's, with Newcombe's 95% interval."""

    gain: float
    ci_low: float
    ci_high: float


def _accuracy(acc: float, n_test: int) -> Proportion:
    return Proportion.of(round(acc * n_test), n_test)


def table2_gains(table2: Table2) -> list[Gain]:
    """Per row of Table 2: test accuracy - its control's (``Table2.control``), in row order."""
    out = []
    for r in table2.rows:
        c = table2.control(r)
        ours, theirs = _accuracy(r.test_acc, r.n_test), _accuracy(c.test_acc, c.n_test)
        out.append(Gain(ours.ratio - theirs.ratio, *difference_interval(ours, theirs)))
    return out


def section4_metrics(table1: Table1, table2: Table2) -> dict[str, Estimate]:
    """The named quantities section 4's claims are checked on (see claims.yaml)."""
    worst = min(table1.rows, key=lambda r: r.rates.both.ratio, default=None)
    probes = set.intersection(*(set(r.probes) for r in table1.rows)) if table1.rows else set()
    both = Estimate(
        None if worst is None else worst.rates.both.ratio,
        None if worst is None else worst.rates.both.ci_low,
        None if worst is None else worst.rates.both.ci_high,
        notes={
            f"at eps {e} (probe)": min(r.probes[e].rates.both.ratio for r in table1.rows)
            for e in sorted(probes, key=float)
        },
    )
    deviations = [abs(r.test_acc - r.paper / 100) for r in table2.rows if r.paper is not None]
    baseline_dev = [abs(b.test_acc - b.paper / 100) for b in table2.baseline if b.paper is not None]
    return {
        "table1_min_both": both,
        "table2_min_gain": _weakest_set(table2),
        "table2_max_abs_deviation": Estimate(max(deviations) if deviations else None),
        "baseline_max_abs_deviation": Estimate(max(baseline_dev) if baseline_dev else None),
    }


def _weakest_set(table2: Table2) -> Estimate:
    """S4.2: each non-robust set (pair, labelling) is judged by the learner it teaches most, its
    largest gain over that learner's control; the claim's value is the smallest of these over
    the sets, with that row's interval. Beside it, the paper's reading: the lowest of the sets'
    best test accuracies, against chance (10%)."""
    best: dict[tuple[str, str], tuple[Gain, Table2Row]] = {}
    for r, g in zip(table2.rows, table2_gains(table2), strict=True):
        if (r.pair, r.labelling) not in best or g.gain > best[r.pair, r.labelling][0].gain:
            best[r.pair, r.labelling] = (g, r)
    if not best:
        return Estimate(None)
    gain, _ = min(best.values(), key=lambda gr: gr[0].gain)
    best_acc = {}
    for r in table2.rows:
        best_acc[r.pair, r.labelling] = max(best_acc.get((r.pair, r.labelling), 0.0), r.test_acc)
    notes = {
        "lowest best test accuracy": min(best_acc.values()),
        "chance": table2.chance,
        "sets whose best gain's interval is above 0": _fraction([g.ci_low > 0 for g, _ in best.values()]),
    }
    return Estimate(gain.gain, gain.ci_low, gain.ci_high, notes=notes)


# ----------------------------------------------------------------------------- the paper's conditions
def zoo_conditions(
    zoo: dict[str, tuple[str, dict[str, float], int]], within: float, early: tuple[str, ...] = ()
) -> tuple[dict[str, float], str, dict[str, ModelCondition]]:
    """The paper's conditions (claims.yaml) applied to a zoo ``{member: (arch, {epoch: test
    accuracy}, n_test)}``: each architecture's mean final accuracy over its members, the most
    accurate architecture, and for every member (its last epoch) and every early version the run
    compares (``early``: ``member@epoch`` references) how far below that mean it lies and whether
    that is at most ``within``. ValueError for an empty zoo or an early version it did not save."""
    if not zoo:
        raise ValueError("the paper's conditions need a zoo: no training results")
    final = {m: acc[max(acc, key=int)] for m, (_, acc, _) in zoo.items()}
    archs = sorted({arch for arch, _, _ in zoo.values()})
    means = {a: sum(final[m] for m, (arch, _, _) in zoo.items() if arch == a) / sum(
        arch == a for arch, _, _ in zoo.values()) for a in archs}  # fmt: skip
    best = max(archs, key=lambda a: (means[a], a))
    refs = {m: (m, max(acc, key=int)) for m, (_, acc, _) in zoo.items()}
    for ref in early:
        member, _, epoch = ref.partition("@")
        if member not in zoo or epoch not in zoo[member][1]:
            raise ValueError(f"no test accuracy of {ref}: {member} did not save epoch {epoch}")
        refs[ref] = (member, epoch)
    models = {}
    for ref, (member, epoch) in sorted(refs.items()):
        arch, acc, n_test = zoo[member]
        below = means[best] - acc[epoch]
        models[ref] = ModelCondition(arch, acc[epoch], n_test, below, below <= within + 1e-12)
    return means, best, models
