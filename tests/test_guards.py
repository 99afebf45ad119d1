"""Bad input at every boundary gets a clear error before any compute, and nothing already
produced is lost: the CLI and its options, the profiles, the library's inputs, output folders,
and the files a killed run leaves behind."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import re
import signal
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch
from helpers_data import folder_images, write_image_folder
from helpers_repo import REPO
from hypothesis import given
from hypothesis import strategies as st
from models_for_tests import LinearClassifier, images, labels
from torch import nn

from classaware import cli
from classaware.attacks import fgm, n_targeted_pgd, pgd
from classaware.boundary import SearchSettings, boundary_distance, decision_plane, gradient_direction, model_distance
from classaware.config import outputs
from classaware.files import atomic_path
from classaware.models import predict
from classaware.training import Recipe, TrainSpec, train
from classaware.workflow import profile

# A valid command line for every stage, up to its numeric options: required options only,
# every path relative (the tests run in an empty folder).
MINIMAL = {
    "download": [],
    "prepare": ["--archive", "archive.tar.gz"],
    "train": ["--arch", "resnet10_w8", "--init_seed", "0", "--data_seed", "0", "--out", "m"],
    "conditions": ["--sources", "s", "--targets", "t"],
    "attack": ["--source", "s", "--method", "pgd", "--objective", "untargeted", "--out", "a.pt"],
    "predict": ["--sources", "s", "--targets", "t", "--adv_dir", "adv", "--out_dir", "p"],
    "transfer": ["--predictions", "p.pt", "--out", "t.json"],
    "distance": ["--sources", "s", "--targets", "t", "--out", "d.json", "--distances", "d.pt"],
    "plane": ["--source", "s", "--models", "m", "--out", "p.pt"],
    "figures": ["--transfer", "t.json", "--distance", "d.json", "--plane", "p.pt", "--out_dir", "f"],
    "construct": ["--pair", "a+b", "--out", "n.pt", "--results", "n.json"],
    "train-grid": ["--arch", "resnet10_w8", "--labelling", "y", "--out", "g", "--results", "g.json"],
    "tables": ["--pairs", "a+b", "--archs", "resnet10_w8"],
    "verify": ["--profile", "smoke"],
    "report": ["--profile", "smoke"],
    "profile": ["smoke"],
    "replicate": [],
    "audit": [],
    "estimate": [],
    "repro": [],
    "slurm": ["status"],
    "deps": [],
    "keep": ["runs/k"],
    "view": ["runs/k"],
    "evaluate": [
        "--source",
        "s",
        "--targets",
        "t",
        "--data",
        "d",
        "--out",
        "o",
        "--attack",
        "pgd(eps=1.0, alpha=0.1, steps=1)",
    ],
    "score": ["--samples", "s.npz", "--out", "o"],
}


def _config(command: str):
    return cli.load(command).Config


def _numeric_options(cls) -> list[tuple[dataclasses.Field, type]]:
    """(field, int or float) of every numeric option of ``cls``, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found += _numeric_options(hint)
            continue
        base = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
        if base in (int, float):
            found.append((f, base))
    return found


NUMERIC = [(command, f, kind) for command in cli.COMMANDS for f, kind in _numeric_options(_config(command))]


def test_every_command_has_a_minimal_command_line():
    assert set(MINIMAL) == set(cli.COMMANDS)


@pytest.mark.parametrize("command, field, kind", NUMERIC, ids=[f"{c}--{f.name}" for c, f, _ in NUMERIC])
def test_every_numeric_option_declares_its_range(command, field, kind):
    assert any(field.metadata.get(k) is not None for k in ("ge", "gt", "le")), f"{command} --{field.name}"


def _invalid(field: dataclasses.Field, kind: type) -> st.SearchStrategy:
    """Values ``field`` must refuse: non-finite floats, and numbers beyond its declared bounds."""
    meta, bad = field.metadata, []
    if kind is float:
        bad.append(st.sampled_from(["nan", "inf", "-inf", "NaN", "+inf"]))
    step = 1 if kind is int else 1e-9
    if meta.get("ge") is not None:
        bad.append(st.floats(-1e9, meta["ge"] - step) if kind is float else st.integers(-(10**9), meta["ge"] - 1))
    if meta.get("gt") is not None:
        bad.append(st.floats(-1e9, meta["gt"]) if kind is float else st.integers(-(10**9), meta["gt"]))
    if meta.get("le") is not None:
        bad.append(st.floats(meta["le"] + 1e-6, 1e9) if kind is float else st.integers(meta["le"] + 1, 10**9))
    return st.one_of(bad).map(str)


@pytest.mark.parametrize("command, field, kind", NUMERIC, ids=[f"{c}--{f.name}" for c, f, _ in NUMERIC])
@given(data=st.data())
def test_an_invalid_number_is_refused_before_any_file_is_written(command, field, kind, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    value = data.draw(_invalid(field, kind), label=field.name)
    cwd, stderr = os.getcwd(), io.StringIO()
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(stderr):
            try:
                status = cli.main([command, *MINIMAL[command], f"--{field.name}={value}"])
            except SystemExit as exc:  # argparse refuses a non-integer for an int option
                status = exc.code
    finally:
        os.chdir(cwd)
    err = stderr.getvalue()
    assert status == 2, err
    assert field.name in err and "Traceback" not in err
    assert not any(folder.iterdir())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", *MINIMAL["train"], "--lr", "inf"], "lr must be a finite number, got inf"),
        (["train", *MINIMAL["train"], "--momentum", "nan"], "momentum must be a finite number, got nan"),
        (["plane", *MINIMAL["plane"], "--unit", "inf"], "unit must be a finite number, got inf"),
        (["attack", *MINIMAL["attack"], "--eps", "1", "nan"], "eps must be a finite number, got nan"),
        (
            ["attack", *MINIMAL["attack"], "--device", "gpu"],
            "device must be auto, cpu, cuda or cuda:N (N a device number, e.g. cuda:0); got 'gpu'",
        ),
        (["attack", *MINIMAL["attack"], "--eps"], "eps needs at least one value"),
        (["distance", *MINIMAL["distance"], "--step", "20"], "need tol <= step <= max_radius"),
        (["train", *MINIMAL["train"], "--epochs", "10", "--milestones", "10"], "milestones must be increasing"),
        (
            ["prepare", *MINIMAL["prepare"], "--md5", "xyz"],
            "md5 must be empty or 32 lowercase hexadecimal digits; got 'xyz'",
        ),
    ],
)
def test_bad_options_give_a_clear_error_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("test_size", None, "test_size must be an integer, got None"),
        ("test_size", True, "test_size must be an integer, got True"),
        ("test_size", 2.5, "test_size must be an integer, got 2.5"),
        ("test_size", "3", "test_size must be an integer, got '3'"),
        ("alpha_ratio", None, "alpha_ratio must be a number, got None"),
        ("alpha_ratio", False, "alpha_ratio must be a number, got False"),
        ("eps", (0.5, True), "eps must be a number, got True"),
    ],
)
def test_a_value_of_another_kind_in_a_numeric_option_is_refused(field, value, message):
    """Options built in Python (not parsed from a command line) get the same check: the ranges
    alone let None and booleans through (True >= 0)."""
    from classaware.stages import attack

    with pytest.raises(ValueError, match=f"^invalid config options: {re.escape(message)}$"):
        attack.Config(source="s", method="pgd", objective="untargeted", out=Path("a.pt"), **{field: value})


# ----------------------------------------------------------------------------- outputs
def test_train_never_deletes_what_it_did_not_write(tmp_path, monkeypatch, capsys):
    """The issue's reproduction: `--out DIR` used to replace DIR wholesale."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "NOTES.txt").write_text("notes")
    status = cli.main(
        [
            *"train --arch resnet10_w8 --init_seed 0 --data_seed 0 --epochs 1 --milestones --train_size 256 --eval_size 50 --device cpu --out z".split()
        ]
    )
    assert status == 2
    assert "holds files that are not classaware checkpoints (NOTES.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["NOTES.txt", "z"]
    assert (tmp_path / "z" / "NOTES.txt").read_text() == "notes"


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write: chmod works unless we are root, for whom a folder of
    /proc/sys is read-only."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/proc/sys")
    if os.access(folder, os.W_OK):
        pytest.skip("no read-only folder to test with on this machine (root, writable /proc/sys)")
    return folder


@pytest.mark.parametrize(
    "where",
    [
        "read-only folder",
        "a folder where a file is expected",
        "a file where a folder is expected",
        "a file as the parent",
    ],
)
def test_unwritable_outputs_are_refused_before_any_compute(where, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain").write_text("x")
    (tmp_path / "folder").mkdir()
    argv, message = {
        "read-only folder": (
            ["attack", *MINIMAL["attack"][:-1], str(_unwritable_folder(tmp_path) / "a.pt")],
            "is not writable",
        ),
        "a folder where a file is expected": (
            ["attack", *MINIMAL["attack"][:-1], "folder"],
            "output folder is a folder",
        ),
        "a file where a folder is expected": (["predict", *MINIMAL["predict"][:-1], "plain"], "output plain is a file"),
        "a file as the parent": (["attack", *MINIMAL["attack"][:-1], "plain/a.pt"], "plain is not a folder"),
    }[where]
    assert cli.main(argv) == 2  # the data file does not exist: an error about it would mean compute had started
    err = capsys.readouterr().err
    assert message in err and "cifar10.pt" not in err, err


def test_outputs_lists_every_output_option_of_every_stage():
    from classaware.stages import attack
    from classaware.stages import train as train_stage

    cfg = train_stage.Config(
        arch="resnet10_w8", init_seed=0, data_seed=0, out=Path("m"), results=Path("r.json"), metrics=Path("m.json")
    )
    assert outputs(cfg) == [(Path("m"), "dir"), (Path("r.json"), "file"), (Path("m.json"), "file")]
    assert outputs(attack.Config(source="s", method="fgm", objective="targeted", out=Path("a.pt"))) == [
        (Path("a.pt"), "file")
    ]
    for command in cli.COMMANDS:  # every stage that writes declares it (download's root, report's folder ...)
        if command not in ("profile", "estimate", "view"):  # estimate only prints; view copies to fixed places
            fields = dataclasses.fields(_config(command))
            assert any(f.metadata.get("output") for f in fields), command


# ----------------------------------------------------------------------------- killed runs
def test_a_stale_temporary_from_a_killed_write_is_removed_by_the_next_write(tmp_path, monkeypatch):
    archive = write_image_folder(tmp_path / "c.tar.gz", folder_images(1))
    out = tmp_path / "data" / "cifar10.pt"
    out.parent.mkdir()
    stale = out.parent / ".cifar10.pt.k1ll3d_x.tmp"  # what SIGKILL during prepare's write leaves
    stale.write_bytes(b"\0" * 1000)
    other = out.parent / ".other.pt.abc.tmp"  # another file's temporary is not ours to remove
    other.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["prepare", "--archive", str(archive), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == [".other.pt.abc.tmp", "cifar10.pt"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "f.pt") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert not any(tmp_path.iterdir())


def test_sigterm_during_a_write_removes_the_temporary(tmp_path):
    script = f"""
import os, signal
from pathlib import Path
from classaware import cli
from classaware.files import atomic_path
signal.signal(signal.SIGTERM, cli._exit_on_sigterm)
with atomic_path(Path({str(tmp_path)!r}) / "big.pt") as tmp:
    tmp.write_bytes(b"x" * 1000)
    os.kill(os.getpid(), signal.SIGTERM)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert not any(tmp_path.iterdir())


RECIPE = Recipe(epochs=2, lr=0.05, milestones=(), batch_size=16)


def test_a_stray_file_in_the_work_folder_is_refused_not_carried_into_the_model(tiny, tmp_path):
    work = tmp_path / "m.partial"
    work.mkdir()
    (work / "stray.txt").write_text("not training's")
    with pytest.raises(ValueError, match=r"m.partial holds files training did not write \(stray.txt\).*rm -r"):
        train(TrainSpec("resnet10_w8", 0, 0, RECIPE), *tiny, tmp_path / "m")
    assert (work / "stray.txt").is_file() and not (tmp_path / "m").exists()


def test_a_corrupt_resume_state_names_the_command_that_clears_it(tiny, tmp_path):
    work = tmp_path / "m.partial"
    work.mkdir()
    (work / "state.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match=rf"corrupt.*cannot be resumed: delete it with `rm -r {work}`"):
        train(TrainSpec("resnet10_w8", 0, 0, RECIPE), *tiny, tmp_path / "m")


def test_temporaries_of_a_killed_checkpoint_write_do_not_block_the_resume(tiny, tmp_path):
    work = tmp_path / "m.partial"
    work.mkdir()
    (work / ".epoch_001.pt.abc_12.tmp").write_bytes(b"half")
    train(TrainSpec("resnet10_w8", 0, 0, RECIPE), *tiny, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["epoch_002.pt"]


# ----------------------------------------------------------------------------- profiles
def _profiles(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "paper.yaml").write_text((REPO / "profiles" / "paper.yaml").read_text())
    (folder / "broken.yaml").write_text(text)
    return folder


@pytest.mark.parametrize(
    "text, message",
    [
        ("atack:\n  test_size: 10\n", "unknown key 'atack': the top level has"),
        ("attack:\n  tests_size: 10\n", "unknown key 'attack.tests_size': attack has eps, steps"),
        ("attack: 5\n", "'attack' must be a mapping, got a value"),
        ("attack:\n  eps: 1.0\n", "'attack.eps' must be a list, got a value"),
        ("zoo:\n  a: {arch: resnet10_w8, init_seed: 0}\n", "zoo member 'a' must give exactly"),
        ("- attack\n", "must be a mapping of groups"),
    ],
)
def test_a_misspelt_profile_is_an_error_naming_the_key(text, message, tmp_path):
    folder = _profiles(tmp_path, text)
    with pytest.raises(ValueError, match=f"broken.yaml: .*{message}|{message}"):
        profile.render("broken", folder)
    status = cli.main(["profile", "broken", "--profiles_dir", str(folder), "--out", str(tmp_path / "params.yaml")])
    assert status == 2 and not (tmp_path / "params.yaml").exists()


def test_profile_refuses_a_data_archive_that_does_not_exist(tmp_path, capsys):
    status = cli.main(
        [
            "profile",
            "quick",
            "--profiles_dir",
            str(REPO / "profiles"),
            "--data",
            str(tmp_path / "nothere.tar.gz"),
            "--out",
            str(tmp_path / "params.yaml"),
        ]
    )
    assert status == 2
    assert "nothere.tar.gz does not exist" in capsys.readouterr().err
    assert not (tmp_path / "params.yaml").exists()


# ----------------------------------------------------------------------------- library inputs
class ParameterFree(nn.Module):
    """A classifier with neither parameters nor buffers: logits = a fixed linear map."""

    def __init__(self, dim: int, num_classes: int = 10):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.W = torch.randn(num_classes, dim, generator=g)  # a plain attribute, not a parameter

    def forward(self, x):
        return x.flatten(1) @ self.W.T


SHAPE = (3, 4, 4)
DIM = 3 * 4 * 4


def _entry_points(model, x, y, v):
    """Every public function that takes a model and a batch of images, called on ``x``
    (``v``: directions for boundary_distance)."""
    return {
        "fgm": lambda: fgm(model, x, y, eps=0.5),
        "pgd": lambda: pgd(model, x, y, eps=0.5, alpha=0.1, steps=2),
        "n_targeted_pgd": lambda: n_targeted_pgd([model, model], x, [y, y], eps=0.5, alpha=0.1, steps=2),
        "predict": lambda: predict(model, x),
        "gradient_direction": lambda: gradient_direction(model, x, y),
        "boundary_distance": lambda: boundary_distance(model, x, y, v, max_radius=2.0, step=0.1, tol=0.01),
        "model_distance": lambda: model_distance(
            model, model, x, y, SearchSettings(max_radius=2.0, step=0.1, tol=0.01)
        ),
    }


def test_a_model_without_parameters_works_everywhere():
    model = ParameterFree(DIM)
    x = images(6, SHAPE, seed=1)
    y = predict(model, x)
    for call in _entry_points(model, x, y, gradient_direction(model, x, y)).values():
        call()  # no StopIteration, no error
    decision_plane(model, [model], x[0], int(y[0]), span=2)
    adv = pgd(model, x, y, eps=0.5, alpha=0.1, steps=2)
    assert (adv - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-5


@pytest.mark.parametrize(
    "bad, message",
    [
        ("outside [0, 1]", "x must lie in \\[0, 1\\]"),
        ("uint8", "got dtype torch.uint8 \\(convert uint8 images with classaware.data.to_float"),
        ("NaN", "x must lie in \\[0, 1\\] and be finite"),
        ("no batch dimension", "x must have shape \\(N, C, H, W\\)"),
    ],
)
def test_images_outside_the_contract_are_refused_by_every_entry_point(bad, message):
    model = LinearClassifier.random(10, DIM, seed=0)
    x = images(4, SHAPE, seed=2)
    y = labels(4, seed=2)
    x_bad = {
        "outside [0, 1]": x * 30 - 10,
        "uint8": (x * 255).to(torch.uint8),
        "NaN": x.clone().fill_(math.nan),
        "no batch dimension": x[0],
    }[bad]
    for call in _entry_points(model, x_bad, y, torch.zeros(x.shape)).values():
        with pytest.raises(ValueError, match=message):
            call()
    if bad != "no batch dimension":  # decision_plane takes one image
        with pytest.raises(ValueError, match=message):
            decision_plane(model, [model], x_bad[0], int(y[0]), span=2)


@pytest.mark.parametrize(
    "labels_, message",
    [
        (torch.tensor([0, 1, 2]), "y must have shape \\(4,\\)"),
        (torch.tensor([0, 1, 2, 10]), "y must hold class labels in 0..9"),
        (torch.tensor([0, 1, -1, 2]), "y must hold class labels in 0..9"),
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), "y must be an integer tensor"),
    ],
)
def test_labels_outside_the_contract_are_refused(labels_, message):
    model = LinearClassifier.random(10, DIM, seed=0)
    x = images(4, SHAPE, seed=2)
    for call in (
        lambda: fgm(model, x, labels_, eps=0.5),
        lambda: pgd(model, x, labels_, eps=0.5, alpha=0.1, steps=1),
        lambda: gradient_direction(model, x, labels_),
        lambda: boundary_distance(model, x, labels_, torch.zeros(x.shape)),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(ValueError, match=message.replace("y must", "target_classes must")):
        pgd(model, x, labels(4), eps=0.5, alpha=0.1, steps=1, target_classes=labels_)


def test_predicting_uint8_images_is_refused_rather_than_read_as_0_to_255():
    model = LinearClassifier.random(10, DIM, seed=0)
    x = images(8, SHAPE, seed=5)
    with pytest.raises(ValueError, match="uint8"):
        predict(model, (x * 255).round().to(torch.uint8))
