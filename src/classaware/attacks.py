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

Models run in eval mode, and every submodule gets its own mode back; gradients are taken with
respect to the input only (``torch.autograd.grad``), so parameter ``.grad`` is never computed or
touched, and the input tensor is never mutated. Work happens on the model's device, in the
widest of float32, the images' dtype and the models' dtypes; the result is returned on the
input's device in its dtype, rounded toward x so that the eps bound still holds (see
:mod:`classaware.contracts`). Labels may be of any integer dtype. An empty batch gives an
empty result without calling the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .contracts import as_labels, check_images, eval_mode, logits, model_device, narrowed, num_classes, work_dtype

Norm = Literal["l2", "linf"]
NORMS = ("l2", "linf")


def _validate(eps: float, norm: str, alpha: float | None = None, steps: int | None = None) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if alpha is not None and not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


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
    """The library's contract (see :mod:`classaware.contracts`), checked before any gradient;
    the labels as int64."""
    check_images(x)
    return [
        as_labels(label, len(x), num_classes(model, x) if len(x) else None, name)
        for model, label, name in zip(models, labels, names, strict=True)
    ]


def loss_gradient(models: Sequence[nn.Module], x: torch.Tensor, labels: Sequence[torch.Tensor]) -> torch.Tensor:
    """grad_x sum_i sum_batch CE(f_i(x), labels_i), per sample, in x's dtype (models must be in
    eval mode; each sees x in its own dtype, its loss is summed in x's)."""
    x = x.detach().requires_grad_(True)
    loss = sum(
        F.cross_entropy(logits(m, x).to(x.dtype), t, reduction="sum") for m, t in zip(models, labels, strict=True)
    )
    (g,) = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if g is None else g  # None: the output does not depend on x


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


def _pgd(models, x, labels, sign: float, eps, alpha, steps, norm, random_start, seed) -> torch.Tensor:
    """The shared loop of :func:`pgd` and :func:`n_targeted_pgd` (see the module docstring)."""
    if len(x) == 0:  # nothing to attack: no model is called on an empty batch
        return x.detach().clone()
    device = model_device(models[0], x.device)
    x0 = x.detach().to(device, work_dtype(models, x))
    labels = [t.to(device) for t in labels]
    x_adv = _random_start(x0, eps, norm, seed) if random_start else x0.clone()
    with eval_mode(*models):
        for _ in range(steps):
            step = sign * alpha * unit_direction(loss_gradient(models, x_adv, labels), norm)
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
    L = CE(f(x), target_classes) (eq. 3). For linf this is FGSM.
    """
    _validate(eps, norm)
    label, sign = (y, 1.0) if target_classes is None else (target_classes, -1.0)
    (label,) = _labels([model], x, [label], ["y" if target_classes is None else "target_classes"])
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
    eps-ball, ascending CE(f(x'), y) (eq. 2) or, with ``target_classes``, descending CE(f(x'), t) (eq. 3)."""
    _validate(eps, norm, alpha, steps)
    label, sign = (y, 1.0) if target_classes is None else (target_classes, -1.0)
    labels = _labels([model], x, [label], ["y" if target_classes is None else "target_classes"])
    return _pgd([model], x, labels, sign, eps, alpha, steps, norm, random_start, seed)


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
    f_i toward its own per-sample target classes t_i. With one model it is targeted :func:`pgd`."""
    if len(models) == 0 or len(models) != len(target_classes):
        raise ValueError(
            f"need one tensor of target classes per model, got {len(models)} models and {len(target_classes)}"
        )
    _validate(eps, norm, alpha, steps)
    labels = _labels(models, x, target_classes, [f"target_classes[{i}]" for i in range(len(models))])
    return _pgd(list(models), x, labels, -1.0, eps, alpha, steps, norm, random_start, seed)


def random_target_classes(
    y: torch.Tensor, num_classes: int = 10, generator: torch.Generator | None = None, exclude_true: bool = True
) -> torch.Tensor:
    """Per-sample target classes drawn uniformly, reproducibly from ``generator`` (CPU).

    ``exclude_true=True`` (section 3.2's targeted attacks): uniform over the num_classes - 1
    classes other than y, as t = (y + k) mod C with k uniform in 1..C-1. ``exclude_true=False``
    (section 4.2's non-robust sets): uniform over all C classes, y included.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    y = as_labels(y, None, num_classes)
    if not exclude_true:
        return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)
    k = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
    return (y + k) % num_classes
