"""The table of the session's pipeline runs (session_runs.RUNS) and its scheduler: the table
names only runs it holds and has no cycle, a mark's runs are the run and everything it waits for,
an unknown name is a usage error; the scheduler, on toy commands, keeps to the slots and the waits."""

from __future__ import annotations

import graphlib
import time

import pytest
from helpers_repo import smoke_env
from session_runs import RUNS, START_ORDER, Job, Run, Scheduler, needed, table


def test_the_table_has_no_cycle_and_names_only_its_own_runs():
    graph = {name: set(run.waits_for) for name, run in RUNS.items()}
    assert tuple(graphlib.TopologicalSorter(graph).static_order())  # CycleError otherwise
    assert all(set(run.waits_for) <= set(RUNS) for run in RUNS.values())
    assert all(set(run.restores_from) <= set(run.waits_for) for run in RUNS.values())
    assert START_ORDER == tuple(RUNS)  # the table reads in the order the runs can start


def test_a_table_that_names_a_missing_run_or_waits_in_a_circle_is_refused():
    with pytest.raises(ValueError, match=r"run b waits for runs the table lacks: \['c'\]"):
        table(Run("a", "true"), Run("b", "true", waits_for=("c",)))
    with pytest.raises(ValueError, match="run b restores from a, which it does not wait for"):
        table(Run("a", "true"), Run("b", "true", restores_from=("a",)))
    with pytest.raises(graphlib.CycleError):
        table(
            Run("a", "true", waits_for=("c",)), Run("b", "true", waits_for=("a",)), Run("c", "true", waits_for=("b",))
        )


def test_a_mark_starts_its_run_and_everything_it_waits_for_in_start_order():
    assert needed(["replicates"]) == ("serial", "jobs2", "replicates")
    assert needed(["slurm", "gpu_check"]) == ("serial", "gpu_check", "slurm")
    assert needed(["jobs8", "serial", "jobs2"]) == ("serial", "jobs2", "jobs8")
    assert needed([]) == ()
    chain = table(Run("c", "true", waits_for=("b",)), Run("b", "true", waits_for=("a",)), Run("a", "true"))
    assert needed(["c"], chain) == ("a", "b", "c")  # however indirectly, whatever the rows' order


def test_a_mark_naming_an_unknown_run_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match=r"smoke_run marks name unknown runs \['nightly'\]; known: serial, "):
        needed(["serial", "nightly"])


def test_the_scheduler_keeps_to_the_slots_and_the_waits(tmp_path):
    """Two at a time, a run without a slot beside them, each after what it waits for, and a run
    waiting for a failed one (however indirectly) never starts."""
    runs = table(
        Run("a", "sleep 0.3"),
        Run("b", "sleep 0.3"),
        Run("c", "sleep 0.3"),  # no slot free until a or b ends
        Run("free", "sleep 0.1", takes_slot=False),  # starts at once, beside a and b
        Run("after_a", "sleep 0.1", waits_for=("a",)),
        Run("bad", "exit 3", waits_for=("b",)),
        Run("after_bad", "true", waits_for=("bad",)),
        Run("after_after_bad", "true", waits_for=("after_bad",)),
    )
    jobs = {name: Job(run, tmp_path, tmp_path / f"{name}.txt", smoke_env()) for name, run in runs.items()}
    scheduler = Scheduler(jobs, at_once=2, tick=0.02)
    ran = {name: scheduler[name] for name in runs}
    assert {name: run.returncode for name, run in ran.items()} == {
        "a": 0, "b": 0, "c": 0, "free": 0, "after_a": 0, "bad": 3, "after_bad": -1, "after_after_bad": -1,
    }  # fmt: skip
    assert (
        ran["after_bad"].output == "not run: bad failed"
        and ran["after_after_bad"].output == "not run: after_bad failed"
    )
    spans = {name: (job.started, job.started + job.seconds) for name, job in jobs.items() if job.proc is not None}
    assert max(spans["a"][0], spans["b"][0], spans["free"][0]) < min(spans["a"][1], spans["b"][1])
    assert spans["c"][0] >= min(spans["a"][1], spans["b"][1])
    assert spans["after_a"][0] >= spans["a"][1] and spans["bad"][0] >= spans["b"][1]
    for t in (spans["a"][0], spans["c"][0], spans["after_a"][0]):
        assert sum(start <= t < end for name, (start, end) in spans.items() if runs[name].takes_slot) <= 2


def test_a_run_past_its_timeout_is_killed_and_fails(tmp_path):
    runs = table(Run("hung", "sleep 30", timeout=0.2), Run("after", "true", waits_for=("hung",)))
    jobs = {name: Job(run, tmp_path, tmp_path / f"{name}.txt", smoke_env()) for name, run in runs.items()}
    began = time.perf_counter()
    scheduler = Scheduler(jobs, at_once=2, tick=0.02)
    hung = scheduler["hung"]
    assert hung.returncode == -9 and "its timeout" in hung.output and time.perf_counter() - began < 10
    assert scheduler["after"].output == "not run: hung failed"
