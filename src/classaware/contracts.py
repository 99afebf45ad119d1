"""What the library's public functions accept, checked once at their door, and how they treat
the models they are given.

Images: a floating tensor of shape (N, C, H, W) with values in [0, 1] (normalisation lives
inside the model). A tensor outside that contract would not fail loudly further in: an attack
on pixels outside [0, 1] returns examples far outside its eps-ball after clipping, and uint8
images fed as 0-255 floats give other labels. Any floating dtype is accepted, whatever the
model's: each function computes in the widest of float32, the images' dtype and the model's
dtype (:func:`work_dtype`), hands the model its input in the model's own dtype and on its
device (:func:`logits`), and returns images in the caller's dtype and on the caller's device.
Images returned in a narrower dtype than the work dtype (float16 or bfloat16 images, say) are
rounded toward the original image, coordinate by coordinate (:func:`narrowed`), so rounding
never enlarges |x'_i - x_i|: every eps bound that holds in the work dtype holds for the
returned images too. Directions and radii (``boundary``) are returned in the work dtype.

Labels: a 1-D integer tensor (any of int8, int16, int32, int64, uint8) of length N with values
in 0..num_classes-1; they are used as int64 inside (:func:`as_labels`).

Models: any ``nn.Module`` that maps such images to logits, a floating tensor of shape
(N, num_classes), checked on every call (:func:`logits`); a model that returns anything else
(a tuple of logits and features, a dict) is refused with what came back and how to wrap it.
Every function runs its models in eval mode and gives each submodule its own training flag
back afterwards (:func:`eval_mode`), so a frozen BatchNorm inside a training model stays frozen
and the module inside an ``nn.DataParallel`` keeps its mode.

Each check raises ValueError naming the argument and the problem. The checks cost one reduction
over the input (one host sync per call), nothing per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

INTEGER_LABELS = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def check_images(x: torch.Tensor, name: str = "x", dims: int = 4) -> None:
    """``x`` is a floating tensor of ``dims`` dimensions ((N, C, H, W) by default), finite, in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of images, got {type(x).__name__}")
    if not x.is_floating_point():
        hint = " (convert uint8 images with classaware.data.to_float, i.e. x / 255)" if x.dtype == torch.uint8 else ""
        raise ValueError(f"{name} must hold floating-point images in [0, 1], got dtype {x.dtype}{hint}")
    if x.dim() != dims:
        shape = "(N, C, H, W)" if dims == 4 else "(C, H, W)"
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if x.numel() and not bool(torch.isfinite(x).all() & (x.amin() >= 0) & (x.amax() <= 1)):
        raise ValueError(
            f"{name} must lie in [0, 1] and be finite; found values in [{x.amin().item():g}, {x.amax().item():g}]"
        )


def _label_dtype_problem(y, name: str) -> str | None:
    if not isinstance(y, torch.Tensor):
        return f"{name} must be an integer tensor of class labels, got {type(y).__name__}"
    if y.is_floating_point():
        return (
            f"{name} must be an integer tensor of class labels, got {y.dtype} "
            "(for a model's outputs, pass its predicted labels, e.g. logits.argmax(1) or classaware.models.predict)"
        )
    if y.dtype not in INTEGER_LABELS:
        return (
            f"{name} must be an integer tensor of class labels ({', '.join(map(str, INTEGER_LABELS))}), got {y.dtype}"
        )
    return None


def as_labels(y: torch.Tensor, n: int | None, num_classes: int | None = None, name: str = "y") -> torch.Tensor:
    """``y`` as int64 after checking it is a 1-D integer tensor of ``n`` labels (any length when
    ``n`` is None) in 0..num_classes-1 (when ``num_classes`` is given); ValueError naming ``name`` otherwise."""
    problem = _label_dtype_problem(y, name)
    if problem:
        raise ValueError(problem)
    if y.dim() != 1 or (n is not None and len(y) != n):
        shape = "(N,)" if n is None else f"({n},)"
        raise ValueError(f"{name} must have shape {shape}, one label per image, got {tuple(y.shape)}")
    n = len(y)
    if n and (int(y.min()) < 0 or (num_classes is not None and int(y.max()) >= num_classes)):
        top = "" if num_classes is None else f"..{num_classes - 1}"
        raise ValueError(f"{name} must hold class labels in 0{top}, found {int(y.min())}..{int(y.max())}")
    return y.long()


def as_label_rows(y: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """``y`` of shape (n,) or (M, n), integer, as int64 of shape (M, n)."""
    problem = _label_dtype_problem(y, name)
    if problem:
        raise ValueError(problem)
    if y.dim() not in (1, 2) or y.shape[-1] != n:
        raise ValueError(f"{name} must have shape ({n},) or (M, {n}): labels of M models, got {tuple(y.shape)}")
    return (y[None] if y.dim() == 1 else y).long()


def model_device(model: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the model's parameters, else of its buffers, else ``fallback`` (a model
    without either runs wherever its input is)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device(fallback)


def model_dtype(model: nn.Module, fallback: torch.dtype) -> torch.dtype:
    """The dtype of the model's first floating parameter, else floating buffer, else ``fallback``
    (a model without either gets its input in the dtype it came in)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return fallback


def work_dtype(models, x: torch.Tensor) -> torch.dtype:
    """The dtype the library computes in for ``models`` on images ``x``: the widest of float32,
    x's dtype and every model's dtype (float16 and bfloat16 promote to float32)."""
    dtype = torch.promote_types(torch.float32, x.dtype)
    for model in models:
        dtype = torch.promote_types(dtype, model_dtype(model, x.dtype))
    return dtype


def narrowed(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x_adv`` (computed in a dtype at least as wide as x's) in x's dtype and on x's device,
    each coordinate that rounding would move away from x moved one step back toward it, so
    |result_i - x_i| <= |x_adv_i - x_i| and values stay in [0, 1]. Same dtype: just moved."""
    x, out = x.detach(), x_adv.to(x.dtype)
    if out.dtype != x_adv.dtype:
        x_wide = x.to(x_adv.device, x_adv.dtype)  # exact: x_adv's dtype holds every value of x's
        past = (out.to(x_adv.dtype) - x_wide).abs() > (x_adv - x_wide).abs()
        out = torch.where(past, torch.nextafter(out, x.to(out.device)), out)
    return out.to(x.device)


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Every module of ``models`` in eval mode inside the block; afterwards each module and
    submodule has its own training flag back, also after an error. Restored parent first, so a
    submodule's flag (a frozen BatchNorm in a training model, the module an ``nn.DataParallel``
    wraps) wins over the ``train()`` of the module that holds it."""
    saved = [(m, m.training) for model in models for m in model.modules()]
    try:
        for model in models:
            model.eval()
        yield
    finally:
        for m, mode in saved:
            m.train(mode)


def _describe(out) -> str:
    if isinstance(out, torch.Tensor):
        return f"a {out.dtype} tensor of shape {tuple(out.shape)}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of ({', '.join(_describe(o) for o in out)})"
    if isinstance(out, dict):
        return f"a {type(out).__name__} with keys {list(out)}"
    return f"a {type(out).__name__}"


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``, x given in the model's dtype and on its device, checked to be logits: a
    floating tensor of shape (len(x), num_classes). ValueError saying what came back otherwise."""
    out = model(x.to(model_device(model, x.device), model_dtype(model, x.dtype)))
    if isinstance(out, torch.Tensor) and out.is_floating_point() and out.dim() == 2 and len(out) == len(x):
        return out
    hint = ""
    if isinstance(out, (tuple, list, dict)):
        first = "out['logits']" if isinstance(out, dict) else "out[0]"
        hint = (
            "; pass a module whose forward returns only the logits instead, e.g. an nn.Module holding "
            f"the model with `def forward(self, x): out = self.model(x); return {first}`"
        )
    raise ValueError(
        f"the model must return logits, a floating tensor of shape ({len(x)}, num_classes), "
        f"for images of shape {tuple(x.shape)}; it returned {_describe(out)}{hint}"
    )


@torch.no_grad()
def num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """How many logits ``model`` gives, from one forward pass (eval mode) of the first image of ``x``."""
    with eval_mode(model):
        return logits(model, x[:1]).shape[1]
