"""What the library's public functions accept, checked once at their door.

Every function that takes images wants a floating tensor of shape (N, C, H, W) with values in
[0, 1] (normalisation lives inside the model); labels are integer tensors of length N with
values in 0..num_classes-1. A tensor outside that contract would not fail loudly further in:
an attack on pixels outside [0, 1] returns examples far outside its eps-ball after clipping,
and uint8 images fed as 0-255 floats give other labels. So each check raises ValueError naming
the argument and the problem. The checks cost one reduction over the input (one host sync per
call), nothing per step.
"""

from __future__ import annotations

import torch
from torch import nn


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


def check_labels(y: torch.Tensor, n: int, num_classes: int | None = None, name: str = "y") -> None:
    """``y`` is an integer tensor of ``n`` labels in 0..num_classes-1 (when ``num_classes`` is given)."""
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise ValueError(
            f"{name} must be an integer tensor of class labels, got {getattr(y, 'dtype', type(y).__name__)}"
        )
    if y.dim() != 1 or len(y) != n:
        raise ValueError(f"{name} must have shape ({n},), one label per image, got {tuple(y.shape)}")
    if n and (int(y.min()) < 0 or (num_classes is not None and int(y.max()) >= num_classes)):
        top = "" if num_classes is None else f"..{num_classes - 1}"
        raise ValueError(f"{name} must hold class labels in 0{top}, found {int(y.min())}..{int(y.max())}")


def model_device(model: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the model's parameters, else of its buffers, else ``fallback`` (a model
    without either runs wherever its input is)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device(fallback)


@torch.no_grad()
def num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """How many logits ``model`` gives, from one forward pass of the first image of ``x``."""
    was_training = model.training
    model.eval()
    try:
        out = model(x[:1].to(model_device(model, x.device)))
    finally:
        model.train(was_training)
    if out.dim() != 2:
        raise ValueError(f"the model must return logits of shape (N, num_classes), got {tuple(out.shape)}")
    return out.shape[1]
