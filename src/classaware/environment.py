"""What computed an artifact: the facts that decide whether a rerun can be bit-identical.

On the CPU, the same seeds give the same bytes only with the same torch build, the same CPU
kernels (the instruction set torch dispatches to: AVX2, AVX512, ...) and the same number of
threads; anything else changes the last bits of floating-point sums, and training amplifies
them. GPU runs are not bit-identical even on one machine. Every artifact made by a model
records this, so a reviewer (and ``classaware audit``) knows which comparison applies: bytes
under the same environment, a tolerance under another.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Environment:
    device: str  # "cpu" or the CUDA device's name
    cpu: str  # the CPU model
    cpu_capability: str  # the instruction set torch's CPU kernels use
    threads: int  # torch's intra-op threads
    torch: str
    cuda: str | None  # CUDA version torch runs with, on a GPU
    cudnn: int | None

    @classmethod
    def current(cls, device: torch.device | str = "cpu") -> Environment:
        device = torch.device(device)
        on_gpu = device.type == "cuda"
        return cls(
            device=torch.cuda.get_device_name(device) if on_gpu else "cpu",
            cpu=cpu_model(),
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
            threads=torch.get_num_threads(),
            torch=str(torch.__version__),  # a TorchVersion pickles as a class weights_only refuses
            cuda=torch.version.cuda if on_gpu else None,
            cudnn=torch.backends.cudnn.version() if on_gpu else None,
        )

    def reproduces(self, other: Environment) -> bool:
        """Whether a rerun here can give ``other``'s artifacts bit for bit (CPU only)."""
        return self.device == other.device == "cpu" and self == other

    def describe(self) -> str:
        """One line: "cpu (Intel Xeon, AVX512, 2 threads), torch 2.14.1"."""
        accel = f", CUDA {self.cuda}, cuDNN {self.cudnn}" if self.cuda else ""
        return f"{self.device} ({self.cpu}, {self.cpu_capability}, {self.threads} threads), torch {self.torch}{accel}"


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; elsewhere what the platform says)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or f"unknown ({os.cpu_count()} CPUs)"
