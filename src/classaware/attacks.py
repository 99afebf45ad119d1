"""Gradient attacks of the paper (section 3.1.2, eqs. 2, 3, 5) for any classifier of [0, 1] images.

Non-targeted attacks ascend the cross-entropy of the true label, L(f(x'), y) (eq. 2);
targeted attacks descend the cross-entropy of the target, L(f(x'), t) (eq. 3); the
N-targeted attack descends sum_i L(f_i(x'), t_i) (eq. 5). All are bounded by ||x' - x|| <= eps
in l2 (the paper's) or linf, and x' stays in [0, 1].

One step with gradient g of the objective, from the current x_k:

    x_{k+1} = clip_[0,1]( x + P_eps( x_k + s * alpha * d(g) - x ) )

with s = +1 (ascend) or -1 (descend), d(g) = g / ||g||_2 per sample for l2 and sign(g) for
linf, P_eps the projection onto the eps-ball (rescaling for l2, clamping for linf). Order:
project, then clip. Clipping moves each coordinate toward x (which lies in [0, 1]), so the
result satisfies both constraints. A zero gradient gives d(g) = 0 (the image stays put); the
l2 normalisation rescales by max|g| first, so tiny gradients give exact unit steps, with no
norm floor. No random start unless asked: the paper states none.

The eps bound holds up to rounding in the work dtype (below), measured exactly: with u its
machine epsilon (``torch.finfo(dtype).eps``, 2^-23 for float32) and D the values per image,

    ||x' - x||_2 <= eps (1 + 128 u) + sqrt(D) u / 4,    ||x' - x||_inf <= eps (1 + 128 u) + u / 4.

Each coordinate of x' carries one rounding of x + delta (at most u / 4 for values in [0, 1]),
and eps and the projection's rescaling a few roundings of their own. An exact bound would need
a last correction step that changes the bits of examples already computed, so this is the
promise; images returned in a narrower dtype (float16, bfloat16) are rounded toward x, so it
holds for them too.

Models run in eval mode, and every submodule gets its own mode back; gradients are taken with
respect to the input only (``torch.autograd.grad``), so parameter ``.grad`` is never computed or
touched, and neither the input tensor nor its ``.grad`` is ever written to, not even by a model
that writes into its input (it gets a copy). Work happens on the model's device, in the widest
of float32, the images' dtype and the models' dtypes; the result is returned on the input's
device in its dtype. Labels may be of any integer dtype. An empty batch gives an empty result
without calling the model. The attacks work inside ``torch.no_grad()`` and
``torch.inference_mode()``; a model without a gradient path to its input, with logits or
gradients that are not finite, or with one logit, is refused: :mod:`classaware.contracts` has
what is accepted and refused, and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from .contracts import (
    as_bool,
    as_int,
    as_labels,
    as_model_list,
    as_number,
    check_images,
    check_model,
    eval_mode,
    model_device,
    narrowed,
    num_classes,
    work_dtype,
)
from .contracts import loss_gradient as loss_gradient

Norm = Literal["l2", "linf"]
NORMS = ("l2", "linf")


def _options(eps, norm, alpha=None, steps=None, random_start=False, seed=0) -> tuple:
    """The attack options checked (ValueError naming the one that is wrong) and as Python values."""
    eps = as_number(eps, "eps")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if alpha is not None:
        alpha = as_number(alpha, "alpha")
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
    if steps is not None:
        steps = as_int(steps, "steps", 1)
    return eps, alpha, steps, as_bool(random_start, "random_start"), as_int(seed, "seed")


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample l2 norm, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def unit_direction(g: torch.Tensor, norm: Norm = "l2") -> torch.Tensor:
    """d(g): g / ||g||_2 per sample (l2) or sign(g) (linf); all-zero rows give zero.

    For l2 the row is first divided by its max |g|, so gradients of any magnitude, even
    ones whose squares underflow, give a direction of norm 1 without a norm floor.
    """
    if norm == "linf":
        return g.sign()
    scale = g.abs().flatten(1).amax(dim=1).view(-1, *([1] * (g.dim() - 1)))
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    g = g / safe
    n = _flat_norm(g)
    return torch.where(n > 0, g / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(g))


def project(delta: torch.Tensor, eps: float, norm: Norm = "l2") -> torch.Tensor:
    """P_eps(delta): the closest point of the eps-ball, per sample."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = _flat_norm(delta)
    return torch.where(n > eps, delta * (eps / torch.where(n > 0, n, torch.ones_like(n))), delta)


def _labels(
    models: Sequence[nn.Module], x: torch.Tensor, labels: Sequence[torch.Tensor], names: Sequence[str]
) -> list[torch.Tensor]:
    """The library's contract (see :mod:`classaware.contracts`), checked before any gradient:
    images, then each model on one image (the probe), then its labels; the labels as int64."""
    check_images(x)
    classes: dict[int, int] = {}  # each model probed once
    out = []
    for model, label, name in zip(models, labels, names, strict=True):
        if len(x) and id(model) not in classes:
            classes[id(model)] = num_classes(model, x)
        out.append(as_labels(label, len(x), classes.get(id(model)), name))
    return out


def _labels_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target_classes: torch.Tensor | None) -> torch.Tensor:
    """The labels the loss of :func:`fgm` and :func:`pgd` uses: y, or the target classes (y is
    checked all the same: a targeted attack does not use it, but a caller passing bad labels has
    made a mistake worth hearing about)."""
    if target_classes is None:
        return _labels([model], x, [y], ["y"])[0]
    return _labels([model, model], x, [y, target_classes], ["y", "target_classes"])[1]


def _random_start(x: torch.Tensor, eps: float, norm: Norm, seed: int) -> torch.Tensor:
    """x + a point drawn uniformly from the eps-ball (then clipped to [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    if norm == "linf":
        delta = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
    else:
        d = math.prod(x.shape[1:])
        direction = unit_direction(torch.randn(x.shape, generator=g))
        radius = eps * torch.rand(len(x), generator=g).pow(1 / d).view(-1, *([1] * (x.dim() - 1)))
        delta = direction * radius
    return (x + delta.to(x.device)).clamp(0, 1)


def _pgd(models, x, labels, sign: float, eps, alpha, steps, norm, random_start, seed, names) -> torch.Tensor:
    """The shared loop of :func:`pgd` and :func:`n_targeted_pgd` (see the module docstring)."""
    if len(x) == 0:  # nothing to attack: no model is called on an empty batch
        return x.detach().clone()
    device = model_device(models[0], x.device)
    x0 = x.detach().to(device, work_dtype(models, x))
    labels = [t.to(device) for t in labels]
    x_adv = _random_start(x0, eps, norm, seed) if random_start else x0.clone()
    with eval_mode(*models):
        for _ in range(steps):
            step = sign * alpha * unit_direction(loss_gradient(models, x_adv, labels, names), norm)
            x_adv = (x0 + project(x_adv + step - x0, eps, norm)).clamp(0, 1)
    return narrowed(x_adv, x)


def fgm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: Norm = "l2",
    target_classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fast gradient method, one full step: x' = clip_[0,1](x + s * eps * d(grad_x L)).

    Non-targeted (``target_classes=None``): s = +1, L = CE(f(x), y) (eq. 2). Targeted: s = -1,
    L = CE(f(x), target_classes) (eq. 3). For linf this is FGSM. The module docstring has the
    rule; :mod:`classaware.contracts` what is accepted and refused.

    Arguments:
        model (nn.Module): a classifier of images in [0, 1] returning (N, num_classes) logits.
        x (Tensor): the images to attack; never written to.
        y (Tensor): their true labels.
        eps (float): the step, and the radius of the ball: ||x' - x|| <= eps in pixel units of
            [0, 1] images (up to one rounding per coordinate, see the module docstring).
        norm (str): ``"l2"`` (the paper's) or ``"linf"``. Default: ``"l2"``.
        target_classes (Tensor, optional): per-image target classes for the targeted attack.
            Default: None (non-targeted).

    Shape:
        - x: (N, C, H, W) floating images in [0, 1], any floating dtype, C the channels the model
          takes.
        - y, target_classes: (N,) integer labels (any integer dtype) in 0..num_classes-1.
        - output: like x, in x's dtype and on x's device.

    Examples::

        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
        >>> x_adv = fgm(f, x, y, eps=0.5)
        >>> x_adv.shape, bool(((x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-6).all())
        (torch.Size([4, 3, 8, 8]), True)
    """
    check_model(model)
    eps, *_ = _options(eps, norm)
    sign = 1.0 if target_classes is None else -1.0
    label = _labels_of(model, x, y, target_classes)
    if len(x) == 0:  # nothing to attack: the model is not called on an empty batch
        return x.detach().clone()
    device = model_device(model, x.device)
    x0 = x.detach().to(device, work_dtype([model], x))
    with eval_mode(model):
        g = loss_gradient([model], x0, [label.to(device)])
    return narrowed((x0 + sign * eps * unit_direction(g, norm)).clamp(0, 1), x)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    norm: Norm = "l2",
    target_classes: torch.Tensor | None = None,
    random_start: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al.): ``steps`` steps of size ``alpha`` inside the
    eps-ball, ascending CE(f(x'), y) (eq. 2) or, with ``target_classes``, descending CE(f(x'), t)
    (eq. 3). The module docstring has the step rule.

    Arguments:
        model (nn.Module): a classifier of images in [0, 1] returning (N, num_classes) logits.
        x (Tensor): the images to attack; never written to.
        y (Tensor): their true labels.
        eps (float): radius of the ball, ||x' - x|| <= eps (pixel units of [0, 1] images, up to
            one rounding per coordinate).
        alpha (float): step size, same units (> 0).
        steps (int): number of steps (>= 1).
        norm (str): ``"l2"`` (the paper's) or ``"linf"``. Default: ``"l2"``.
        target_classes (Tensor, optional): per-image target classes (targeted attack). Default:
            None.
        random_start (bool): start from a point drawn uniformly from the ball. Default: False
            (the paper states none).
        seed (int): seed of that draw (a private CPU generator; the global RNG is untouched).
            Default: 0.

    Shape:
        - x: (N, C, H, W) floating images in [0, 1], any floating dtype, C the channels the model
          takes.
        - y, target_classes: (N,) integer labels (any integer dtype) in 0..num_classes-1.
        - output: like x, in x's dtype and on x's device.

    Examples::

        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
        >>> x_adv = pgd(f, x, y, eps=0.5, alpha=0.1, steps=10)
        >>> bool(((x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-6).all()), x_adv.dtype
        (True, torch.float32)
        >>> t = random_target_classes(y, num_classes=10, generator=torch.Generator().manual_seed(0))
        >>> pgd(f, x, y, eps=0.5, alpha=0.1, steps=10, target_classes=t).shape
        torch.Size([4, 3, 8, 8])
    """
    check_model(model)
    eps, alpha, steps, random_start, seed = _options(eps, norm, alpha, steps, random_start, seed)
    sign = 1.0 if target_classes is None else -1.0
    label = _labels_of(model, x, y, target_classes)
    return _pgd([model], x, [label], sign, eps, alpha, steps, norm, random_start, seed, ["model"])


def n_targeted_pgd(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    target_classes: Sequence[torch.Tensor],
    eps: float,
    alpha: float,
    steps: int,
    norm: Norm = "l2",
    random_start: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """The N-targeted attack (eq. 5): PGD descending sum_i CE(f_i(x'), t_i), leading each model
    f_i toward its own per-sample target classes t_i. With one model it is targeted :func:`pgd`.

    Arguments:
        models (list of nn.Module): the models f_1..f_M (a list or tuple; one model is ``[f]``).
        x (Tensor): the images; never written to.
        target_classes (list of Tensor): t_1..t_M, one tensor of per-image targets per model.
        eps (float): radius of the ball (pixel units of [0, 1] images).
        alpha (float): step size (> 0).
        steps (int): number of steps (>= 1).
        norm (str): ``"l2"`` or ``"linf"``. Default: ``"l2"``.
        random_start (bool): start from a uniform point of the ball. Default: False.
        seed (int): seed of that draw. Default: 0.

    Shape:
        - x: (N, C, H, W) floating images in [0, 1].
        - target_classes: M tensors of shape (N,), integer labels of each model's classes.
        - output: like x, in x's dtype and on x's device.

    Examples::

        >>> f1 = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> f2 = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x = torch.rand(4, 3, 8, 8)
        >>> t1, t2 = torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8])
        >>> n_targeted_pgd([f1, f2], x, [t1, t2], eps=1.0, alpha=0.2, steps=5).shape
        torch.Size([4, 3, 8, 8])
    """
    models = as_model_list(models)
    if isinstance(target_classes, torch.Tensor) and target_classes.dim() != 2:
        raise ValueError(
            f"target_classes must be a list of one label tensor per model (or an (M, N) tensor), "
            f"got a tensor of shape {tuple(target_classes.shape)}"
        )
    if len(models) == 0 or len(models) != len(target_classes):
        raise ValueError(
            f"need one tensor of target classes per model, got {len(models)} models and {len(target_classes)}"
        )
    eps, alpha, steps, random_start, seed = _options(eps, norm, alpha, steps, random_start, seed)
    names = [f"models[{i}]" for i in range(len(models))]
    labels = _labels(models, x, list(target_classes), [f"target_classes[{i}]" for i in range(len(models))])
    return _pgd(models, x, labels, -1.0, eps, alpha, steps, norm, random_start, seed, names)


def random_target_classes(
    y: torch.Tensor, num_classes: int = 10, generator: torch.Generator | None = None, exclude_true: bool = True
) -> torch.Tensor:
    """Per-sample target classes drawn uniformly, reproducibly from ``generator`` (CPU).

    ``exclude_true=True`` (section 3.2's targeted attacks): uniform over the num_classes - 1
    classes other than y, as t = (y + k) mod C with k uniform in 1..C-1. ``exclude_true=False``
    (section 4.2's non-robust sets): uniform over all C classes, y included.

    Arguments:
        y (Tensor): the true labels, any integer dtype, in 0..num_classes-1.
        num_classes (int): C, the number of classes (>= 2). Default: 10.
        generator (torch.Generator, optional): a CPU generator to draw from. Default: None
            (torch's global one).
        exclude_true (bool): never draw y itself. Default: True.

    Shape:
        - y: (N,).
        - output: (N,) int64 on y's device.

    Examples::

        >>> y = torch.tensor([0, 1, 2, 3])
        >>> t = random_target_classes(y, num_classes=10, generator=torch.Generator().manual_seed(0))
        >>> t.shape, t.dtype, bool((t != y).all())
        (torch.Size([4]), torch.int64, True)
    """
    num_classes = as_int(num_classes, "num_classes", 2)
    exclude_true = as_bool(exclude_true, "exclude_true")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    y = as_labels(y, None, num_classes)
    if not exclude_true:
        return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)
    k = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
    return (y + k) % num_classes
