"""bf16 autocast means the same on a CPU as on CUDA, so the CPU suite runs the bf16 training
path of the paper profile: one bf16 SGD step stays within the stated tolerances of fp32
(``helpers_devices``); tests/test_cuda.py checks the same on a GPU."""

from __future__ import annotations

import torch
from helpers_devices import BF16_LOSS_RTOL, BF16_UPDATE_MIN_COSINE, bf16_step_gap


def test_a_bf16_step_on_the_cpu_stays_within_tolerance_of_fp32():
    gap = bf16_step_gap(torch.device("cpu"))
    assert not gap.identical, "bf16 autocast did not run on the CPU: the step is bit-identical to fp32"
    assert gap.loss_rel <= BF16_LOSS_RTOL, gap
    assert gap.update_cosine >= BF16_UPDATE_MIN_COSINE, gap
