"""Run a tensor function over a large set in fixed-size batches, reporting progress (:mod:`progress`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .contracts import as_int
from .progress import progress


def map_batches(
    fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, batch_size: int, desc: str = "batches"
) -> torch.Tensor:
    """torch.cat([fn(*(t[i:i+batch_size] for t in tensors)) for each batch i]); every tensor is
    split along its first dimension, which they must share. ``desc`` names the loop in its
    progress lines."""
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError("all tensors must have the same length")
    if n == 0:
        raise ValueError("nothing to process: the tensors are empty")
    batch_size = as_int(batch_size, "batch_size", 1)
    starts = range(0, n, batch_size)
    return torch.cat([fn(*(t[i : i + batch_size] for t in tensors)) for i in progress(starts, desc, unit="batch")])
