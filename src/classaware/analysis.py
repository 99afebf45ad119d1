"""Section 3's analysis of the ratios and distances: the bars of Fig. 3, the curves of Fig. 5,
the correlations the paper reports, and every named quantity the claims are checked on.

Inputs are the typed results of the ``transfer``, ``distance`` and ``tables`` stages; outputs
are small dataclasses (figures, CSVs) and named floats (claims), so the figures, the claims and
the report all read the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import mean

from .metrics import Z_95
from .results import RATIOS, DistanceResults, Table1, Table2, TransferResults


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
    return max(-1.0, min(1.0, sab / math.sqrt(saa * sbb)))


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
    transfer: TransferResults, distance: DistanceResults, source: str, attack: str, eps: float
) -> list[Fig3Row]:
    """Fig. 3's bars for one source and attack: one per target F2, sorted by Dist descending
    (the most similar F2 on the right, as in the paper); targets without a Dist go first."""
    rows = []
    for target in transfer.targets(source):
        info, result, pair = (
            transfer.info(source, target),
            transfer.result(source, attack, eps, target),
            distance.pair(source, target),
        )
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
                dist=None if pair is None else pair.dist,
                dist_ci_low=None if pair is None else pair.ci_low,
                dist_ci_high=None if pair is None else pair.ci_high,
                target_class_hit=None if result.target_class_hit is None else result.target_class_hit.ratio,
                **ratios,
            )
        )
    return sorted(rows, key=lambda row: (row.dist is not None, -(row.dist or 0.0)))


@dataclass(frozen=True)
class Correlation:
    r: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    @classmethod
    def of(cls, xs: list[float], ys: list[float]) -> Correlation:
        r = pearson(xs, ys)
        ci = fisher_interval(r, len(xs)) or (None, None)
        return cls(r, *ci, len(xs))


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
                    fooled_same=Correlation.of([r.fooled for r in rows], [r.same for r in rows]),
                    dist_same=Correlation.of([r.dist for r in with_dist], [r.same for r in with_dist]),
                    dist_fooled=Correlation.of([r.dist for r in with_dist], [r.fooled for r in with_dist]),
                )
            )
    return out


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


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def _extreme(values: list[float | None], pick) -> float | None:
    """min or max of ``values``; None when there are none or any is None (a claim over all
    cases cannot be checked on some of them)."""
    return None if not values or None in values else pick(values)


def section3_metrics(transfer: TransferResults, distance: DistanceResults, eps: float) -> dict[str, float | None]:
    """The named quantities section 3's claims are checked on (see claims.yaml). ``eps`` is
    Fig. 3's budget; the eps trends compare the smallest and largest eps of the sweep."""
    corr = correlations(transfer, distance, eps)
    sources = list(transfer.sources)
    m: dict[str, float | None] = {
        # "the correlations between the fooled ratio and the same mistake ratio were above 0.98 ..."
        "min_corr_fooled_same": _extreme([c.fooled_same.r for c in corr], min),
        # "... and the correlations between Dist(F1, F2) and the same mistake ratio were under -0.90"
        "max_corr_dist_same": _extreme([c.dist_same.r for c in corr], max),
        # similar models are fooled more: the fooled ratio falls with Dist
        "max_corr_dist_fooled": _extreme([c.dist_fooled.r for c in corr], max),
    }

    # "Even when the models are the same architecture and trained using the same initial
    # weights, the different mistake ratios of targeted FGM were around 20%."
    m["wsame_different_targeted_fgm"] = _mean(
        [
            transfer.ratio(s, "fgm-targeted", eps, t, "different")
            for s in sources
            for t in transfer.targets_by_relation(s, "w:same")
        ]
    )
    # "even the models with only a 20-epoch difference with the smallest Dist(F1, F2) < 0.5
    # had 10% of different mistake ratio when attacked by targeted FGM"
    early = [(s, t) for s in sources for t in transfer.targets_by_relation(s, "v:")]
    m["early_different_targeted_fgm"] = _mean(
        [transfer.ratio(s, "fgm-targeted", eps, t, "different") for s, t in early]
    )
    m["early_max_dist"] = _extreme([distance.dist(s, t) for s, t in early], max)

    # "a larger perturbation can enable AEs to have a stronger effect to cause same mistakes,
    # the different mistake ratio stays almost constant or increase" (Fig. 5)
    rises, changes = [], []
    for s in sources:
        for attack in transfer.attack_names(s):
            for curve in eps_curves(transfer, s, attack).values():
                if len(curve.eps) > 1 and curve.same[0] is not None and curve.same[-1] is not None:
                    rises.append(curve.same[-1] > curve.same[0])
                    changes.append(curve.different[-1] - curve.different[0])
    m["frac_same_rises_with_eps"] = sum(rises) / len(rises) if rises else None
    m["mean_different_change_with_eps"] = _mean(changes)

    # "the same mistake ratio is the majority of the fooled ratio" (non-targeted attacks)
    majority = [
        row.same >= row.different
        for s in sources
        for attack in transfer.attack_names(s)
        if transfer.attack(s, attack).objective == "untargeted"
        for row in fig3_rows(transfer, distance, s, attack, eps)
        if row.same is not None
    ]
    m["frac_same_majority_untargeted"] = sum(majority) / len(majority) if majority else None

    # "when F1 was ResNet-18, F2 for the ResNet family have shorter Dist(F1, F2) than other models"
    ordered = []
    for s in sources:
        family = transfer.info(s, s).family
        own = [distance.dist(s, t) for t in transfer.targets(s) if transfer.info(s, t).family == family]
        other = [distance.dist(s, t) for t in transfer.targets(s) if transfer.info(s, t).family != family]
        own, other = [d for d in own if d is not None], [d for d in other if d is not None]
        if own and other:
            ordered.append(max(own) < min(other))
    m["frac_sources_family_closest"] = sum(ordered) / len(ordered) if ordered else None
    return m


def section4_metrics(table1: Table1, table2: Table2) -> dict[str, float | None]:
    """The named quantities section 4's claims are checked on (see claims.yaml)."""
    best: dict[tuple[str, str], float] = {}
    for r in table2.rows:
        best[r.pair, r.labelling] = max(best.get((r.pair, r.labelling), 0.0), r.test_acc)
    deviations = [abs(r.test_acc - r.paper / 100) for r in table2.rows if r.paper is not None]
    baseline_dev = [abs(b.test_acc - b.paper / 100) for b in table2.baseline if b.paper is not None]
    return {
        "table1_min_both": min(r.rates.both.ratio for r in table1.rows) if table1.rows else None,
        "table2_min_best_arch": min(best.values()) if best else None,
        "table2_max_abs_deviation": max(deviations) if deviations else None,
        "baseline_max_abs_deviation": max(baseline_dev) if baseline_dev else None,
    }
