"""Progress where no terminal is: the long loops (training epochs and batches, batched attacks,
Dist's scan, grid cells) log a line at intervals with the done count, the total and the rate;
a loop shorter than the interval says nothing."""

from __future__ import annotations

import logging
import re
import time

import pytest
import torch
from models_for_tests import LinearClassifier

from classaware import progress
from classaware.batching import map_batches
from classaware.boundary import boundary_distance
from classaware.training import Recipe, TrainSpec, train

LINE = re.compile(r"^(?P<desc>.+): (?P<n>\d+)/(?P<total>\d+) \(\d+%\), \S+ elapsed, \S+ left, +[\d.?]+\S*/s$")


@pytest.fixture
def log_lines(monkeypatch, caplog):
    """The progress lines logged, as a stage logs them under SLURM or DVC (no terminal)."""
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="classaware.progress")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "classaware.progress"]

    return lines


def test_a_long_loop_logs_its_count_total_and_rate_at_intervals(monkeypatch, log_lines):
    monkeypatch.setattr(progress, "INTERVAL_S", 0.05)
    for _ in progress.progress(range(6), "work", unit="batch"):
        time.sleep(0.03)
    lines = log_lines()
    assert 2 <= len(lines) <= 5 and all(LINE.match(line) for line in lines), lines
    assert lines[-1].startswith("work: 6/6 (100%)") and lines[-1].endswith("batch/s")
    done = [int(LINE.match(line)["n"]) for line in lines]
    assert done == sorted(set(done))  # one line per count, the closing redraw not repeated


def test_a_loop_shorter_than_the_interval_says_nothing(log_lines):
    assert progress.INTERVAL_S == 30.0
    assert sum(progress.progress(range(100), "quick")) == 4950
    assert log_lines() == []


def test_a_loop_that_stops_early_says_where(monkeypatch, log_lines):
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
    for k in progress.progress(range(10), "scan", unit="step"):
        if k == 3:
            break
    assert log_lines()[-1].startswith("scan: 3/10 (30%)")  # three steps done


def _named(lines: list[str]) -> dict[str, list[tuple[int, int]]]:
    found: dict[str, list[tuple[int, int]]] = {}
    for line in lines:
        m = LINE.match(line)
        assert m, line
        found.setdefault(m["desc"], []).append((int(m["n"]), int(m["total"])))
    return found


def test_batches_dist_scan_and_training_report_their_progress(monkeypatch, log_lines, tmp_path):
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # every step logs
    x = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(map_batches(lambda t: t * 2, x, batch_size=4, desc="doubling"), x * 2)
    model = LinearClassifier.random(10, 48, seed=0)
    y = model(x).argmax(1)
    v = torch.nn.functional.normalize(torch.randn(6, 48, generator=torch.Generator().manual_seed(1)), dim=1)
    boundary_distance(model, x, y, v.view_as(x), max_radius=1.0, step=0.25, tol=0.1)
    images = torch.randint(0, 256, (40, 3, 32, 32), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    recipe = Recipe(epochs=2, lr=0.01, milestones=(), batch_size=16)
    train(TrainSpec("resnet10_w8", 0, 0, recipe), images[:32], torch.arange(32) % 10, images[32:], torch.arange(8),
          tmp_path / "m")  # fmt: skip
    found = _named(log_lines())
    assert found["doubling"][-1] == (2, 2)
    scan = found["boundary scan to radius 1"]
    assert scan[0][1] == 4 and all(n <= 4 for n, _ in scan)  # ends early once every image flipped
    assert found["resnet10_w8 epochs"][-1] == (2, 2)
    assert found["resnet10_w8 epoch 2/2"][-1] == (2, 2)  # 32 images in batches of 16
