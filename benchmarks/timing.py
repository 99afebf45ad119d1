"""What both benchmarks need around their timed regions: the device's name and a sync point."""

from __future__ import annotations

import platform

import torch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"CPU {cpu} ({torch.get_num_threads()} torch threads)"


def sync(device: torch.device) -> None:
    """Wait for the device: timings must not stop while CUDA kernels are still queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
