"""Shared test set-up: hypothesis profiles and small fixtures.

Profiles (chosen by HYPOTHESIS_PROFILE; tox sets ``ci``): ``ci`` is derandomized, so a CI run
is repeatable, with no deadline (CPU timings vary); ``dev`` explores more examples.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parents[1]
JPEG_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tests run tiny tensors, many times faster on one thread than on two busy cores (OpenMP
    threads spin while they wait); the DVC pipeline test sets its own subprocesses' threads."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
