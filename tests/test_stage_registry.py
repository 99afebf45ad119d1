"""A stage is one module: registered under its subcommand, it is a command of the CLI, and
``classaware estimate`` and ``classaware audit`` count and check it with nothing else edited;
a pipeline stage that does not say what it costs or how it is audited is refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers_repo import smoke_env

from classaware import cli, stages
from classaware.config import Options, help_field
from classaware.workflow import audit


@dataclass(frozen=True)
class ToyConfig(Options):
    n: int = help_field(1, "lines to write", ge=1)
    out: Path = help_field(Path("toy.txt"), "the file of n lines", output="file")


def _run(cfg: ToyConfig) -> None:
    cfg.out.write_text("x\n" * cfg.n)


def _work(cfg: ToyConfig, upstream) -> dict:
    return {("forward", "toyarch"): 10 * cfg.n}


def _audit(cfg: ToyConfig, ctx) -> int:
    lines = len(cfg.out.read_text().splitlines())
    if lines != cfg.n:
        raise ctx.Mismatch(f"{cfg.out} has {lines} lines, its stage wrote {cfg.n}")
    return lines


def toy_module(**leave_out: bool) -> types.ModuleType:
    """A stage module with every part a pipeline stage has, less those named in ``leave_out``."""
    toy = types.ModuleType("classaware.stages.toy")
    parts = {"Config": ToyConfig, "run": _run, "work": _work, "AUDIT": {"toy-lines": _audit}}
    parts["CHECKS"] = {"toy-lines": "each toy file has as many lines as its stage wrote"}
    for name, part in parts.items():
        if not leave_out.get(name):
            setattr(toy, name, part)
    return toy


@pytest.fixture
def register(monkeypatch):
    """Register a toy module as subcommand ``toy`` (what a new stage's module and line in
    stages.COMMANDS do), for this test only."""

    def add(module: types.ModuleType) -> None:
        monkeypatch.setitem(stages.COMMANDS, "toy", ("toy", "a toy stage"))
        monkeypatch.setitem(sys.modules, "classaware.stages.toy", module)

    return add


DVC_YAML = {
    "stages": {
        "toy": {
            "foreach": ["a", "b"],
            "do": {"cmd": "classaware toy --n ${toy.n} --out out-${item}.txt", "outs": ["out-${item}.txt"]},
        }
    }
}
FIGURES = {
    "device": "test device",
    "throughput": {
        "train": {},
        "infer": {"img_per_s": {"toyarch": 20.0}},
        "pgd": None,
        "n_targeted": None,
        "distance": None,
        "concurrent_train": {},
        "pipeline": {"stage_overhead_s": 1.5},
    },
}


def test_the_cli_runs_a_registered_stage(register, tmp_path, monkeypatch):
    register(toy_module())
    monkeypatch.chdir(tmp_path)
    assert cli.main(["toy", "--n", "3", "--out", "t.txt"]) == 0
    assert (tmp_path / "t.txt").read_text() == "x\n" * 3


def test_the_estimate_counts_a_registered_stage(register, tmp_path, monkeypatch, capsys):
    register(toy_module())
    monkeypatch.chdir(tmp_path)
    Path("dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    Path("params.yaml").write_text(yaml.safe_dump({"profile": "toy", "toy": {"n": 4}}))
    Path("figures.json").write_text(json.dumps(FIGURES))
    assert cli.main(["estimate", "--throughput", "figures.json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line.split() for line in lines if line.startswith("toy ")]
    # two instances (runs), 40 forward images each; 80 / 20 img/s + 2 x 1.5 s start-up
    assert row[:2] == ["toy", "2"] and row[3] == "80" and row[-3:] == ["7.0", "s", "100.0%"], row
    assert lines[-1] == "total: 0.00 h"


def test_the_audit_checks_a_registered_stage_and_names_what_fails(register, tmp_path, monkeypatch):
    register(toy_module())
    monkeypatch.chdir(tmp_path)
    # a finished DVC pipeline of the toy stage: its outputs written, then committed as DVC records
    # a run (the audit reads dvc.lock and asks DVC whether the run is finished)
    for item in ("a", "b"):
        Path(f"out-{item}.txt").write_text("x\n" * 4)
    stage = {
        "foreach": ["a", "b"],
        "do": {"cmd": "classaware toy --n 4 --out out-${item}.txt", "outs": ["out-${item}.txt"]},
    }
    Path("dvc.yaml").write_text(yaml.safe_dump({"stages": {"toy": stage}}))
    for cmd in (["dvc", "init", "--no-scm", "-q"], ["dvc", "commit", "--force", "-q"]):
        subprocess.run(cmd, check=True, capture_output=True, env=smoke_env())
    assert cli.main(["audit", "--only", "toy-lines", "--out", "audit"]) == 0
    (check,) = json.loads(Path("audit/audit.json").read_text())["checks"]
    assert check["name"] == "toy-lines" and check["items"] == 8 and check["result"] == "pass"
    assert check["what"] == "each toy file has as many lines as its stage wrote"
    Path("out-b.txt").write_text("x\n")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["audit", "--only", "toy-lines", "--out", "audit"])
    assert stopped.value.code == 1
    (check,) = json.loads(Path("audit/audit.json").read_text())["checks"]
    assert check["result"] == "fail" and check["first_mismatch"] == "out-b.txt has 1 lines, its stage wrote 4"


def test_a_stage_that_does_not_count_its_work_is_refused_by_name(register, tmp_path, monkeypatch, capsys):
    register(toy_module(work=True))
    monkeypatch.chdir(tmp_path)
    Path("dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    Path("params.yaml").write_text(yaml.safe_dump({"profile": "toy", "toy": {"n": 4}}))
    assert cli.main(["estimate"]) == 2
    assert "stage toy@a: classaware.stages.toy does not count its work" in capsys.readouterr().err


def test_a_stage_that_does_not_say_how_it_is_audited_is_refused_by_name(register):
    register(toy_module(AUDIT=True))
    toy = stages.Stage("toy@a", "toy", ToyConfig())
    with pytest.raises(ValueError, match=r"stage toy@a: classaware.stages.toy does not say how it is audited"):
        audit.plan([toy])


def test_an_unknown_check_is_refused_with_the_known_ones(register):
    register(toy_module())
    with pytest.raises(ValueError, match=r"only must be one of artifacts, checkpoints, derived, .*toy-lines; got 'x'"):
        audit.Config(only=("x",))
