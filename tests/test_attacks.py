"""Properties of the gradient attacks (paper section 3.1.2, eqs. 2, 3, 5) in classaware.attacks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from models_for_tests import (
    ConstantModel,
    DeadReluModel,
    LinearClassifier,
    Scaled,
    ZeroGradModel,
    bn_dropout_cnn,
    images,
    labels,
    smooth_cnn,
)

from classaware.attacks import fgm, n_targeted_pgd, pgd, project, random_target_classes, unit_direction
from classaware.batching import map_batches

SHAPE = (3, 8, 8)
DIM = 3 * 8 * 8
CNN = smooth_cnn(10, seed=1)
CNN2 = smooth_cnn(10, seed=2)

norms = st.sampled_from(["l2", "linf"])
seeds = st.integers(0, 2**16)


def dist(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    d = (a - b).flatten(1).double()
    return d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)


def ce(model, x, t):
    with torch.no_grad():
        return F.cross_entropy(model(x), t, reduction="none")


def assert_in_ball(x_adv, x, eps, norm):
    assert torch.isfinite(x_adv).all()
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float(dist(x_adv, x, norm).max()) <= eps + 1e-5


# ----------------------------------------------------------------------------- eps-ball and [0, 1]
@given(
    eps=st.floats(0.0, 3.0),
    alpha=st.floats(0.01, 2.0),
    steps=st.integers(1, 3),
    norm=norms,
    targeted=st.booleans(),
    random_start=st.booleans(),
    seed=seeds,
)
def test_pgd_stays_in_eps_ball_and_unit_box(eps, alpha, steps, norm, targeted, random_start, seed):
    x, y = images(4, SHAPE, seed), labels(4, 10, seed)
    t = random_target_classes(y, 10, torch.Generator().manual_seed(seed)) if targeted else None
    x_adv = pgd(CNN, x, y, eps, alpha, steps, norm, target_classes=t, random_start=random_start, seed=seed)
    assert_in_ball(x_adv, x, eps, norm)


@given(eps=st.floats(0.0, 3.0), norm=norms, targeted=st.booleans(), seed=seeds)
def test_fgm_stays_in_eps_ball_and_unit_box(eps, norm, targeted, seed):
    x, y = images(4, SHAPE, seed), labels(4, 10, seed)
    t = random_target_classes(y, 10, torch.Generator().manual_seed(seed)) if targeted else None
    x_adv = fgm(CNN, x, y, eps, norm, target_classes=t)
    assert_in_ball(x_adv, x, eps, norm)
    # a full FGM step with a non-zero gradient moves the image (eps well above float resolution)
    if eps > 1e-3:
        assert float(dist(x_adv, x, norm).max()) > 0


@given(
    eps=st.floats(0.0, 3.0),
    alpha=st.floats(0.01, 2.0),
    steps=st.integers(1, 3),
    norm=norms,
    random_start=st.booleans(),
    seed=seeds,
)
def test_n_targeted_pgd_stays_in_eps_ball_and_unit_box(eps, alpha, steps, norm, random_start, seed):
    x, y = images(3, SHAPE, seed), labels(3, 10, seed)
    g = torch.Generator().manual_seed(seed)
    t1, t2 = random_target_classes(y, 10, g, exclude_true=False), random_target_classes(y, 10, g, exclude_true=False)
    x_adv = n_targeted_pgd([CNN, CNN2], x, [t1, t2], eps, alpha, steps, norm, random_start=random_start, seed=seed)
    assert_in_ball(x_adv, x, eps, norm)


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("random_start", [False, True])
def test_zero_eps_returns_the_input(norm, random_start):
    x, y = images(3, SHAPE, 5), labels(3, 10, 5)
    assert torch.equal(pgd(CNN, x, y, 0.0, 0.5, 2, norm, random_start=random_start), x)
    assert torch.equal(fgm(CNN, x, y, 0.0, norm), x)


def test_random_start_moves_and_depends_on_seed():
    x, y = images(3, SHAPE, 6), labels(3, 10, 6)
    a = pgd(ZeroGradModel(), x, y, 0.5, 0.1, 1, "l2", random_start=True, seed=1)
    b = pgd(ZeroGradModel(), x, y, 0.5, 0.1, 1, "l2", random_start=True, seed=1)
    c = pgd(ZeroGradModel(), x, y, 0.5, 0.1, 1, "l2", random_start=True, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert float(dist(a, x, "l2").min()) > 0  # zero gradient: only the random start moved it
    assert_in_ball(a, x, 0.5, "l2")


# ----------------------------------------------------------------------------- FGM / PGD / N-targeted identities
@given(eps=st.floats(0.01, 2.0), norm=norms, targeted=st.booleans(), seed=seeds)
def test_fgm_equals_one_step_pgd_with_alpha_eps(eps, norm, targeted, seed):
    x, y = images(4, SHAPE, seed), labels(4, 10, seed)
    t = random_target_classes(y, 10, torch.Generator().manual_seed(seed)) if targeted else None
    a = fgm(CNN, x, y, eps, norm, target_classes=t)
    b = pgd(CNN, x, y, eps, eps, 1, norm, target_classes=t)
    assert float((a - b).abs().max()) <= 1e-6


@given(
    eps=st.floats(0.0, 2.0),
    alpha=st.floats(0.01, 1.0),
    steps=st.integers(1, 3),
    norm=norms,
    random_start=st.booleans(),
    seed=seeds,
)
def test_n_targeted_with_one_model_is_targeted_pgd(eps, alpha, steps, norm, random_start, seed):
    x, y = images(3, SHAPE, seed), labels(3, 10, seed)
    t = random_target_classes(y, 10, torch.Generator().manual_seed(seed))
    a = n_targeted_pgd([CNN], x, [t], eps, alpha, steps, norm, random_start=random_start, seed=seed)
    b = pgd(CNN, x, y, eps, alpha, steps, norm, target_classes=t, random_start=random_start, seed=seed)
    assert torch.equal(a, b)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_n_targeted_with_a_model_twice_is_targeted_pgd(norm):
    """sum_i L(f_i) with f_1 = f_2 and t_1 = t_2 is 2 L(f): the same direction, the same AEs."""
    x, y = images(4, SHAPE, 11), labels(4, 10, 11)
    t = random_target_classes(y, 10, torch.Generator().manual_seed(11))
    a = n_targeted_pgd([CNN, CNN], x, [t, t], 1.0, 0.2, 3, norm)
    b = pgd(CNN, x, y, 1.0, 0.2, 3, norm, target_classes=t)
    assert float((a - b).abs().max()) <= 1e-6


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_n_targeted_step_descends_the_summed_loss(norm):
    """Eq. 5: one step goes along -d(grad sum_i CE(f_i(x), t_i)), using every model's gradient."""
    x, y = images(4, SHAPE, 12, low=0.2, high=0.8), labels(4, 10, 12)
    g = torch.Generator().manual_seed(12)
    t1, t2 = random_target_classes(y, 10, g), random_target_classes(y, 10, g)
    alpha = 0.05
    xr = x.clone().requires_grad_(True)
    loss = F.cross_entropy(CNN(xr), t1, reduction="sum") + F.cross_entropy(CNN2(xr), t2, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xr)
    if norm == "l2":
        d = grad.double() / grad.double().flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    else:
        d = grad.sign().double()
    expected = (x.double() - alpha * d).float()
    got = n_targeted_pgd([CNN, CNN2], x, [t1, t2], 10.0, alpha, 1, norm)
    assert float((got - expected).abs().max()) <= 1e-6
    # and it is not the attack on either model alone
    only1 = pgd(CNN, x, y, 10.0, alpha, 1, norm, target_classes=t1)
    assert float((got - only1).abs().max()) > 1e-4


@given(norm=norms, targeted=st.booleans(), seed=seeds, steps=st.integers(1, 3))
def test_result_does_not_depend_on_batch_split(norm, targeted, seed, steps):
    x, y = images(6, SHAPE, seed), labels(6, 10, seed)
    t = random_target_classes(y, 10, torch.Generator().manual_seed(seed))
    if targeted:
        whole = pgd(CNN, x, y, 0.5, 0.1, steps, norm, target_classes=t)
        split = map_batches(
            lambda xb, yb, tb: pgd(CNN, xb, yb, 0.5, 0.1, steps, norm, target_classes=tb), x, y, t, batch_size=4
        )
        whole_f = fgm(CNN, x, y, 0.5, norm, target_classes=t)
        split_f = torch.cat(
            [
                fgm(CNN, x[:3], y[:3], 0.5, norm, target_classes=t[:3]),
                fgm(CNN, x[3:], y[3:], 0.5, norm, target_classes=t[3:]),
            ]
        )
    else:
        whole = pgd(CNN, x, y, 0.5, 0.1, steps, norm)
        split = torch.cat(
            [pgd(CNN, x[:3], y[:3], 0.5, 0.1, steps, norm), pgd(CNN, x[3:], y[3:], 0.5, 0.1, steps, norm)]
        )
        whole_f = fgm(CNN, x, y, 0.5, norm)
        split_f = map_batches(lambda xb, yb: fgm(CNN, xb, yb, 0.5, norm), x, y, batch_size=1)
    assert float((whole - split).abs().max()) <= 1e-6
    assert float((whole_f - split_f).abs().max()) <= 1e-6


def test_eval_mode_batch_independence_with_batchnorm_model_in_train_mode():
    """A BN + dropout model handed over in train mode is attacked in eval mode, so each
    sample's AE does not depend on its batch-mates (train-mode BN would mix them)."""
    model = bn_dropout_cnn(seed=3).train()
    x, y = images(6, SHAPE, 13), labels(6, 10, 13)
    whole = pgd(model, x, y, 0.5, 0.1, 2, "l2")
    split = torch.cat([pgd(model, x[:2], y[:2], 0.5, 0.1, 2, "l2"), pgd(model, x[2:], y[2:], 0.5, 0.1, 2, "l2")])
    assert float((whole - split).abs().max()) <= 1e-6


# ----------------------------------------------------------------------------- the objective moves the right way
CNN64 = smooth_cnn(10, seed=4, dtype=torch.float64)


@given(norm=norms, seed=seeds)
def test_small_targeted_step_lowers_target_loss(norm, seed):
    x, y = images(4, SHAPE, seed, low=0.1, high=0.9, dtype=torch.float64), labels(4, 10, seed)
    t = random_target_classes(y, 10, torch.Generator().manual_seed(seed))
    alpha = 1e-4
    x_adv = pgd(CNN64, x, y, 1.0, alpha, 1, norm, target_classes=t)
    assert x_adv.dtype == torch.float64
    assert (ce(CNN64, x_adv, t) < ce(CNN64, x, t)).all()
    x_f = fgm(CNN64, x, y, alpha, norm, target_classes=t)
    assert (ce(CNN64, x_f, t) < ce(CNN64, x, t)).all()


@given(norm=norms, seed=seeds)
def test_small_untargeted_step_raises_true_label_loss(norm, seed):
    x, y = images(4, SHAPE, seed, low=0.1, high=0.9, dtype=torch.float64), labels(4, 10, seed)
    alpha = 1e-4
    x_adv = pgd(CNN64, x, y, 1.0, alpha, 1, norm)
    assert (ce(CNN64, x_adv, y) > ce(CNN64, x, y)).all()
    x_f = fgm(CNN64, x, y, alpha, norm)
    assert (ce(CNN64, x_f, y) > ce(CNN64, x, y)).all()


def test_pgd_attack_succeeds_more_than_clean():
    """A sanity check of strength: 10-step PGD (eps=1, l2) lowers the smooth CNN's accuracy on its own predictions."""
    x = images(8, SHAPE, 14)
    with torch.no_grad():
        y = CNN(x).argmax(1)
    x_adv = pgd(CNN, x, y, 1.0, 0.2, 10, "l2")
    with torch.no_grad():
        acc = float((CNN(x_adv).argmax(1) == y).float().mean())
    assert acc < 0.5


# ----------------------------------------------------------------------------- zero and tiny gradients
@pytest.mark.parametrize("model", [ZeroGradModel(), DeadReluModel(10, DIM)], ids=["zero", "deadrelu"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_zero_gradient_leaves_image_unchanged(model, norm):
    """A gradient that exists but is zero (x is in the graph): the image stays put. A model that
    never reads x has no gradient at all, and is refused (next test)."""
    x, y = images(3, SHAPE, 15), labels(3, 10, 15)
    t = random_target_classes(y, 10, torch.Generator().manual_seed(15))
    for out in (
        fgm(model, x, y, 0.5, norm),
        fgm(model, x, y, 0.5, norm, target_classes=t),
        pgd(model, x, y, 0.5, 0.1, 3, norm),
        pgd(model, x, y, 0.5, 0.1, 3, norm, target_classes=t),
        n_targeted_pgd([model, model], x, [t, y], 0.5, 0.1, 2, norm),
    ):
        assert not torch.isnan(out).any()
        assert torch.equal(out, x)


def test_a_model_that_never_reads_its_input_is_refused_not_left_in_place():
    x, y = images(3, SHAPE, 15), labels(3, 10, 15)
    for attack in (
        lambda: fgm(ConstantModel(), x, y, 0.5),
        lambda: pgd(ConstantModel(), x, y, 0.5, 0.1, 3),
        lambda: n_targeted_pgd([CNN, ConstantModel()], x, [y, y], 0.5, 0.1, 2),
    ):
        with pytest.raises(ValueError, match=r"logits do not depend on its input in autograd's graph"):
            attack()


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1.0, 1e20, 1e30])
def test_unit_direction_has_unit_l2_norm_at_any_scale(scale):
    g = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(16)) * scale
    g[1] = 0.0
    d = unit_direction(g, "l2")
    assert torch.isfinite(d).all()
    n = d.flatten(1).double().norm(dim=1)
    assert abs(float(n[0]) - 1) < 1e-5 and abs(float(n[2]) - 1) < 1e-5
    assert float(n[1]) == 0.0
    # the direction itself does not change with scale
    ref = g.double() / g.double().flatten(1).norm(dim=1).clamp_min(1e-300).view(-1, 1, 1, 1)
    assert float((d.double() - ref).abs().max()) < 1e-6
    assert torch.equal(unit_direction(g, "linf"), g.sign())


def test_pgd_with_tiny_gradients_still_takes_full_steps():
    """Logits scaled by 1e-30: grad_x ~ 1e-30 (squares underflow in float32), yet each l2 step
    has length alpha along the 2-class closed-form direction."""
    base = LinearClassifier.random(2, DIM, seed=17, scale=0.1)
    model = Scaled(base, 1e-30)
    x = images(3, SHAPE, 17, low=0.3, high=0.7)
    y = torch.tensor([0, 1, 0])
    out = pgd(model, x, y, eps=10.0, alpha=0.05, steps=2, norm="l2")
    assert torch.isfinite(out).all()
    W = base.W64
    for i in range(3):
        u = W[1 - int(y[i])] - W[int(y[i])]
        u = u / u.norm()
        assert float((out[i].flatten().double() - x[i].flatten().double() - 0.1 * u).abs().max()) < 1e-6


# ----------------------------------------------------------------------------- closed form on linear classifiers
def _ce_grad(W, b, x, label):
    """grad_x CE(Wx + b, label) = W^T (softmax - onehot), float64, one flattened image."""
    p = torch.softmax(W @ x + b, 0)
    p[label] -= 1
    return W.T @ p


@given(K=st.integers(2, 5), eps=st.floats(0.01, 0.2), targeted=st.booleans(), seed=seeds)
def test_linear_fgm_l2_closed_form(K, eps, targeted, seed):
    model = LinearClassifier.random(K, DIM, seed, scale=0.1)
    W, b = model.W64, model.b64
    x = images(3, SHAPE, seed, low=0.3, high=0.7)  # interior: |step| <= 0.2 per pixel, no clipping
    y = labels(3, K, seed)
    t = (y + 1) % K
    out = fgm(model, x, y, eps, "l2", target_classes=t if targeted else None)
    for i in range(3):
        xi = x[i].flatten().double()
        if targeted:
            g = -_ce_grad(W, b, xi, int(t[i]))
        else:
            g = _ce_grad(W, b, xi, int(y[i]))
        expected = xi + eps * g / g.norm()
        assert float((out[i].flatten().double() - expected).abs().max()) < 1e-5


@given(K=st.integers(2, 5), eps=st.floats(0.01, 0.2), seed=seeds)
def test_linear_fgsm_linf_closed_form(K, eps, seed):
    model = LinearClassifier.random(K, DIM, seed, scale=0.1)
    W, b = model.W64, model.b64
    x = images(3, SHAPE, seed, low=0.3, high=0.7)
    y = labels(3, K, seed)
    out = fgm(model, x, y, eps, "linf")
    for i in range(3):
        xi = x[i].flatten().double()
        g = _ce_grad(W, b, xi, int(y[i]))
        clear = g.abs() > 1e-4 * g.abs().max()  # skip coordinates whose sign float32 cannot resolve
        expected = xi + eps * g.sign()
        assert float((out[i].flatten().double() - expected)[clear].abs().max()) < 1e-6


@given(eps=st.floats(0.01, 0.25), steps=st.integers(1, 5), frac=st.floats(0.2, 3.0), targeted=st.booleans(), seed=seeds)
def test_linear_two_class_pgd_moves_min_eps_steps_alpha_along_fixed_direction(eps, steps, frac, targeted, seed):
    """Two classes: grad_x CE is proportional to w_other - w_true everywhere, so l2 PGD from an
    interior point moves exactly min(eps, steps * alpha) along (w_o - w_y) / ||w_o - w_y||."""
    alpha = frac * eps / steps
    model = LinearClassifier.random(2, DIM, seed, scale=0.1)
    W = model.W64
    x = images(3, SHAPE, seed, low=0.3, high=0.7)
    y = labels(3, 2, seed)
    out = pgd(model, x, y, eps, alpha, steps, "l2", target_classes=(1 - y) if targeted else None)
    moved = min(eps, steps * alpha)
    for i in range(3):
        u = W[1 - int(y[i])] - W[int(y[i])]
        expected = x[i].flatten().double() + moved * u / u.norm()
        assert float((out[i].flatten().double() - expected).abs().max()) < 2e-6


def test_linear_clipping_is_applied_after_projection():
    """A point at the corner of the box: x' = clip(x + eps u), the clip removes the outward part."""
    W = torch.zeros(2, DIM)
    W[1, 0] = 1.0  # class 1 grows with pixel 0, class 0 constant
    W[1, 1] = -1.0  # and shrinks with pixel 1
    model = LinearClassifier(W, torch.tensor([0.0, 0.0]))
    x = torch.full((1, *SHAPE), 0.5)
    x.view(-1)[0] = 0.95
    y = torch.tensor([0])
    out = fgm(model, x, y, 0.5, "l2")  # direction (w1 - w0)/||.|| = (1, -1)/sqrt(2) on pixels 0, 1
    step = 0.5 / math.sqrt(2)
    assert abs(float(out.view(-1)[0]) - 1.0) < 1e-7  # clipped at 1
    assert abs(float(out.view(-1)[1]) - (0.5 - step)) < 1e-6
    assert torch.equal(out.view(-1)[2:], x.view(-1)[2:])


# ----------------------------------------------------------------------------- side effects
def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("training", [True, False])
def test_model_mode_params_and_input_are_left_alone(training):
    model = bn_dropout_cnn(seed=5).train(training)
    before = _snapshot(model)
    x, y = images(4, SHAPE, 18), labels(4, 10, 18)
    x_copy = x.clone()
    t = random_target_classes(y, 10, torch.Generator().manual_seed(18))
    outs = [
        fgm(model, x, y, 0.5, "l2"),
        fgm(model, x, y, 0.05, "linf", target_classes=t),
        pgd(model, x, y, 0.5, 0.1, 2, "l2"),
        pgd(model, x, y, 0.05, 0.01, 2, "linf", target_classes=t, random_start=True),
        n_targeted_pgd([model, CNN], x, [t, y], 0.5, 0.1, 2, "l2"),
    ]
    assert all(m.training == training for m in model.modules())
    assert not CNN.training
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is None for p in CNN.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats untouched
    assert torch.equal(x, x_copy)
    for out in outs:
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        assert not out.requires_grad
    # eval mode inside: dropout is off, so a repeat gives the same AEs
    assert torch.equal(pgd(model, x, y, 0.5, 0.1, 2, "l2"), outs[2])


def test_input_requiring_grad_is_not_mutated_and_float64_kept():
    x = images(2, SHAPE, 19, dtype=torch.float64).requires_grad_(True)
    x_copy = x.detach().clone()
    y = labels(2, 10, 19)
    out = pgd(CNN64, x, y, 0.5, 0.1, 2, "linf")
    out2 = fgm(CNN64, x, y, 0.5, "l2")
    assert torch.equal(x.detach(), x_copy) and x.grad is None
    assert out.dtype == out2.dtype == torch.float64
    assert all(p.grad is None for p in CNN64.parameters())


# ----------------------------------------------------------------------------- argument validation
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(eps=-0.1),
        dict(eps=float("nan")),
        dict(eps=float("inf")),
        dict(alpha=0.0),
        dict(alpha=-1.0),
        dict(steps=0),
        dict(steps=-2),
        dict(norm="l1"),
        dict(norm="L2"),
    ],
)
def test_bad_arguments_raise(kwargs):
    x, y = images(2, SHAPE, 20), labels(2, 10, 20)
    args = dict(eps=0.5, alpha=0.1, steps=2, norm="l2") | kwargs
    with pytest.raises(ValueError):
        pgd(CNN, x, y, **args)
    with pytest.raises(ValueError):
        n_targeted_pgd([CNN], x, [y], **args)
    if "alpha" not in kwargs and "steps" not in kwargs:
        with pytest.raises(ValueError):
            fgm(CNN, x, y, args["eps"], args["norm"])


def test_n_targeted_needs_one_target_per_model():
    x, y = images(2, SHAPE, 21), labels(2, 10, 21)
    with pytest.raises(ValueError):
        n_targeted_pgd([CNN, CNN2], x, [y], 0.5, 0.1, 1)
    with pytest.raises(ValueError):
        n_targeted_pgd([CNN], x, [y, y], 0.5, 0.1, 1)
    with pytest.raises(ValueError):
        n_targeted_pgd([], x, [], 0.5, 0.1, 1)


def test_project():
    d = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(22))
    d[0] *= 1e-3  # inside the ball: unchanged
    p = project(d, 0.5, "l2")
    assert torch.equal(p[0], d[0])
    n = p.flatten(1).norm(dim=1)
    assert abs(float(n[1]) - 0.5) < 1e-6 and abs(float(n[2]) - 0.5) < 1e-6
    assert torch.allclose(p[1] / n[1], d[1] / d[1].norm(), atol=1e-6)  # same direction
    assert torch.equal(project(d, 0.3, "linf"), d.clamp(-0.3, 0.3))
    assert torch.equal(project(torch.zeros(2, *SHAPE), 0.0, "l2"), torch.zeros(2, *SHAPE))


# ----------------------------------------------------------------------------- random targets
def test_random_target_classes_never_true_and_uniform_over_others():
    n = 9000
    y = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(23))
    t = random_target_classes(y, 10, torch.Generator().manual_seed(24))
    assert not (t == y).any()
    assert t.min() >= 0 and t.max() <= 9 and t.dtype == y.dtype
    # y fixed: the 9 other classes equally often (chi-square, 8 dof; p < 1e-6 is about 45)
    y0 = torch.full((n,), 3)
    t0 = random_target_classes(y0, 10, torch.Generator().manual_seed(25))
    counts = torch.bincount(t0, minlength=10).double()
    assert counts[3] == 0
    others = counts[torch.arange(10) != 3]
    chi2 = float(((others - n / 9) ** 2 / (n / 9)).sum())
    assert chi2 < 60, (chi2, counts.tolist())
    # offsets (t - y) mod 10 uniform over 1..9 for random y too
    off = torch.bincount((t - y) % 10, minlength=10).double()
    assert off[0] == 0
    chi2 = float(((off[1:] - n / 9) ** 2 / (n / 9)).sum())
    assert chi2 < 60, (chi2, off.tolist())


def test_random_target_classes_including_true_covers_all_classes():
    n = 10000
    y0 = torch.full((n,), 7)
    t = random_target_classes(y0, 10, torch.Generator().manual_seed(26), exclude_true=False)
    counts = torch.bincount(t, minlength=10).double()
    assert (counts > 0).all()
    chi2 = float(((counts - n / 10) ** 2 / (n / 10)).sum())
    assert chi2 < 65, (chi2, counts.tolist())


def test_random_target_classes_reproducible_from_seed():
    y = labels(200, 10, 27)
    for exclude in (True, False):
        a = random_target_classes(y, 10, torch.Generator().manual_seed(5), exclude_true=exclude)
        b = random_target_classes(y, 10, torch.Generator().manual_seed(5), exclude_true=exclude)
        c = random_target_classes(y, 10, torch.Generator().manual_seed(6), exclude_true=exclude)
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_target_classes_validation():
    with pytest.raises(ValueError):
        random_target_classes(torch.tensor([0, 10]), 10)
    with pytest.raises(ValueError):
        random_target_classes(torch.tensor([-1, 0]), 10)
    with pytest.raises(ValueError):
        random_target_classes(torch.tensor([0, 0]), 1)
    t = random_target_classes(torch.tensor([0, 1, 1, 0]), 2)  # two classes: the target is the other one
    assert torch.equal(t, torch.tensor([1, 0, 0, 1]))


# ----------------------------------------------------------------------------- agreement with torchattacks
def _torchattacks():
    try:
        import torchattacks
    except Exception as e:  # pragma: no cover - reported as a failure, never skipped
        pytest.fail(f"torchattacks could not be imported with torch {torch.__version__}: {e!r}")
    return torchattacks


# a curved model (gain 10: the gradient direction turns by up to ~30 degrees over the attack),
# attacked at its own predictions, so that details of the algorithm show in the result
TA_MODEL = smooth_cnn(10, width=8, seed=31, pool=8, gain=10.0)
TA_X = images(16, (3, 32, 32), 32)
with torch.no_grad():
    TA_Y = TA_MODEL(TA_X).argmax(1)


def _report(name, ours, theirs):
    diff = float((ours - theirs).abs().max())
    print(f"\n[torchattacks agreement] {name}: max |ours - torchattacks| = {diff:.3e}")
    assert diff < 1e-4, (name, diff)
    return diff


def test_pgd_l2_matches_torchattacks():
    ta = _torchattacks()
    theirs = ta.PGDL2(TA_MODEL, eps=1.0, alpha=0.2, steps=10, random_start=False)(TA_X, TA_Y)
    ours = pgd(TA_MODEL, TA_X, TA_Y, 1.0, 0.2, 10, "l2")
    assert float((ours - TA_X).flatten(1).norm(dim=1).max()) > 0.5  # the attack actually moved
    with torch.no_grad():
        assert float((TA_MODEL(ours).argmax(1) != TA_Y).float().mean()) > 0.5  # and fooled the model
    _report("PGD l2 eps=1.0 alpha=0.2 steps=10", ours, theirs)


def test_fgm_l2_matches_torchattacks_one_step_pgdl2():
    ta = _torchattacks()
    theirs = ta.PGDL2(TA_MODEL, eps=1.0, alpha=1.0, steps=1, random_start=False)(TA_X, TA_Y)
    ours = fgm(TA_MODEL, TA_X, TA_Y, 1.0, "l2")
    _report("FGM l2 eps=1.0 (PGDL2 steps=1 alpha=eps)", ours, theirs)


def test_pgd_linf_matches_torchattacks():
    ta = _torchattacks()
    theirs = ta.PGD(TA_MODEL, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)(TA_X, TA_Y)
    ours = pgd(TA_MODEL, TA_X, TA_Y, 8 / 255, 2 / 255, 10, "linf")
    _report("PGD linf eps=8/255 alpha=2/255 steps=10", ours, theirs)


def test_targeted_pgd_l2_matches_torchattacks():
    ta = _torchattacks()
    t = random_target_classes(TA_Y, 10, torch.Generator().manual_seed(33))
    atk = ta.PGDL2(TA_MODEL, eps=1.0, alpha=0.2, steps=10, random_start=False)
    atk.set_mode_targeted_by_label(quiet=True)
    theirs = atk(TA_X, t)
    ours = pgd(TA_MODEL, TA_X, TA_Y, 1.0, 0.2, 10, "l2", target_classes=t)
    _report("targeted PGD l2 eps=1.0 alpha=0.2 steps=10", ours, theirs)


def test_n_targeted_pgd_with_one_model_matches_torchattacks_targeted_pgdl2():
    """Eq. 5 with N = 1 against an independent implementation (not our own PGD loop)."""
    ta = _torchattacks()
    t = random_target_classes(TA_Y, 10, torch.Generator().manual_seed(34))
    atk = ta.PGDL2(TA_MODEL, eps=1.0, alpha=0.1, steps=10, random_start=False)
    atk.set_mode_targeted_by_label(quiet=True)
    ours = n_targeted_pgd([TA_MODEL], TA_X, [t], 1.0, 0.1, 10, "l2")
    _report("N-targeted PGD l2, one model, eps=1.0 alpha=0.1 steps=10", ours, atk(TA_X, t))


def test_torchattacks_agreement_is_not_vacuous():
    """The comparison can fail: nearby variants of the attack differ by far more than 1e-4."""
    ta = _torchattacks()
    theirs = ta.PGDL2(TA_MODEL, eps=1.0, alpha=0.2, steps=10, random_start=False)(TA_X, TA_Y)
    for variant in (
        pgd(TA_MODEL, TA_X, TA_Y, 1.0, 0.1, 10, "l2"),  # other step size
        pgd(TA_MODEL, TA_X, TA_Y, 1.0, 0.2, 9, "l2"),  # one step fewer
        fgm(TA_MODEL, TA_X, TA_Y, 1.0, "l2"),  # single step
    ):
        assert float((variant - theirs).abs().max()) > 1e-3
