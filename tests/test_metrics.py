"""Properties of the class-aware transferability metrics (paper section 3.1.1, eq. 1) in classaware.metrics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from classaware.metrics import (
    Z_95,
    ClassAwareTransfer,
    Proportion,
    class_aware_counts,
    class_aware_transfer,
    difference_interval,
    fooled_set,
    wilson_interval,
)


# ----------------------------------------------------------------------------- strategies
@st.composite
def label_sets(draw, min_n=1, max_n=40):
    """(y, source_clean, source_adv, target_adv (M, N), target_classes) as int64 tensors.

    Predictions are drawn to agree with y often, so D'_F1 and every case are usually non-empty.
    """
    n = draw(st.integers(min_n, max_n))
    k = draw(st.integers(2, 5))
    m = draw(st.integers(1, 3))
    lab = st.integers(0, k - 1)
    y = draw(st.lists(lab, min_size=n, max_size=n))

    def near(ref):  # a prediction: the reference label or any label
        return [r if draw(st.booleans()) else draw(lab) for r in ref]

    sc = near(y)
    sa = [draw(lab) for _ in range(n)]
    ta = [near(y if draw(st.booleans()) else sa) for _ in range(m)]
    at = [draw(lab) for _ in range(n)]
    T = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    return T(y), T(sc), T(sa), T(ta).view(m, n), T(at)


def _brute(y, sc, sa, ta_row):
    """Straight from the definitions (eq. 1 and the three cases), sample by sample."""
    unf = dif = same = n = 0
    for yi, ci, ai, ti in zip(y.tolist(), sc.tolist(), sa.tolist(), ta_row.tolist(), strict=True):
        if ci == yi and ai != yi:  # in D'_F1
            n += 1
            if ti == yi:
                unf += 1
            elif ti == ai:
                same += 1
            else:
                dif += 1
    return n, unf, dif, same


# ----------------------------------------------------------------------------- class-aware ratios
@given(label_sets())
def test_counts_and_ratios_match_definitions(data):
    y, sc, sa, ta, at = data
    results = class_aware_transfer(y, sc, sa, ta, target_classes=at)
    counts = class_aware_counts(y, sc, sa, ta)
    mask = fooled_set(y, sc, sa)
    n = sum(1 for a, b, c in zip(y.tolist(), sc.tolist(), sa.tolist(), strict=True) if b == a and c != a)
    assert int(mask.sum()) == n
    assert isinstance(results, list) and len(results) == len(ta)
    assert counts.shape == (len(ta), 3)
    for row, r, c in zip(ta, results, counts.tolist(), strict=True):
        bn, unf, dif, same = _brute(y, sc, sa, row)
        assert c == [unf, dif, same]
        assert sum(c) == n == r.n == bn
        assert r.n_total == len(y)
        assert r.n_source_correct == int((sc == y).sum())
        assert (r.unfooled.count, r.different.count, r.same.count) == (unf, dif, same)
        assert r.fooled.count == dif + same
        assert r.unfooled.count + r.different.count + r.same.count == r.n
        assert (r.same.ratio is None) == (n == 0)
        props = (r.unfooled, r.fooled, r.different, r.same, r.target_class_hit, r.source_target_class_hit)
        for p in props:
            assert p.n == n
            if n:
                assert 0.0 <= p.ratio <= 1.0
                assert p.ratio == p.count / n
                assert 0.0 <= p.ci_low <= p.ratio <= p.ci_high <= 1.0
            else:
                assert p.ratio is None and p.ci_low is None and p.ci_high is None
        if n:
            assert math.isclose(r.unfooled.ratio + r.different.ratio + r.same.ratio, 1.0, abs_tol=1e-12)
            assert math.isclose(r.fooled.ratio, r.different.ratio + r.same.ratio, abs_tol=1e-12)
        # targeted hits, over D'_F1 only
        sel = mask.tolist()
        assert r.target_class_hit.count == sum(
            1 for s, t, a in zip(sel, row.tolist(), at.tolist(), strict=True) if s and t == a
        )
        assert r.source_target_class_hit.count == sum(
            1 for s, t, a in zip(sel, sa.tolist(), at.tolist(), strict=True) if s and t == a
        )


@given(label_sets(), st.randoms(use_true_random=False))
def test_permuting_samples_changes_nothing(data, rnd):
    y, sc, sa, ta, at = data
    perm = list(range(len(y)))
    rnd.shuffle(perm)
    p = torch.tensor(perm)
    a = class_aware_transfer(y, sc, sa, ta, target_classes=at)
    b = class_aware_transfer(y[p], sc[p], sa[p], ta[:, p], target_classes=at[p])
    assert a == b
    assert torch.equal(class_aware_counts(y, sc, sa, ta), class_aware_counts(y[p], sc[p], sa[p], ta[:, p]))


@given(label_sets(min_n=2), st.data())
def test_counts_add_over_a_split(data, d):
    y, sc, sa, ta, at = data
    k = d.draw(st.integers(0, len(y)))
    whole = class_aware_counts(y, sc, sa, ta)
    parts = class_aware_counts(y[:k], sc[:k], sa[:k], ta[:, :k]) + class_aware_counts(y[k:], sc[k:], sa[k:], ta[:, k:])
    assert torch.equal(whole, parts)
    r = class_aware_transfer(y, sc, sa, ta)
    r1, r2 = (
        class_aware_transfer(y[:k], sc[:k], sa[:k], ta[:, :k]),
        class_aware_transfer(y[k:], sc[k:], sa[k:], ta[:, k:]),
    )
    for a, b1, b2 in zip(r, r1, r2, strict=True):
        assert a.n == b1.n + b2.n
        assert a.n_total == b1.n_total + b2.n_total
        assert a.n_source_correct == b1.n_source_correct + b2.n_source_correct
        for f in ("unfooled", "fooled", "different", "same"):
            assert getattr(a, f).count == getattr(b1, f).count + getattr(b2, f).count


@given(label_sets())
def test_single_row_equals_first_of_many(data):
    y, sc, sa, ta, at = data
    single = class_aware_transfer(y, sc, sa, ta[0], target_classes=at)
    assert isinstance(single, ClassAwareTransfer)
    assert single == class_aware_transfer(y, sc, sa, ta, target_classes=at)[0]


def test_hand_computed_example():
    #            0  1  2  3  4  5  6  7
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    sc = torch.tensor([9, 1, 2, 3, 4, 5, 6, 7])  # 0: source wrong on clean -> excluded
    sa = torch.tensor([1, 1, 5, 6, 8, 9, 0, 2])  # 1: source not fooled -> excluded
    ta = torch.tensor(
        [
            [0, 1, 2, 6, 7, 9, 6, 2],  # 2 un-fooled, 3 same, 4 different, 5 same, 6 un-fooled, 7 same
            [5, 5, 5, 5, 5, 5, 5, 5],  # 2 same (5), 3..7 different (5 != y, 5 != y1) except 5: y=5 -> un-fooled
        ]
    )
    targets = torch.tensor([3, 3, 5, 6, 7, 9, 0, 5])  # source hit at 2, 3, 5, 6; row 0 hits at 3, 4, 5
    mask = fooled_set(y, sc, sa)
    assert mask.tolist() == [False, False, True, True, True, True, True, True]
    assert class_aware_counts(y, sc, sa, ta).tolist() == [[2, 1, 3], [1, 4, 1]]
    r0, r1 = class_aware_transfer(y, sc, sa, ta, target_classes=targets)
    assert (r0.n_total, r0.n_source_correct, r0.n) == (8, 7, 6)
    assert (r0.unfooled.count, r0.different.count, r0.same.count, r0.fooled.count) == (2, 1, 3, 4)
    assert (r1.unfooled.count, r1.different.count, r1.same.count, r1.fooled.count) == (1, 4, 1, 5)
    assert r0.same.ratio == 0.5 and r0.unfooled.ratio == 2 / 6 and r1.different.ratio == 4 / 6
    assert (r0.source_target_class_hit.count, r0.target_class_hit.count) == (4, 3)
    assert (r1.source_target_class_hit.count, r1.target_class_hit.count) == (
        4,
        2,
    )  # row 1 predicts 5: targets 5 at samples 2 and 7
    assert r0.source_target_class_hit == r1.source_target_class_hit
    assert r0.same.count == 3 and r0.n == 6


def test_empty_fooled_set():
    y = torch.tensor([0, 1, 2, 3])
    sc = torch.tensor([0, 1, 0, 3])
    sa = torch.tensor([0, 1, 1, 3])  # fooled only where the source was already wrong
    ta = torch.tensor([[1, 2, 3, 0], [0, 1, 2, 3]])
    for r in class_aware_transfer(y, sc, sa, ta, target_classes=torch.tensor([1, 2, 3, 0])):
        assert r.n == 0
        assert r.n_total == 4 and r.n_source_correct == 3
        for p in (r.unfooled, r.fooled, r.different, r.same, r.target_class_hit, r.source_target_class_hit):
            assert (p.count, p.n, p.ratio, p.ci_low, p.ci_high) == (0, 0, None, None, None)
    assert class_aware_counts(y, sc, sa, ta).tolist() == [[0, 0, 0], [0, 0, 0]]


def test_no_samples_at_all():
    e = torch.zeros(0, dtype=torch.int64)
    r = class_aware_transfer(e, e, e, torch.zeros(2, 0, dtype=torch.int64))
    assert len(r) == 2 and all(x.n == 0 and x.n_total == 0 and x.same.ratio is None for x in r)
    assert class_aware_transfer(e, e, e, e).n == 0


def test_without_target_classes_no_hits():
    y, sc, sa = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1, 0])
    r = class_aware_transfer(y, sc, sa, torch.tensor([1, 1]))
    assert (
        r.target_class_hit is None and r.source_target_class_hit is None and r.same.count == 1 and r.unfooled.count == 1
    )


@pytest.mark.parametrize(
    "shapes",
    [(6, 6, 6, (6, 5)), (6, 6, 5, (6,)), (6, 5, 6, (6,)), (6, 6, 6, (7,)), (6, 6, 6, (2, 3)), (6, 6, 6, (1, 2, 3))],
)
def test_mismatched_lengths_raise(shapes):
    ny, nc, na, tshape = shapes
    z = lambda n: torch.zeros(n, dtype=torch.int64)  # noqa: E731
    with pytest.raises(ValueError):
        class_aware_transfer(z(ny), z(nc), z(na), torch.zeros(tshape, dtype=torch.int64))


# ----------------------------------------------------------------------------- Wilson interval
def _wilson_reference(k, n, z=1.959963984540054):
    """Wilson (1927) score interval, written independently: roots in p of (k/n - p)^2 = z^2 p (1 - p) / n."""
    a = 1 + z * z / n
    b = -(2 * k / n + z * z / n)
    c = (k / n) ** 2
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def test_wilson_hand_value():
    lo, hi = wilson_interval(8, 10)
    assert abs(lo - 0.4902) < 1e-4 and abs(hi - 0.9433) < 1e-4
    rlo, rhi = _wilson_reference(8, 10)
    assert abs(lo - rlo) < 1e-12 and abs(hi - rhi) < 1e-12
    assert Z_95 == pytest.approx(1.96, abs=1e-3)


@given(st.integers(1, 10_000), st.data())
def test_wilson_bounds(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    rlo, rhi = _wilson_reference(k, n)
    assert abs(lo - max(0.0, rlo)) < 1e-9 and abs(hi - min(1.0, rhi)) < 1e-9
    # symmetric: the interval of n - k is the mirror image
    mlo, mhi = wilson_interval(n - k, n)
    assert abs(lo - (1 - mhi)) < 1e-12 and abs(hi - (1 - mlo)) < 1e-12
    if k == 0:
        assert lo == 0.0
    if k == n:
        assert hi == 1.0


def test_wilson_shrinks_with_n():
    widths = [wilson_interval(3 * m, 10 * m) for m in (1, 10, 100)]
    w = [h - lo for lo, h in widths]
    assert w[0] > w[1] > w[2] > 0


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(-1, 10)
    with pytest.raises(ValueError):
        wilson_interval(1, 0)


def test_proportion_of():
    p = Proportion.of(8, 10)
    assert (p.count, p.n, p.ratio) == (8, 10, 0.8)
    assert (p.ci_low, p.ci_high) == wilson_interval(8, 10)
    assert Proportion.of(0, 0) == Proportion(0, 0, None, None, None)
    with pytest.raises(ValueError):
        Proportion.of(3, 2)


# ----------------------------------------------------------------------------- Newcombe
def test_difference_interval_matches_newcombes_worked_example():
    """Newcombe (1998), Statistics in Medicine 17:873, Table II example (a): 56/70 - 48/80 = 0.2,
    his method 10 (the hybrid score interval) gives 0.0524 to 0.3339."""
    low, high = difference_interval(Proportion.of(56, 70), Proportion.of(48, 80))
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


@given(st.integers(1, 200), st.integers(1, 200), st.data())
def test_difference_interval_holds_the_difference_and_mirrors(n1, n2, data):
    k1, k2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    a, b = Proportion.of(k1, n1), Proportion.of(k2, n2)
    low, high = difference_interval(a, b)
    assert -1 <= low <= a.ratio - b.ratio <= high <= 1
    mlow, mhigh = difference_interval(b, a)  # swapping the two mirrors the interval
    assert (mlow, mhigh) == (pytest.approx(-high), pytest.approx(-low))
    assert difference_interval(a, Proportion.of(0, 0)) is None
