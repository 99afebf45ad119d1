from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import torch
from helpers_data import folder_images, write_image_folder
from hypothesis import given
from hypothesis import strategies as st

from classaware import cli, stages, workflow
from classaware.config import add_arguments, from_args, help_field
from classaware.data import load_canonical, read_archive
from classaware.stages import train as train_stage
from classaware.training import Recipe, TrainMetrics


@dataclass(frozen=True)
class Inner:
    rate: float = help_field(0.5, "a rate")
    sizes: tuple[int, ...] = help_field((1, 2), "sizes")
    on: bool = help_field(True, "a switch")


@dataclass(frozen=True)
class Outer:
    name: str = help_field(help="a required string")
    count: int = help_field(help="a required int")
    inner: Inner = Inner()
    path: Path = help_field(Path("a/b.pt"), "a path")
    maybe: int | None = help_field(None, "an optional int")
    maybe_path: Path | None = help_field(None, "an optional path")
    scales: tuple[float, ...] = help_field((), "floats")
    mode: Literal["x", "y"] = help_field("x", "a choice")
    flag: bool = help_field(False, "a flag")


def parse(cls, argv: list[str]):
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser, cls)
    return from_args(cls, parser.parse_args(argv))


texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10)
paths = st.lists(
    st.text("abcxyz_.0123", min_size=1, max_size=5).filter(lambda s: s not in (".", "..")), min_size=1, max_size=3
).map(lambda parts: Path("/".join(parts)))
floats = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def outers(draw) -> Outer:
    return Outer(
        name=draw(texts),
        count=draw(st.integers(-(10**12), 10**12)),
        inner=Inner(draw(floats), tuple(draw(st.lists(st.integers(-50, 50), max_size=4))), draw(st.booleans())),
        path=draw(paths),
        maybe=draw(st.none() | st.integers(-5, 5)),
        maybe_path=draw(st.none() | paths),
        scales=tuple(draw(st.lists(st.floats(0, 1e6), max_size=3))),
        mode=draw(st.sampled_from(["x", "y"])),
        flag=draw(st.booleans()),
    )


def to_argv(o: Outer) -> list[str]:
    """The options DVC would pass: ``--key=value``, lists as ``--key a b``, ``--key``/``--no-key``."""
    argv = [f"--name={o.name}", f"--count={o.count}", f"--rate={o.inner.rate!r}", "--sizes", *map(str, o.inner.sizes)]
    argv += [
        "--on" if o.inner.on else "--no-on",
        f"--path={o.path}",
        f"--mode={o.mode}",
        "--scales",
        *map(repr, o.scales),
    ]
    argv += [f"--maybe={o.maybe}"] if o.maybe is not None else []
    argv += [f"--maybe_path={o.maybe_path}"] if o.maybe_path is not None else []
    argv += ["--flag"] if o.flag else ["--no-flag"]
    return argv


@given(outers())
def test_options_round_trip_to_the_same_dataclass(o):
    back = parse(Outer, to_argv(o))
    assert back == o
    assert type(back.inner.sizes) is tuple and type(back.scales) is tuple
    assert isinstance(back.path, Path)


def test_omitted_options_take_the_defaults():
    assert parse(Outer, ["--name", "n", "--count", "3"]) == Outer("n", 3)
    assert parse(Outer, ["--name", "n", "--count", "3", "--sizes", "--no-on"]).inner == Inner(sizes=(), on=False)


def test_required_fields_are_required_and_types_are_checked():
    with pytest.raises(SystemExit):
        parse(Outer, ["--name", "n"])
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(Outer, ["--name", "n", "--count", "three"])
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(Outer, ["--name", "n", "--count", "1", "--mode", "z"])


def test_help_field_refuses_mutable_defaults():
    with pytest.raises(TypeError, match="tuple"):
        help_field([1, 2], "a list")


# ----------------------------------------------------------------------------- the train stage
TRAIN_ARGS = ["--arch", "resnet10_w8", "--init_seed", "1", "--data_seed", "2", "--out", "m"]


def test_train_options_build_the_stage_config():
    cfg = parse(
        train_stage.Config,
        TRAIN_ARGS + ["--epochs", "4", "--lr", "0.05", "--milestones", "3", "--no-flip", "--train_size", "2000"],
    )
    assert cfg == train_stage.Config(
        arch="resnet10_w8",
        init_seed=1,
        data_seed=2,
        out=Path("m"),
        recipe=Recipe(epochs=4, lr=0.05, milestones=(3,), flip=False),
        train_size=2000,
    )
    assert cfg.metrics is None and cfg.data == Path("data/cifar10.pt")
    assert parse(train_stage.Config, TRAIN_ARGS).recipe == Recipe()


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"arch": "resnet9000"}, "arch must be one of .*resnet18.*got 'resnet9000'"),
        ({"train_size": -1}, "train_size must be >= 0, got -1"),
        ({"eval_size": -5}, "eval_size must be >= 0, got -5"),
        ({"save_epochs": (101,)}, "save_epochs must lie in 1..100"),
    ],
)
def test_train_config_rejects_bad_values(change, problem):
    kwargs = {"arch": "resnet10_w8", "init_seed": 0, "data_seed": 0, "out": Path("m"), **change}
    with pytest.raises(ValueError, match=problem):
        train_stage.Config(**kwargs)


@pytest.mark.parametrize(
    "command, options",
    [
        ("train", ["--arch", "--init_seed", "--milestones", "--lr", "--train_size", "--no-flip"]),
        ("prepare", ["--archive", "--out", "--md5"]),
    ],
)
def test_subcommand_help_lists_the_options(capsys, command, options):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in options:
        assert option in out
    if command == "train":
        assert "(default: 0.01)" in out and "(default: 50)" in out


def test_help_lists_the_users_commands_first_then_the_evaluation_then_the_pipeline_stages(capsys):
    from classaware import evaluation

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    first, second = out.index("\ncommands:\n"), out.index("\npipeline stages (each a DVC stage's command")
    middle = out.index("\nevaluate any transfer attack")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split()[0] in cli.COMMANDS]
    assert listed == [*workflow.COMMANDS, *evaluation.COMMANDS, *stages.COMMANDS]
    assert first < out.index("  profile ") < middle < out.index("  evaluate ") < second < out.index("  prepare ")


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_default_is_shown_once(capsys, command):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    options = out.split(" --")[1:]
    assert options and all(option.count("(default:") <= 1 for option in options), out


def test_audit_only_says_its_default_in_its_own_words(capsys):
    with pytest.raises(SystemExit):
        cli.main(["audit", "--help"])
    assert "run only these checks (default: all)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_works_before_or_after_the_command(where, tmp_path):
    argv = ["profile", "smoke", "--out", str(tmp_path / "p.yaml")]
    argv = ["-v", *argv] if where == "before" else [*argv, "-v"]
    args = cli.build_parser("profile").parse_args(argv)
    assert args.verbose is True and args.command == "profile" and args.name == "smoke"
    assert cli.build_parser("profile").parse_args(argv[1:] if where == "before" else argv[:-1]).verbose is False


def test_a_pattern_needs_the_words_an_error_gives():
    with pytest.raises(TypeError, match="a pattern needs `expected`"):
        help_field("x", "a code", pattern="[a-z]+")


def test_bad_config_is_reported_before_any_data_is_read(capsys, tmp_path):
    argv = [
        *"train --arch resnet9000 --init_seed 0 --data_seed 0 --out".split(),
        str(tmp_path / "m"),
        *"--data".split(),
        str(tmp_path / "missing.pt"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "classaware train: error: invalid config options: arch must be one of" in err and "missing.pt" not in err
    assert (
        cli.main(
            ["train", *TRAIN_ARGS[:-1], str(tmp_path / "m"), "--epochs", "0", "--data", str(tmp_path / "missing.pt")]
        )
        == 2
    )
    assert "epochs must be >= 1, got 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_missing_data_file_gives_exit_code_2_and_a_message(capsys, tmp_path):
    missing = tmp_path / "nothere.pt"
    assert cli.main(["train", *TRAIN_ARGS[:-1], str(tmp_path / "m"), "--data", str(missing), "--device", "cpu"]) == 2
    assert f"classaware train: error: canonical CIFAR-10 file {missing} does not exist" in capsys.readouterr().err
    archive = tmp_path / "nothere.tar.gz"
    assert cli.main(["prepare", "--archive", str(archive), "--out", str(tmp_path / "c.pt")]) == 2
    assert f"classaware prepare: error: CIFAR-10 archive {archive} does not exist" in capsys.readouterr().err


def test_prepare_then_train_through_the_cli(capsys, tmp_path):
    archive = write_image_folder(tmp_path / "tiny.tar.gz", folder_images(per_class=2, seed=9))
    canonical = tmp_path / "data" / "cifar10.pt"
    assert cli.main(["prepare", "--archive", str(archive), "--out", str(canonical), "--md5", "0" * 32]) == 2
    assert "expected 00000000" in capsys.readouterr().err
    assert cli.main(["prepare", "--archive", str(archive), "--out", str(canonical)]) == 0
    want, got = read_archive(archive), load_canonical(canonical)
    assert (
        torch.equal(want.train_x, got.train_x)
        and torch.equal(want.test_y, got.test_y)
        and want.provenance == got.provenance
    )

    metrics = tmp_path / "metrics" / "m.json"
    argv = [
        *"train --arch resnet10_w8 --init_seed 0 --data_seed 0 --out".split(),
        str(tmp_path / "m"),
        *"--data".split(),
        str(canonical),
        *"--epochs 2 --milestones --batch_size 8 --train_size 10 --save_epochs 1 --results".split(),
        str(metrics),
        *"--device cpu".split(),
    ]
    assert cli.main(argv) == 0
    m = TrainMetrics.load(metrics)
    assert m.arch == "resnet10_w8" and m.n_train == 10
    assert m.dataset == "CIFAR-10 (unverified image-folder archive tiny.tar.gz)"
    assert sorted(m.test_acc) == ["1", "2"] and m.final() == (2, m.test_acc["2"])
    assert all(0 <= acc <= 1 for acc in m.test_acc.values())
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]


def test_a_nested_default_instance_gives_the_command_line_defaults():
    """train-grid's schedule defaults to section 4.2's, not to Schedule()'s section 3 values."""
    from classaware.stages import train_grid
    from classaware.training import SECTION4_SCHEDULE

    argv = ["train-grid", "--arch", "vgg11_bn_w8", "--labelling", "y", "--out", "o", "--results", "m.json"]
    assert from_args(train_grid.Config, cli.build_parser("train-grid").parse_args(argv)).schedule == SECTION4_SCHEDULE
