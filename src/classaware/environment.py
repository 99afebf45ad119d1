"""What computed an artifact: the facts that decide whether a rerun can be bit-identical.

On the CPU, the same seeds give the same bytes only with the same torch build, the same CPU
kernels (the instruction set torch dispatches to: AVX2, AVX512, ...) and the same number of
threads; anything else changes the last bits of floating-point sums, and training amplifies
them. GPU runs are not bit-identical even on one machine. Every artifact made by a model
records this, so a reviewer (and ``classaware audit``) knows which comparison applies: bytes
under the same environment, a tolerance under another.

Which code made an artifact (:class:`CodeVersion`: the commit, and whether the code differed
from it) is recorded per stage run beside its wall time (``cli.py``, ``logs/timings.jsonl``),
not in the artifacts: a commit in them would change their bytes at every commit.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
        return f"{self.device} ({self.cpu}, {self.cpu_capability}, {self.threads} thread{'' if self.threads == 1 else 's'}), torch {self.torch}{accel}"


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; elsewhere what the platform says)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or f"unknown ({os.cpu_count()} CPUs)"


# ----------------------------------------------------------------------------- the code
# What "the code" of a run is: what the stages execute and check against. The rest of the tree is
# what a run writes (dvc.lock, git-tracked outputs such as metrics/ and figures/) or configures
# (params.yaml, rewritten by `classaware profile` and by DVC's experiments, and recorded in
# dvc.lock), which would make every run look uncommitted; documentation does not run.
CODE_PATHS = ("src", "dvc.yaml", "claims.yaml", "profiles", "pyproject.toml")
BASELINE_VARIABLE = "DVC_EXP_BASELINE_REV"  # set by DVC in a queued experiment's stages


@dataclass(frozen=True)
class CodeVersion:
    """Which code a stage ran: a git commit and, when the code (:data:`CODE_PATHS`) differed from
    it, which files differed and the sha256 of the difference, so that a reviewer can tell the
    commit from a modified copy of it.

    ``commit`` is HEAD, except in a DVC experiment (``dvc exp run --queue``, as ``classaware
    replicate`` runs them): its stages run in a temporary copy whose HEAD is a commit DVC made
    for the experiment, which exists nowhere else, so the commit recorded is the experiment's
    baseline (DVC's ``DVC_EXP_BASELINE_REV``: the workspace's HEAD when it was queued), and the
    difference is taken against it. ``commit`` is None outside a git repository.
    """

    commit: str | None
    of: Literal["HEAD", "experiment baseline"]
    changed: tuple[str, ...]  # code files differing from the commit (tracked, or untracked and not ignored)
    diff_sha256: str | None  # of `git diff --binary COMMIT -- CODE_PATHS`, then each untracked file's path and bytes

    @classmethod
    def current(cls, root: str | Path = ".") -> CodeVersion:
        baseline = os.environ.get(BASELINE_VARIABLE)
        head = _git(root, "rev-parse", "HEAD")
        if head is None:
            return cls(None, "HEAD", (), None)
        commit = baseline or head.decode().strip()
        diff = _git(root, "diff", "--binary", commit, "--", *CODE_PATHS) or b""
        names = (_git(root, "diff", "--name-only", "-z", commit, "--", *CODE_PATHS) or b"").decode().split("\0")
        untracked = (_git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", *CODE_PATHS) or b"").decode()
        new = sorted(filter(None, untracked.split("\0")))
        digest = hashlib.sha256(diff)
        for name in new:
            digest.update(name.encode() + b"\0" + (Path(root) / name).read_bytes())
        changed = tuple(sorted({*filter(None, names), *new}))
        return cls(
            commit, "experiment baseline" if baseline else "HEAD", changed, digest.hexdigest() if changed else None
        )

    def describe(self) -> str:
        """In plain words: "commit 1a2b3c4d5e6f" or "not a commit: commit ... with uncommitted changes to ..."."""
        if self.commit is None:
            return "unknown: not run in a git repository"
        of = " (the experiment's baseline)" if self.of == "experiment baseline" else ""
        if not self.changed:
            return f"commit {self.commit[:12]}{of}"
        files = ", ".join(self.changed[:5]) + (f" and {len(self.changed) - 5} more" if len(self.changed) > 5 else "")
        return (
            f"not a commit: commit {self.commit[:12]}{of} with uncommitted changes to {files} "
            f"(sha256 of the difference {self.diff_sha256[:16]})"
        )


def _git(root: str | Path, *args: str) -> bytes | None:
    """``git ARGS`` in ``root``: its output, or None where git is missing or fails (not a repository)."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
