"""Shared test set-up: hypothesis profiles, small fixtures, and the fixtures and hooks of the
session's pipeline runs.

Profiles (chosen by HYPOTHESIS_PROFILE; tox sets ``ci``): ``ci`` is derandomized, so a CI run
is repeatable, with no deadline (CPU timings vary); ``dev`` explores more examples.

The end-to-end tests (marked ``slow``, and ``smoke_run(NAMES)`` with the runs they read) check
what a few real runs of the `smoke` pipeline left. What each name starts, and what it waits for,
is session_runs.RUNS; session_runs also runs them. Here: the ``background`` fixture starts, at the
session's beginning, the runs the collected tests' marks name (with the runs those wait for);
``smoke_runs[NAME]`` waits for one; the slow tests are moved to the end of the session, and the
terminal summary gives each run's wall time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import session_runs
import slurm_cluster
import torch
from helpers_repo import JPEG_ARCHIVE
from hypothesis import HealthCheck, settings
from session_runs import AT_ONCE, RUNS, Scheduler

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

BACKGROUND = pytest.StashKey[Scheduler]()  # the session's runs, for the terminal summary


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tests run tiny tensors, many times faster on one thread than on two busy cores (OpenMP
    threads spin while they wait); the DVC pipeline test sets its own subprocesses' threads."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """80 random uint8 CIFAR-sized images with labels 0-9 in turn: 64 to train on, 16 to test on
    (train_x, train_y, test_x, test_y), the same in every test."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (80, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.arange(80) % 10
    return x[:64], y[:64], x[64:], y[64:]


# ----------------------------------------------------------------------------- the session's pipeline runs
@pytest.fixture(scope="session")
def slurm():
    """A one-node SLURM cluster for the session (:mod:`slurm_cluster`), or why there is none."""
    reason = slurm_cluster.unavailable()
    if reason:
        yield reason
        return
    stack = contextlib.ExitStack()
    try:
        cluster = stack.enter_context(slurm_cluster.one_node_cluster())
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        yield f"SLURM did not start: {exc}"
        return
    with stack:
        yield cluster


@pytest.fixture(scope="session", autouse=True)
def background(request, tmp_path_factory) -> Iterator[Scheduler | None]:
    """The session's pipeline runs that its tests read (session_runs.RUNS: each name of their
    ``smoke_run`` marks, with the runs it waits for), started at its beginning; None without the
    CIFAR-10 archive or such tests."""
    names = session_runs.needed(name for item in request.session.items for name in session_runs.marked(item))
    if not JPEG_ARCHIVE.is_file() or not names:
        yield None
        return
    cluster = request.getfixturevalue("slurm") if any(RUNS[name].needs_cluster for name in names) else None
    scheduler = session_runs.start(names, tmp_path_factory, cluster)
    request.config.stash[BACKGROUND] = scheduler
    yield scheduler
    scheduler.stop()  # an interrupted session leaves nothing running


def pytest_collection_modifyitems(items) -> None:
    """The slow tests last, so that the others run while the pipeline runs they check go on;
    among them, those reading runs that start later come later (session_runs.START_ORDER). A
    smoke_run mark naming no run of session_runs.RUNS is a usage error."""
    session_runs.needed(name for item in items for name in session_runs.marked(item))
    items.sort(key=lambda item: (item.get_closest_marker("slow") is not None, session_runs.last_to_start(item)))


def pytest_terminal_summary(terminalreporter, config) -> None:
    """Each background run's wall time, so that a CI log records what the smoke pipeline took
    serially, with --jobs 2 and 8, and through SLURM (beside each other and the other tests)."""
    scheduler = config.stash.get(BACKGROUND, None)
    if scheduler is None:
        return
    terminalreporter.write_sep(
        "-", f"the session's pipeline runs ({AT_ONCE} at a time and SLURM's on its cluster, beside the other tests)"
    )
    for line in scheduler.summary():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def smoke_runs(background) -> Scheduler:
    """The session's runs by name: ``smoke_runs[NAME]`` waits until run NAME has ended (SLURM's
    is left out where no cluster started)."""
    if background is None:
        pytest.skip(f"needs the CIFAR-10 archive {JPEG_ARCHIVE}")
    return background


@pytest.fixture(scope="session")
def serial(smoke_runs) -> Path:
    """The plain `dvc repro` copy, succeeded."""
    run = smoke_runs["serial"]
    assert run.returncode == 0, f"{RUNS['serial'].command} failed in {run.repo}:\n{run.output[-6000:]}"
    return run.repo


@pytest.fixture(scope="session")
def prepared(serial) -> Path:
    """The canonical file the serial run's ``prepare`` stage made from the JPEG archive: the
    tests of the real data read it rather than decode the 60,000 images again."""
    return serial / "data" / "cifar10.pt"
