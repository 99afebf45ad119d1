"""Properties of the decision-boundary distance (eq. 4) and decision planes (Fig. 4) in classaware.boundary."""

from __future__ import annotations

import math
import signal
from contextlib import contextmanager

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from models_for_tests import ConstantModel, LinearClassifier, bn_dropout_cnn, images, smooth_cnn
from torch import nn

from classaware.boundary import (
    DIFFERENT,
    REGION_NAMES,
    SAME,
    SOURCE_RIGHT,
    UNFOOLED,
    BoundarySearch,
    SearchSettings,
    boundary_distance,
    decision_plane,
    distance_from_distances,
    gradient_direction,
    model_distance,
    search_boundaries,
    search_boundary,
    transfer_regions,
)
from classaware.metrics import Z_95
from classaware.models import predict

SHAPE = (3, 2, 2)
DIM = 12
seeds = st.integers(0, 2**16)


@contextmanager
def time_limit(seconds: int):
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def handler(signum, frame):
        raise TimeoutError(f"did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def random_unit(n: int, shape, seed: int) -> torch.Tensor:
    v = torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed + 101), dtype=torch.float64)
    return (v / v.flatten(1).norm(dim=1).view(-1, *([1] * len(shape)))).float()


def linear_boundary(model: LinearClassifier, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> list[float]:
    """Closed form: along x + r v the class-y region of a linear model is left at
    r* = min over classes o with s_o < 0 of m_o / (-s_o), m_o = (w_y - w_o).x + (b_y - b_o), s_o = v.(w_y - w_o)
    (inf if no such o; the class-y region is convex, so the ray leaves it once)."""
    W, b = model.W64, model.b64
    out = []
    for xi, yi, vi in zip(x.flatten(1).double(), y.tolist(), v.flatten(1).double(), strict=True):
        best = math.inf
        for o in range(W.shape[0]):
            if o == yi:
                continue
            m = float((W[yi] - W[o]) @ xi + b[yi] - b[o])
            s = float(vi @ (W[yi] - W[o]))
            assert m > 0
            if s < 0:
                best = min(best, m / -s)
        out.append(best)
    return out


# ----------------------------------------------------------------------------- boundary_distance
@given(K=st.integers(2, 4), seed=seeds, max_radius=st.floats(0.5, 6.0), step=st.sampled_from([0.05, 0.1, 0.3]))
def test_linear_boundary_distance_closed_form(K, seed, max_radius, step):
    model = LinearClassifier.random(K, DIM, seed)
    x = images(3, SHAPE, seed).repeat(2, 1, 1, 1)
    y = predict(model, x)
    v = random_unit(6, SHAPE, seed)
    v[3:] = -v[:3]  # both ways along the same lines: a 2-class line is crossed in exactly one of them
    tol = 1e-3
    d = boundary_distance(model, x, y, v, max_radius=max_radius, step=step, tol=tol)
    assert d.shape == (6,)
    for got, r in zip(d.tolist(), linear_boundary(model, x, y, v), strict=True):
        if r < max_radius - 1e-4:
            assert r - 1e-4 <= got <= r + tol + 1e-4, (got, r)  # over-estimates by at most tol
        elif r > max_radius + 1e-4:
            assert got == math.inf, (got, r)
    if K == 2:
        r = linear_boundary(model, x, y, v)
        for i in range(3):  # v.(w_y - w_o) and -v.(w_y - w_o): one of them is negative
            assert math.isinf(r[i]) != math.isinf(r[i + 3])


@given(seed=seeds)
def test_linear_boundary_along_gradient_is_distance_to_hyperplane(seed):
    """Two classes: v = grad/||grad|| is (w_o - w_y)/||w_o - w_y||, and d = margin / ||w_y - w_o||.
    (Small weights: with p_y near 1, float32 CE gradients lose precision in 1 - p_y.)"""
    model = LinearClassifier.random(2, DIM, seed, scale=0.3)
    x = images(5, SHAPE, seed)
    y = predict(model, x)
    v = gradient_direction(model, x, y)
    W, b = model.W64, model.b64
    d = boundary_distance(model, x, y, v, max_radius=50.0, step=0.05, tol=1e-4)
    for i in range(5):
        a = W[int(y[i])] - W[1 - int(y[i])]
        assert torch.allclose(v[i].flatten().double(), -a / a.norm(), atol=1e-5)
        r = float((a @ x[i].flatten().double() + b[int(y[i])] - b[1 - int(y[i])]) / a.norm())
        assert r - 1e-4 <= float(d[i]) <= r + 2e-4


def test_tolerance_controls_precision_and_tiny_tol_terminates():
    model = LinearClassifier.random(2, DIM, 3)
    x = images(4, SHAPE, 3)
    y = predict(model, x)
    v = gradient_direction(model, x, y)
    r = torch.tensor(linear_boundary(model, x, y, v))
    coarse = boundary_distance(model, x, y, v, max_radius=40.0, step=0.5, tol=0.5)
    assert ((coarse - r) >= -1e-5).all() and ((coarse - r) <= 0.5 + 1e-5).all()
    with time_limit(30):  # a tol below float32 resolution must not loop forever
        fine = boundary_distance(model, x, y, v, max_radius=40.0, step=0.5, tol=1e-12)
    assert ((fine - r).abs() <= 1e-5).all(), (fine, r)


def test_misclassified_gives_zero_and_never_flipping_gives_inf():
    model = LinearClassifier.random(3, DIM, 4)
    x = images(4, SHAPE, 4)
    pred = predict(model, x)
    wrong = (pred + 1) % 3
    v = random_unit(4, SHAPE, 4)
    assert torch.equal(boundary_distance(model, x, wrong, v, max_radius=1.0, step=0.1, tol=0.01), torch.zeros(4))
    const = ConstantModel(10)
    yc = predict(const, x)
    d = boundary_distance(const, x, yc, v, max_radius=1.0, step=0.1, tol=0.01)
    assert torch.isinf(d).all()
    d = boundary_distance(const, x, (yc + 1) % 10, v, max_radius=1.0, step=0.1, tol=0.01)
    assert torch.equal(d, torch.zeros(4))


def test_boundary_distance_radius_not_a_multiple_of_step():
    """max_radius = 1.03 with step 0.1: the last scan point is 1.03 itself."""
    W = torch.zeros(2, DIM)
    W[1, 0] = 1.0
    model = LinearClassifier(W, torch.tensor([0.0, -1.05]))  # class 1 iff x_0 > 1.05
    x = torch.zeros(3, *SHAPE)
    # boundaries at r = 1.0, at r = 1.01 (beyond the last full step, 1.0) and at r = 1.05 > max_radius
    x.view(3, -1)[:, 0] = torch.tensor([0.05, 0.04, 0.0])
    v = torch.zeros(3, *SHAPE)
    v.view(3, -1)[:, 0] = 1.0
    y = torch.zeros(3, dtype=torch.int64)
    d = boundary_distance(model, x, y, v, max_radius=1.03, step=0.1, tol=1e-3)
    assert 1.0 - 1e-5 <= float(d[0]) <= 1.001 + 1e-5
    assert 1.01 - 1e-5 <= float(d[1]) <= 1.011 + 1e-5
    assert math.isinf(float(d[2]))


@pytest.mark.parametrize(
    "kw",
    [
        dict(tol=0.2, step=0.1),
        dict(step=2.0, max_radius=1.0),
        dict(tol=0.0),
        dict(tol=-1e-3),
        dict(max_radius=math.inf),
        dict(max_radius=float("nan")),
        dict(step=0.0, tol=0.0),
    ],
)
def test_bad_search_arguments_raise(kw):
    model = LinearClassifier.random(2, DIM, 5)
    x = images(2, SHAPE, 5)
    y = predict(model, x)
    v = random_unit(2, SHAPE, 5)
    args = dict(max_radius=1.0, step=0.1, tol=1e-3) | kw
    with pytest.raises(ValueError):
        boundary_distance(model, x, y, v, **args)
    with pytest.raises(ValueError):
        model_distance(model, model, x, y, SearchSettings(**args))


def test_boundary_leaves_model_alone():
    model = bn_dropout_cnn(channels=3, seed=6).train()
    before = {k: t.clone() for k, t in model.state_dict().items()}
    x = images(3, (3, 4, 4), 6)
    y = predict(model, x)
    v = gradient_direction(model, x, y)
    assert model.training and all(p.grad is None for p in model.parameters())
    n = v.flatten(1).norm(dim=1)
    assert torch.allclose(n, torch.ones(3), atol=1e-5)
    d1 = boundary_distance(model, x, y, v, max_radius=2.0, step=0.1, tol=0.01)
    d2 = boundary_distance(model, x, y, v, max_radius=2.0, step=0.1, tol=0.01)
    assert torch.equal(d1, d2)  # eval mode: dropout is off
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], t) for k, t in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- Dist(F1, F2)
def searched(d: list[float], censored: list[bool], radius: float) -> BoundarySearch:
    return BoundarySearch(torch.tensor(d), torch.tensor(censored), radius)


def test_distance_from_distances_hand_example():
    """Every image counts; a censored distance enters at the common radius searched (4)."""
    source = searched([1.0, 2.0, 4.0, 0.5, 0.0], [False, False, True, False, False], 4.0)
    target = searched([1.5, 1.0, 3.0, 4.0, 0.25], [False, False, False, True, False], 4.0)
    r = distance_from_distances(source, target)
    gaps = [0.5, 1.0, 1.0, 3.5, 0.25]
    mean = sum(gaps) / 5
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / 4)
    assert (r.n_images, r.n_censored) == (5, 2)
    assert r.dist == pytest.approx(1.25, abs=1e-12)
    assert r.ci_low == pytest.approx(mean - Z_95 * sd / math.sqrt(5), abs=1e-9)
    assert r.ci_high == pytest.approx(mean + Z_95 * sd / math.sqrt(5), abs=1e-9)
    # the diagnostic: only the images neither model leaves censored (0, 1 and 4), with their interval
    flipped = [0.5, 1.0, 0.25]
    m = sum(flipped) / 3
    half = Z_95 * math.sqrt(sum((g - m) ** 2 for g in flipped) / 2) / math.sqrt(3)
    assert (r.n_flipped, r.dist_flipped) == (3, pytest.approx(m))
    assert (r.flipped_ci_low, r.flipped_ci_high) == (pytest.approx(max(0.0, m - half)), pytest.approx(m + half))


def test_distance_from_distances_edge_cases():
    one = distance_from_distances(searched([2.0], [False], 3.0), searched([0.5], [False], 3.0))
    assert (one.dist, one.n_images, one.ci_low, one.ci_high) == (1.5, 1, None, None)
    none_flip = distance_from_distances(searched([3.0], [True], 3.0), searched([1.0], [False], 3.0))
    assert (none_flip.dist, none_flip.n_censored, none_flip.dist_flipped, none_flip.n_flipped) == (2.0, 1, None, 0)
    with pytest.raises(ValueError, match="at least one image"):
        distance_from_distances(searched([], [], 1.0), searched([], [], 1.0))


def test_searches_that_ended_at_other_radii_give_no_dist():
    """A censored gap bounds nothing when the two searches stopped at other radii."""
    with pytest.raises(ValueError, match="ended at radii 2 and 4.*search_boundaries"):
        distance_from_distances(searched([2.0], [True], 2.0), searched([3.0], [False], 4.0))


radii = st.floats(0.0, 10.0)


@given(st.lists(st.tuples(radii, st.booleans(), radii, st.booleans()), min_size=1, max_size=20))
def test_distance_from_distances_averages_every_image_symmetrically(rows):
    a = searched([r[0] for r in rows], [r[1] for r in rows], 10.0)
    b = searched([r[2] for r in rows], [r[3] for r in rows], 10.0)
    ab, ba = distance_from_distances(a, b), distance_from_distances(b, a)
    assert ab == ba and ab.n_images == len(rows)
    expected = sum(abs(float(x) - float(y)) for x, y in zip(a.d, b.d, strict=True)) / len(rows)
    assert ab.dist == pytest.approx(expected, rel=1e-6, abs=1e-9) and ab.dist >= 0
    assert ab.n_censored == sum(r[1] or r[3] for r in rows)
    flipped = [abs(float(x) - float(y)) for x, y, r in zip(a.d, b.d, rows, strict=True) if not (r[1] or r[3])]
    assert ab.n_flipped == len(flipped)
    assert ab.dist_flipped == (pytest.approx(sum(flipped) / len(flipped), rel=1e-5, abs=1e-6) if flipped else None)
    if len(rows) >= 2:
        assert ab.ci_low <= ab.dist <= ab.ci_high
    assert distance_from_distances(a, a).dist == 0.0


class Threshold(nn.Module):
    """Two classes: logit 1 = w . x - c, logit 0 = 0 (class 1 iff w . x > c); no parameters."""

    def __init__(self, w: torch.Tensor, c: float):
        super().__init__()
        self.w, self.c = w.flatten(), c

    def forward(self, x):
        return torch.stack([torch.zeros(len(x)), x.flatten(1) @ self.w - self.c], 1)


def _threshold_line(shape, cos: list[float]):
    """Class 1 iff x_0 > 1; image i starts at x_0 = 0.5 and moves along a direction whose e_0
    part is cos_i, so it flips at d = 0.5 / cos_i (never for cos = 0)."""
    e0, e1 = torch.zeros(shape), torch.zeros(shape)
    e0.view(-1)[0], e1.view(-1)[1] = 1.0, 1.0
    x = torch.zeros(len(cos), *shape)
    x.view(len(cos), -1)[:, 0] = 0.5
    c = torch.tensor(cos)
    v = c.view(-1, 1, 1, 1) * e0 + (1 - c**2).sqrt().view(-1, 1, 1, 1) * e1
    return Threshold(e0, 1.0), x, torch.zeros(len(cos), dtype=torch.int64), v


BIG = (3, 4, 4)  # the image box's diameter is sqrt(48) = 6.9, beyond every radius below


def test_search_boundary_doubles_the_radius_until_few_images_are_unflipped():
    """d = 0.5, 1.5, 3.0 and never."""
    model, x, y, v = _threshold_line(BIG, [1.0, 1 / 3, 1 / 6, 0.0])
    full = search_boundary(
        model, x, y, v, SearchSettings(max_radius=1.0, step=0.1, tol=0.01, max_censored=0.0, doublings=2)
    )
    assert full.radius == 4.0 and full.censored.tolist() == [False, False, False, True]
    assert full.d.tolist() == pytest.approx([0.5, 1.5, 3.0, 4.0], abs=0.04 + 1e-5)  # tol doubles with the step
    assert full.d[0] >= 0.5 - 1e-6 and full.d[0] <= 0.51 + 1e-6  # the first radius keeps its tolerance
    half = search_boundary(
        model, x, y, v, SearchSettings(max_radius=1.0, step=0.1, tol=0.01, max_censored=0.5, doublings=2)
    )
    assert half.radius == 2.0 and half.censored.tolist() == [False, False, True, True]  # 2 of 4 unflipped: stop
    assert half.d[2:].tolist() == [2.0, 2.0]
    none = search_boundary(model, x, y, v, SearchSettings(max_radius=1.0, step=0.1, tol=0.01, doublings=0))
    assert none.radius == 1.0 and none.censored.tolist() == [False, True, True, True]


def test_the_search_stops_at_the_image_boxs_diameter():
    """3 x 2 x 2 images: no image lies further than sqrt(12) = 3.46 from another, so the last
    doubling (from 2) stops there; the image that flips at 3.0 is found, the one that never
    flips is censored at the diameter, and no further doubling is tried."""
    model, x, y, v = _threshold_line(SHAPE, [1.0, 1 / 3, 1 / 6, 0.0])
    s = search_boundary(
        model, x, y, v, SearchSettings(max_radius=1.0, step=0.1, tol=0.01, max_censored=0.0, doublings=5)
    )
    assert s.radius == pytest.approx(math.sqrt(12)) and s.censored.tolist() == [False, False, False, True]
    assert s.d.tolist() == pytest.approx([0.5, 1.5, 3.0, math.sqrt(12)], abs=0.04)


def test_models_searched_together_end_at_one_radius():
    """One censoring rule for every model compared: from x_0 = x_1 = 0.5 along cos e_0 + sin e_1,
    A (class 1 iff x_0 + x_1 > 1.5) flips every image within radius 1, B (x_0 > 1) flips at
    0.5 / cos and never where cos = 0, so both are searched on to radius 4 (A has nothing left to
    search) and their gaps on the images B never flips are lower bounds at that common radius."""
    e0, e1 = torch.zeros(BIG), torch.zeros(BIG)
    e0.view(-1)[0], e1.view(-1)[1] = 1.0, 1.0
    cos = torch.tensor([1.0, 0.6, 0.0, 0.0])
    sin = (1 - cos**2).sqrt()
    x = (0.5 * (e0 + e1)).expand(4, *BIG).clone()
    v = cos.view(-1, 1, 1, 1) * e0 + sin.view(-1, 1, 1, 1) * e1
    y = torch.zeros(4, dtype=torch.int64)
    a, b = Threshold(e0 + e1, 1.5), Threshold(e0, 1.0)
    settings = SearchSettings(max_radius=1.0, step=0.1, tol=0.01, max_censored=0.0, doublings=2)
    both = search_boundaries({"A": a, "B": b}, x, y, v, settings)
    assert both["A"].radius == both["B"].radius == 4.0
    assert both["B"].censored.tolist() == [False, False, True, True] and not both["A"].censored.any()
    alone = search_boundary(a, x, y, v, settings)
    assert alone.radius == 1.0 and torch.equal(alone.d, both["A"].d)  # its own distances are the same
    d_a = 0.5 / (cos + sin)
    assert both["A"].d.tolist() == pytest.approx(d_a.tolist(), abs=0.01 + 1e-5)
    pair = distance_from_distances(both["A"], both["B"])
    gaps = [0.0, 0.5 / 0.6 - float(d_a[1]), 4.0 - 0.5, 4.0 - 0.5]
    assert pair.n_censored == 2 and pair.dist == pytest.approx(sum(gaps) / 4, abs=0.03)


distances = st.one_of(st.floats(0.1, 4.0), st.just(math.inf))


@given(
    true=st.lists(st.lists(distances, min_size=2, max_size=3), min_size=1, max_size=8),
    max_censored=st.sampled_from([0.0, 0.2, 0.5]),
    doublings=st.integers(0, 3),
)
def test_every_gap_of_a_censored_image_is_a_lower_bound_for_any_pair_of_models(true, max_censored, doublings):
    """Models whose true d(f, x_i) along v_i is chosen: model m is class 1 iff x_m > 0.5 + 0.05
    (axis m), every image starts at 0.5 on each axis, and v_i has 0.05 / d along axis m (nothing
    where d is infinite; the rest of its unit norm on an axis no model reads), so model m flips
    image i at exactly d. Searched together, every recorded gap is the true gap within the
    search's tolerance, and where either distance is censored it is at most the true gap."""
    n_models = min(len(row) for row in true)
    d = torch.tensor([row[:n_models] for row in true])  # (images, models)
    a = torch.where(torch.isinf(d), torch.zeros_like(d), 0.05 / d)
    if bool((a.pow(2).sum(1) > 1).any()):
        return  # no unit direction has these parts
    shape = (3, 2, 2)
    v = torch.zeros(len(d), 12)
    v[:, :n_models] = a
    v[:, 11] = (1 - a.pow(2).sum(1)).sqrt()
    x = torch.full((len(d), 12), 0.5)
    x[:, 11] = 0.0
    models = {}
    for m in range(n_models):
        axis = torch.zeros(12)
        axis[m] = 1.0
        models[f"m{m}"] = Threshold(axis.view(shape), 0.55)
    settings = SearchSettings(max_radius=0.5, step=0.05, tol=0.005, max_censored=max_censored, doublings=doublings)
    y = torch.zeros(len(d), dtype=torch.int64)
    searches = search_boundaries(models, x.view(-1, *shape), y, v.view(-1, *shape), settings)
    radius = next(iter(searches.values())).radius
    tol = settings.tol * radius / settings.max_radius + 1e-4  # the tolerance of the last radius searched
    for i, a_name in enumerate(models):
        for j, b_name in enumerate(models):
            sa, sb = searches[a_name], searches[b_name]
            recorded, gap = (sa.d - sb.d).abs(), (d[:, i] - d[:, j]).abs()
            for k in range(len(d)):
                if torch.isinf(d[k, i]) and torch.isinf(d[k, j]):
                    assert bool(sa.censored[k] and sb.censored[k]) and recorded[k] == 0
                elif bool(sa.censored[k] or sb.censored[k]):
                    assert recorded[k] <= gap[k] + tol, (k, float(recorded[k]), float(gap[k]))  # a lower bound
                else:
                    assert abs(recorded[k] - gap[k]) <= tol


def test_dist_measures_along_the_sources_gradient_not_the_targets():
    """F1: class 1 iff x_0 > 0.7 (gradient along e_0); F2: class 1 iff x_0 + x_1 > 1.6 (gradient
    along (e_0 + e_1)/sqrt 2). From x_0 = 0.2, x_1 = 0.1, along e_0: d(F1) = 0.5, d(F2) = 1.3, so
    Dist = 0.8. Along F2's gradient it would be |0.5 sqrt 2 - 1.3 / sqrt 2| = 0.212."""
    e0, e1 = torch.zeros(SHAPE), torch.zeros(SHAPE)
    e0.view(-1)[0], e1.view(-1)[1] = 1.0, 1.0
    f1, f2 = Threshold(e0, 0.7), Threshold(e0 + e1, 1.6)
    x = torch.zeros(3, *SHAPE)
    x.view(3, -1)[:, 0], x.view(3, -1)[:, 1] = 0.2, 0.1
    y = torch.zeros(3, dtype=torch.int64)
    assert torch.allclose(gradient_direction(f1, x, y), e0.expand(3, *SHAPE))
    r = model_distance(f1, f2, x, y, SearchSettings(max_radius=2.0, step=0.01, tol=1e-4))
    assert r.dist == pytest.approx(0.8, abs=2e-4) and r.n_censored == 0


@given(seed=seeds, delta=st.floats(0.05, 1.0))
def test_model_distance_linear_hand_value(seed, delta):
    """F1, F2 linear with the same weights and biases differing by delta: along F1's gradient
    every kept image has |d(F1, x) - d(F2, x)| = delta / ||w_0 - w_1|| (searched far enough
    that none is censored)."""
    f1 = LinearClassifier.random(2, DIM, seed, scale=0.5)
    W, b = f1.W64, f1.b64.clone()
    b2 = b.clone()
    b2[0] += delta
    f2 = LinearClassifier(W.float(), b2.float())
    x = images(10, SHAPE, seed)
    y = predict(f1, x)
    y[0] = 1 - y[0]  # F1 wrong on image 0: excluded
    keep = (predict(f1, x) == y) & (predict(f2, x) == y)
    na = float((W[0] - W[1]).norm())
    if not keep.any():
        return
    r = model_distance(f1, f2, x, y, SearchSettings(max_radius=40.0, step=0.01, tol=1e-4, max_censored=0.0))
    assert r.n_images == int(keep.sum()) and r.n_censored == 0
    assert r.dist == pytest.approx(delta / na, abs=3e-4)
    same = model_distance(f1, f1, x, y, SearchSettings(max_radius=40.0, step=0.01, tol=1e-4))
    assert same.dist == 0.0


def test_model_distance_with_no_correct_image_is_an_error():
    model = LinearClassifier.random(2, DIM, 12)
    x = images(3, SHAPE, 12)
    wrong = 1 - predict(model, x)
    with pytest.raises(ValueError, match="at least one image"):
        model_distance(model, model, x, wrong, SearchSettings(max_radius=1.0, step=0.1, tol=0.01))


def test_model_distance_of_model_with_itself_is_zero():
    model = smooth_cnn(10, seed=7, pool=2, gain=3.0)
    x = images(6, (3, 4, 4), 7)
    y = predict(model, x)
    r = model_distance(model, model, x, y, SearchSettings(max_radius=3.0, step=0.05, tol=1e-3))
    assert r.n_images == 6 and r.dist == 0.0


# ----------------------------------------------------------------------------- decision planes
def test_decision_plane_structure_and_centre():
    src = smooth_cnn(10, seed=8, pool=2, gain=3.0)
    other = smooth_cnn(10, seed=9, pool=2, gain=3.0)
    x = images(1, (3, 4, 4), 8)[0]
    y = int(predict(src, x[None])[0])
    plane = decision_plane(src, [src, other], x, y, span=3, unit=0.1, seed=1, batch_size=5)
    assert plane.labels.shape == (2, 7, 7)
    assert torch.equal(plane.coords, torch.arange(-3, 4, dtype=torch.float32))
    assert plane.true_label == y and plane.unit == 0.1
    assert plane.labels.dtype == torch.int64
    assert int(plane.labels[0, 3, 3]) == int(predict(src, x[None])[0])
    assert int(plane.labels[1, 3, 3]) == int(predict(other, x[None])[0])
    again = decision_plane(src, [src, other], x, y, span=3, unit=0.1, seed=1, batch_size=1000)
    assert torch.equal(plane.labels, again.labels)  # batching does not matter, the seed fixes d2


def _hand_plane(model: LinearClassifier, x, y, span, unit, seed):
    """Labels of a linear model on the plane, recomputed in float64: d1 from the closed-form
    CE gradient W^T (softmax - onehot), d2 the seeded Gram-Schmidt direction. Returns the labels
    and the top-2 logit gap at each point (to skip near-ties)."""
    W, b = model.W64, model.b64
    xf = x.flatten().double()
    p = torch.softmax(W @ xf + b, 0)
    p[y] -= 1
    g = W.T @ p
    d1 = g / g.norm()
    r = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).flatten().double()
    r = r - (r @ d1) * d1
    d2 = r / r.norm()
    S = 2 * span + 1
    labels = torch.empty(S, S, dtype=torch.int64)
    gaps = torch.empty(S, S, dtype=torch.float64)
    for i, vv in enumerate(range(-span, span + 1)):
        for j, uu in enumerate(range(-span, span + 1)):
            z = W @ (xf + uu * unit * d1 + vv * unit * d2) + b
            top = z.topk(2).values
            labels[i, j] = int(z.argmax())
            gaps[i, j] = float(top[0] - top[1])
    return labels, gaps


@given(seed=seeds, K=st.integers(2, 4))
def test_decision_plane_of_linear_model_matches_hand_computation(seed, K):
    model = LinearClassifier.random(K, DIM, seed, scale=0.3)
    x = images(1, SHAPE, seed)[0]
    y = int(predict(model, x[None])[0])
    span, unit = 4, 0.6
    plane = decision_plane(model, [model], x, y, span=span, unit=unit, seed=seed)
    labels, gaps = _hand_plane(model, x, y, span, unit, seed)
    clear = gaps > 1e-3
    assert clear.float().mean() > 0.8
    assert torch.equal(plane.labels[0][clear], labels[clear])


@given(seed=seeds)
def test_decision_plane_two_class_linear_columns_constant(seed):
    """Two classes: d1 is along w_o - w_y and d2 is orthogonal to it, so the label depends on u
    only: each column (fixed u) is constant, and the row flips at u = r*/unit, r* = margin/||w_y - w_o||."""
    model = LinearClassifier.random(2, DIM, seed, scale=0.3)
    x = images(1, SHAPE, seed)[0]
    y = int(predict(model, x[None])[0])
    W, b = model.W64, model.b64
    a = W[y] - W[1 - y]
    r_star = float((a @ x.flatten().double() + b[y] - b[1 - y]) / a.norm())
    span = 6
    unit = r_star / 3.5  # the flip lies half-way between u = 3 and u = 4
    plane = decision_plane(model, [model], x, y, span=span, unit=unit, seed=seed)
    lab = plane.labels[0]
    expected_row = torch.tensor([y if u * unit < r_star else 1 - y for u in range(-span, span + 1)])
    assert torch.equal(lab, expected_row.expand(2 * span + 1, -1))
    assert int(lab[span, 3 + span]) == y and int(lab[span, 4 + span]) == 1 - y


def test_decision_plane_validation_and_modes():
    src = bn_dropout_cnn(channels=3, seed=10).train()
    other = smooth_cnn(10, seed=11).train()
    x = images(1, (3, 4, 4), 10)[0]
    with pytest.raises(ValueError):
        decision_plane(src, [src], x, 0, span=0)
    with pytest.raises(ValueError):
        decision_plane(src, [src], x, 0, unit=0.0)
    plane = decision_plane(src, [src, other], x, 0, span=2, unit=0.05)
    assert src.training and other.training
    assert all(p.grad is None for p in src.parameters())
    assert plane.labels.shape == (2, 5, 5)
    src.eval()
    assert int(plane.labels[0, 2, 2]) == int(predict(src, x[None])[0])


def test_transfer_regions_hand_grid():
    y = 3
    source = torch.tensor([[3, 3, 1, 1], [2, 2, 5, 0]])
    target = torch.tensor([[3, 7, 3, 1], [2, 4, 3, 3]])
    expected = torch.tensor(
        [
            [SOURCE_RIGHT, SOURCE_RIGHT, UNFOOLED, SAME],
            [SAME, DIFFERENT, UNFOOLED, UNFOOLED],
        ]
    )
    out = transfer_regions(source, target, y)
    assert torch.equal(out, expected)
    assert out.shape == source.shape
    assert REGION_NAMES[UNFOOLED] == "un-fooled" and REGION_NAMES[SAME] == "same mistake"
    assert REGION_NAMES[DIFFERENT] == "different mistake" and REGION_NAMES[SOURCE_RIGHT] == "F1 not fooled"


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=30), st.integers(0, 4))
def test_transfer_regions_match_definitions(pairs, y):
    s = torch.tensor([p[0] for p in pairs])
    t = torch.tensor([p[1] for p in pairs])
    out = transfer_regions(s, t, y).tolist()
    for (si, ti), o in zip(pairs, out, strict=True):
        if si == y:
            assert o == SOURCE_RIGHT
        elif ti == y:
            assert o == UNFOOLED
        elif ti == si:
            assert o == SAME
        else:
            assert o == DIFFERENT
