"""The cost model (classaware.costs) and ``classaware estimate``: work counted by hand for the
smoke profile, times from throughput figures by hand, and the command on every profile."""

from __future__ import annotations

import functools
import json
import re

import pytest
import yaml
from helpers_repo import REPO

from classaware import cli
from classaware.workflow import estimate, profile
from classaware.workflow.estimate import Rates, pipeline_work, table

PROFILES = REPO / "profiles"
R, V = "resnet10_w8", "vgg11_bn_w8"


@functools.cache
def stage_work(name: str) -> list:
    """Every stage's work at profile ``name``, as ``classaware estimate`` counts it."""
    return pipeline_work(estimate.stages(profile.merged_params(name, PROFILES), REPO / "dvc.yaml"))


def units(work) -> dict:
    return {w.stage: {key: n for key, n in w.units.items() if n} for w in work}


def test_smoke_work_counted_by_hand():
    work = stage_work("smoke")
    runs = {w.stage: w.runs for w in work}
    assert runs == {
        "prepare": 1,
        "train": 6,
        "conditions": 1,
        "attack": 8,
        "predict": 1,
        "transfer": 1,
        "distance": 1,
        "plane": 1,
        "figures": 1,
        "construct": 1,
        "train_nonrobust": 2,
        "train_baseline": 1,
        "train_control": 2,
        "tables": 1,
        "verify": 1,
        "report": 1,
    }
    # r = 0, then at most the first radius and 3 doublings, each 5.0 / 0.1 scan points and log2(0.1 / 0.01) = 3.3 -> 4
    # bisections
    dist_per_image = 1 + (1 + 3) * (50 + 4)
    per_cell = {
        "train": 200 * 4,
        "forward": 200 * 4 + 100 + 500 + 200,
        "save": 1,
    }  # 4 epochs on 200 images; eval, val, test, the fit on its 200 training images; a checkpoint
    assert units(work) == {
        "prepare": {("decode", ""): 60_000},
        # three members per architecture: 2,000 images x 4 epochs; 200 eval images per epoch and 500 test
        # images for each of 2 checkpoints (epochs 3 and 4); their 2 writes and a resume state at epoch 3
        "train": {
            ("train", R): 3 * 8_000,
            ("forward", R): 3 * 1_800,
            ("save", R): 3 * 3,
            ("train", V): 3 * 8_000,
            ("forward", V): 3 * 1_800,
            ("save", V): 3 * 3,
        },
        # per source, 300 images x 2 eps: FGM twice (untargeted, targeted) 1 step, PGD twice 3 steps
        "attack": {("grad", R): 2 * 600 + 2 * 1_800, ("grad", V): 2 * 600 + 2 * 1_800},
        # per source, 7 models (the source, its early version, its 2 siblings, the other family's 3)
        # on 300 clean images and 4 sets x 2 eps of 300
        "predict": {("forward", R): (4 + 3) * 300 * 9, ("forward", V): (3 + 4) * 300 * 9},
        # the 8 models on the 10,000 test images; per source, 20 directions and 7 models' searches of 20 images
        "distance": {
            ("forward", R): 4 * 10_000 + (4 + 3) * 20 * dist_per_image,
            ("grad", R): 20,
            ("forward", V): 4 * 10_000 + (3 + 4) * 20 * dist_per_image,
            ("grad", V): 20,
        },
        # 3 ResNets and 1 VGG: the 1,000 test birds and a 17 x 17 grid each; one gradient of the source
        "plane": {("forward", R): 3 * (1_000 + 289), ("forward", V): 1_000 + 289, ("grad", R): 1},
        # 200 images and a 50-image probe at one eps, 4 steps, both models each step; Table 1's predictions
        "construct": {("grad", R): 250 * 4, ("forward", R): 250, ("grad", V): 250 * 4, ("forward", V): 250},
        # the one learner architecture (a VGG): 2 labellings x 2 grid cells; the baseline: 2 grid cells
        "train_nonrobust": {(k, V): 4 * n for k, n in per_cell.items()},
        "train_baseline": {(k, V): 2 * n for k, n in per_cell.items()},
        # the controls: each labelling's clean images, 2 grid cells each
        "train_control": {(k, V): 4 * n for k, n in per_cell.items()},
        "conditions": {},
        "transfer": {},
        "figures": {},
        "tables": {},
        "verify": {},
        "report": {},
    }
    assert [w.stage for w in work if w.bound] == ["distance"]


def test_paper_resume_states_every_tenth_epoch_and_at_checkpoints():
    saves = {w.stage: w.total("save") for w in stage_work("paper")}
    # zoo: 15 x (states at 10, 20, ..., 90 (80 among them) + checkpoints 80, 100); grid: 48 + 8 cells x (19 states + 1)
    assert saves["train"] == 15 * (9 + 2) and saves["train_nonrobust"] == 48 * 20 and saves["train_baseline"] == 8 * 20


def figures(**pipeline) -> dict:
    """A throughput file with round numbers for the two reduced architectures."""
    return {
        "device": "test device",
        "throughput": {
            "train": {"bf16": False, "img_per_s": {R: 1000.0, V: 2000.0}, "state_save_s": {R: 0.5, V: 0.25}},
            "infer": {"img_per_s": {R: 4000.0, V: 8000.0}},
            "pgd": {"arch": R, "steps": 10, "img_per_s": 300.0, "forward_img_per_s": 6000.0},  # a gradient: 2 forwards
            "n_targeted": {"archs": [R, V], "steps": 10, "img_per_s": 60.0},
            "distance": None,
            "concurrent_train": {"arch": R, "img_per_s": {"1": 1000.0, "2": 1500.0, "4": 1800.0}},
            "pipeline": {"stage_overhead_s": 2.0, "decode_img_per_s": 6000.0, **pipeline},
        },
    }


def test_times_follow_from_the_rates_by_hand():
    rates = Rates.from_results(figures())
    work = {w.stage: w for w in stage_work("smoke")}
    assert rates.per_s["grad", R] == 2000.0 and rates.per_s["grad", V] == 4000.0  # forward rate x 0.5
    assert rates.seconds(work["prepare"]) == pytest.approx(60_000 / 6000 + 2.0)
    train = 3 * (8_000 / 1000 + 1_800 / 4000 + 3 * 0.5) + 3 * (8_000 / 2000 + 1_800 / 8000 + 3 * 0.25) + 6 * 2.0
    assert rates.seconds(work["train"]) == pytest.approx(train)
    assert rates.seconds(work["attack"]) == pytest.approx(4_800 / 2000 + 4_800 / 4000 + 8 * 2.0)
    assert rates.seconds(work["report"]) == 2.0
    # the N-targeted check: 1 / (10 steps x (1/2000 + 1/4000)) = 133.3 img/s predicted
    assert any("predicted 133.3 img/s, measured 60 img/s" in n for n in rates.notes)
    assert any("2 at once 1.50x, 4 at once 1.80x" in n for n in rates.notes)


def test_the_table_ends_with_the_total_of_its_stages():
    rates = Rates.from_results(figures())
    work = stage_work("smoke")
    last = table(work, rates)[-1]
    hours = float(
        re.fullmatch(r"total: ([0-9.]+) h \(an upper bound: Dist's scan counted at its bound\)", last).group(1)
    )
    assert hours == pytest.approx(sum(rates.seconds(w) for w in work) / 3600, abs=0.005)


def test_missing_figures_leave_the_time_unknown_and_say_which():
    rates = Rates.from_results(figures(stage_overhead_s=None))
    work = stage_work("paper")  # the paper's architectures were not measured
    last = table(work, rates)[-1]
    assert last.startswith("total: ? h (not measured: ") and "train resnet18" in last and "stage start-up" in last
    assert table(work, None)[-1] == "total: ? h (no throughput figures)"


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES.glob("*.yaml")))
def test_estimate_runs_on_every_profile(name, tmp_path, capsys):
    doc = tmp_path / "figures.json"
    doc.write_text(json.dumps(figures()))
    assert cli.main(["estimate", "--profile", name, "--profiles_dir", str(PROFILES), "--throughput", str(doc)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"profile: {name} ({PROFILES}/{name}.yaml)"
    assert lines[-1].startswith("total: ")
    assert sum(line.split()[0] in {w.stage for w in stage_work(name)} for line in lines) == 16
    absent = ["--throughput", str(tmp_path / "absent.json")]  # a file named that is not there is a mistake
    assert cli.main(["estimate", "--profile", name, "--profiles_dir", str(PROFILES), *absent]) == 2
    assert "absent.json does not exist" in capsys.readouterr().err


def test_estimate_reads_params_yaml_with_the_committed_h100_figures_or_says_there_are_none(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert cli.main(["estimate"]) == 0
    out = capsys.readouterr().out
    # whichever profile params.yaml holds: paper as committed, another after `classaware profile NAME`
    assert f"profile: {yaml.safe_load((REPO / 'params.yaml').read_text())['profile']} (params.yaml)" in out
    if estimate.H100.is_file():
        assert f"throughput: {estimate.H100}, " in out
    else:
        assert "no H100 figures are committed yet" in out and out.strip().endswith("total: ? h (no throughput figures)")


def test_estimate_refuses_an_unknown_profile(capsys):
    assert cli.main(["estimate", "--profile", "huge", "--profiles_dir", str(PROFILES)]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err
