"""What the CPU bf16 test and the CUDA tests share: one training step in two precisions.

``bf16_step_gap`` runs :func:`classaware.training.train_epoch` over exactly one batch (one SGD
step) of a zoo model from the same initial weights, once in fp32 and once under bf16 autocast,
and compares the two results: the loss of that batch (computed before the step) and the weight
update Delta w = w_after - w_before. bf16 keeps 8 bits of mantissa (relative rounding 2^-9), so
the loss agrees to about 1e-3; per-weight gradients are sums of many terms that largely cancel
at initialisation, so individual components can differ by much more, while the update as a
whole points the same way: its cosine to the fp32 update is the stated measure.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from classaware.models import build
from classaware.training import Recipe, train_epoch

# tolerances of one bf16 step against fp32 (resnet10_w8, batch 64, lr 0.05; measured on a CPU:
# loss gap 4e-5, update cosine 0.992)
BF16_LOSS_RTOL = 1e-2
BF16_UPDATE_MIN_COSINE = 0.95


@dataclass(frozen=True)
class StepGap:
    loss_rel: float  # |loss_bf16 - loss_fp32| / loss_fp32
    update_cosine: float  # cos(Delta w_bf16, Delta w_fp32)
    identical: bool  # the two updates are bit-identical (bf16 did not run)


def bf16_step_gap(device: torch.device, arch: str = "resnet10_w8", batch: int = 64) -> StepGap:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    torch.manual_seed(0)
    start = build(arch).to(device, memory_format=torch.channels_last)
    before = torch.cat([p.detach().flatten() for p in start.parameters()])
    losses, updates = {}, {}
    for bf16 in (False, True):
        model = copy.deepcopy(start)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        loss_sum, _ = train_epoch(model, opt, x, y, Recipe(batch_size=batch), seed=0, bf16=bf16)
        losses[bf16] = loss_sum.item() / batch
        updates[bf16] = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    return StepGap(
        loss_rel=abs(losses[True] - losses[False]) / losses[False],
        update_cosine=F.cosine_similarity(updates[True], updates[False], dim=0).item(),
        identical=torch.equal(updates[True], updates[False]),
    )
