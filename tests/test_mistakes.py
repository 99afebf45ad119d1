"""A new user's and a reviewer's plausible mistakes (issue 30, items 1-6; issue 29, item 12): each is
caught where it is made, before any compute, with one line that names the fix, exit status 2,
and nothing changed."""

from __future__ import annotations

import contextlib
import json
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers_data import folder_images, write_image_folder, write_official_format
from helpers_repo import REPO, as_from_a_terminal, git, project, smoke_env

from classaware import cli
from classaware.workflow import deps, profile


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but git's and DVC's own (.dvc/tmp), with its bytes: "nothing changed"
    is this, unchanged."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts and not p.relative_to(root).as_posix().startswith(".dvc/tmp/")
    }


def _run(capsys, root: Path, *argv: str) -> tuple[int, str]:
    """``classaware ARGV`` in ``root``, in this process: its exit status and what it wrote to stderr."""
    capsys.readouterr()
    with contextlib.chdir(root):
        try:
            status = cli.main(list(argv))
        except SystemExit as exc:
            status = exc.code
    return status, capsys.readouterr().err


def _refused(capsys, root: Path, argv: list[str], *words: str) -> str:
    """``classaware ARGV`` in ``root`` is refused: exit 2, one line naming ``words``, nothing changed."""
    before = _snapshot(root)
    status, err = _run(capsys, root, *argv)
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith(f"classaware {argv[0]}: error: "), err
    assert all(w in err for w in words) and "Traceback" not in err and "Errno" not in err, err
    assert _snapshot(root) == before
    return err


@pytest.fixture
def root(tmp_path) -> Path:
    return project(tmp_path / "repo")


def _smoke(root: Path, capsys) -> None:
    """The project switched to `smoke` on a small local archive (beside it, as ../shared/data/ is)."""
    archive = write_image_folder(root.parent / "c10.tar.gz", folder_images(1))
    status, err = _run(capsys, root, "profile", "smoke", "--data", str(archive))
    assert status == 0, err


# ----------------------------------------------------------------------------- item 1: the archive, at `profile`
@pytest.mark.parametrize("what", ["README.md", "a tar.gz of other files", "a folder archive short of classes"])
def test_profile_refuses_an_archive_that_is_not_cifar10_before_writing_anything(what, root, tmp_path, capsys):
    bad = {
        "README.md": lambda p: (p.write_text((REPO / "README.md").read_text()), p)[1],
        "a tar.gz of other files": lambda p: (
            subprocess.run(["tar", "czf", p, "-C", REPO, "README.md"], check=True),
            p,
        )[1],
        "a folder archive short of classes": lambda p: write_image_folder(p, folder_images(1, classes=("cat", "dog"))),
    }[what](tmp_path / ("README.md" if what == "README.md" else "x.tar.gz"))
    _refused(capsys, root, ["profile", "smoke", "--data", str(bad)], "is not a CIFAR-10 archive", "classaware download")


def test_profile_without_data_refuses_when_the_archive_it_names_is_missing(root, capsys):
    _refused(
        capsys,
        root,
        ["profile", "cpu"],
        "data/cifar-10-python.tar.gz, the CIFAR-10 archive profile cpu reads, does not exist",
        "`classaware download`",
        "`classaware profile cpu --data PATH`",
    )
    (root / "data").mkdir()
    write_official_format(root / "data" / "cifar-10-python.tar.gz")  # what `classaware download` leaves
    status, err = _run(capsys, root, "profile", "cpu")
    assert status == 0, err


# ----------------------------------------------------------------------------- item 2: a fresh clone before any profile
def test_in_a_fresh_clone_repro_names_the_fix_before_anything(root, capsys):
    err = _refused(capsys, root, ["repro"], "data/cifar-10-python.tar.gz", "`classaware download`", "--data PATH")
    assert "stages" not in err


@pytest.mark.slow
def test_in_a_fresh_clone_dvc_repro_points_at_data_dvc_which_names_the_fix(root):
    """DVC's own error cannot be replaced: it names data.dvc, whose first lines say what to run."""
    done = subprocess.run(["dvc", "repro"], cwd=root, env=smoke_env(), capture_output=True, text=True)
    assert done.returncode != 0 and "data.dvc" in done.stderr, done.stderr
    head = "".join((root / "data.dvc").read_text().splitlines(keepends=True)[:6])
    assert "missing data 'source'" in head and "classaware download" in head and "--data PATH" in head, head


def test_data_dvc_names_the_fix_in_its_first_lines():
    head = "".join((REPO / "data.dvc").read_text().splitlines(keepends=True)[:6])
    assert "missing data 'source'" in head and "classaware download" in head and "--data PATH" in head, head


# ----------------------------------------------------------------------------- item 3: an unfinished run
def _toy(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "seed.txt").write_text("seed\n")
    stages = {
        "a": {"cmd": "cat seed.txt > a.txt", "deps": ["seed.txt"], "outs": ["a.txt"]},
        "b": {"cmd": "cat a.txt > b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
        "c": {"cmd": "cat b.txt > c.txt", "deps": ["b.txt"], "outs": ["c.txt"]},
    }
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    git(folder, "init", "-q")
    subprocess.run(["dvc", "init", "-q"], cwd=folder, env=smoke_env(), check=True)
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "toy")
    return folder


def test_the_audit_of_an_unfinished_run_says_so_and_exits_2(tmp_path, capsys):
    repo = _toy(tmp_path / "toy")
    _refused(capsys, repo, ["audit"], "the run is unfinished: 3 stages have not run (a, b, c)", "dvc repro")
    subprocess.run(["dvc", "repro", "a"], cwd=repo, env=smoke_env(), check=True, capture_output=True)
    err = _refused(capsys, repo, ["audit"], "the run is unfinished: 2 stages have not run (b, c)")
    assert "FAILS" not in err
    subprocess.run(["dvc", "repro"], cwd=repo, env=smoke_env(), check=True, capture_output=True)
    (repo / "seed.txt").write_text("another seed\n")  # the run is now behind its input, not tampered with
    _refused(
        capsys,
        repo,
        ["audit"],
        "the run is unfinished: 1 stage has not run since its code, parameters or inputs changed (a;",
    )


# ----------------------------------------------------------------------------- item 4: estimate
def test_estimate_refuses_a_throughput_file_that_does_not_exist(root, capsys):
    _refused(capsys, root, ["estimate", "--throughput", "nope.json"], "--throughput nope.json does not exist")


@pytest.mark.slow
def test_estimate_uses_the_stage_times_this_workspace_measured_where_no_figures_cover_them(root, capsys):
    """A `cpu` run: no throughput figures cover its architectures; the run just measured every
    stage (logs/timings.jsonl), with the commands dvc.lock records."""
    params = profile.merged_params("smoke", root / "profiles")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    commands = profile.commands((root / "params.yaml").read_text(), root)
    (root / "dvc.lock").write_text(
        yaml.safe_dump({"schema": "2.0", "stages": {s: {"cmd": c} for s, c in commands.items()}})
    )
    (root / "logs").mkdir()
    lines = [
        json.dumps({"stage": s, "command": c.split()[1], "seconds": 36.0, "experiment": None})
        for s, c in commands.items()
    ]
    (root / "logs" / "timings.jsonl").write_text("\n".join(lines) + "\n")
    with contextlib.chdir(root):
        assert cli.main(["estimate"]) == 0
    out = capsys.readouterr().out
    assert "?" not in out.replace("total: ?", ""), out
    assert (
        f"total: {36.0 * len(commands) / 3600:.2f} h ({len({s.split('@')[0] for s in commands})} stages as measured here)"
        in out
    ), out
    assert "* measured here" in out


# ----------------------------------------------------------------------------- item 5: outside the project, unknown profiles, hand edits
def test_outside_the_project_the_workflow_commands_say_so(tmp_path, capsys):
    for argv in (["profile", "smoke"], ["replicate"], ["replicate", "--profile", "smoke"]):
        _refused(capsys, tmp_path, argv, "is not a classaware project")


def test_replicate_refuses_an_unknown_profile_naming_the_known_ones(root, capsys):
    _refused(
        capsys,
        root,
        ["replicate", "--profile", "nope"],
        "unknown profile 'nope'; known: cpu, gpu-check, paper, quick, smoke",
    )


def test_profile_refuses_to_overwrite_hand_edits_without_force(root, capsys):
    _smoke(root, capsys)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "smoke")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("steps: 3", "steps: 5", 1))
    _refused(
        capsys, root, ["profile", "quick", "--data", "data/c10.tar.gz"],
        "params.yaml holds edits no profile makes (attack.steps: 5 where profile smoke has 3)",
        "`classaware profile quick --force` overwrites them",
    )  # fmt: skip
    status, err = _run(capsys, root, "profile", "quick", "--data", "data/c10.tar.gz", "--force")
    assert status == 0, err
    assert yaml.safe_load(params.read_text())["profile"] == "quick"


def test_profile_overwrites_a_profiles_rendering_or_the_committed_copy_without_asking(root, capsys):
    _smoke(root, capsys)  # params.yaml is smoke's rendering, not committed
    status, err = _run(capsys, root, "profile", "quick", "--data", "data/c10.tar.gz")
    assert status == 0, err
    git(root, "add", "-A")
    git(root, "commit", "-qm", "quick")
    (root / "profiles" / "quick.yaml").write_text(
        (root / "profiles" / "quick.yaml").read_text().replace("steps:", "steps: 4 #", 1)
    )
    status, err = _run(capsys, root, "profile", "smoke", "--data", "data/c10.tar.gz")  # committed: nothing is lost
    assert status == 0, err


# ----------------------------------------------------------------------------- item 6: spelling, --version, Ctrl-C
def test_every_option_takes_the_hyphen_spelling_too(root, capsys):
    args = cli.build_parser("train").parse_args(["train", "--arch", "resnet10_w8", "--init-seed", "1", "--data_seed", "2",
                                                 "--out", "m", "--train-size", "5", "--no-flip", "--save-epochs", "1"])  # fmt: skip
    assert (args.init_seed, args.data_seed, args.train_size, args.flip, args.save_epochs) == (1, 2, 5, False, [1])
    args = cli.build_parser("slurm").parse_args(["slurm", "submit", "--dry-run", "--gpus-per-job", "0"])
    assert args.dry_run is True and args.gpus_per_job == 0
    status, err = _run(capsys, root, "repro", "--log-dir", "logs/x", "--progress-every", "-1")
    assert status == 2 and "progress_every must be >= 0" in err, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"classaware {cli._version()}" and cli._version()[0].isdigit()


def test_ctrl_c_prints_one_line_and_exits_130(capsys, monkeypatch):
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(deps, "run", interrupted)
    assert cli.main(["deps"]) == 130
    assert capsys.readouterr().err == "classaware deps: interrupted\n"


@pytest.mark.slow
def test_ctrl_c_during_a_stage_prints_one_line_and_exits_130(tmp_path):
    """A real SIGINT, as a terminal's Ctrl-C sends it, to a training."""
    archive = write_image_folder(tmp_path / "c.tar.gz", folder_images(20))
    subprocess.run(["classaware", "prepare", "--archive", archive, "--out", tmp_path / "c.pt"], env=smoke_env(), check=True,
                   capture_output=True)  # fmt: skip
    argv = ["classaware", "train", "--arch", "resnet10_w8", "--init_seed", "0", "--data_seed", "0", "--out", tmp_path / "m",
            "--data", tmp_path / "c.pt", "--epochs", "1000", "--milestones", "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(argv, env=smoke_env(), stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "m.partial").is_dir() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()  # a training of 1000 epochs must not outlive a failed test
    assert proc.returncode == 130 and err.endswith("classaware train: interrupted\n") and "Traceback" not in err, err


# ----------------------------------------------------------------------------- issue 29 item 12: params.yaml by hand
# Every command reads params.yaml through one check (workflow.profile), so each edit meets one
# command and each command one edit: four runs of `profile smoke --data` cover the kind.
@pytest.mark.parametrize(
    "edit, words, command",
    [
        (lambda p: {**p, "seed_shfit": 1}, "unknown key 'seed_shfit' (a misspelling?", ["repro"]),
        (lambda p: {k: v for k, v in p.items() if k != "data"}, "params.yaml lacks 'data', which every profile gives",
         ["replicate"]),
        (lambda p: {**p, "attack": {**p["attack"], "stpes": 3}}, "unknown key 'attack.stpes'", ["estimate"]),
        (lambda p: {**p, "attack": 3}, "'attack' must be a mapping, got a value", ["slurm", "submit"]),
    ],
)  # fmt: skip
def test_a_params_yaml_no_profile_would_write_is_refused_naming_the_key(edit, words, command, root, capsys):
    _smoke(root, capsys)
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(edit(params), sort_keys=False))
    _refused(capsys, root, command, words, "classaware profile NAME")


def test_the_hyphen_spelling_reaches_every_command():
    """Every option of every command has both spellings (argparse's own parser, as the CLI builds it)."""
    for command in cli.COMMANDS:
        parser = cli.build_parser(command)
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        for action in sub._actions:
            long = [o for o in action.option_strings if o.startswith("--") and not o.startswith("--no-")]
            if any("_" in o for o in long):
                assert any(o == long[0].replace("_", "-") for o in long), (command, action.option_strings)


# ----------------------------------------------------------------------------- issue 29 item 11: the reviewer's commands
def test_the_reviewers_commands_the_suite_runs_are_read_from_reproduce_md():
    """tests/test_audit.py runs these, as written, on the session's smoke run."""
    from test_audit import reviewers_commands

    side, reviewer = reviewers_commands()
    assert side[0].startswith("dvc remote add -d store URL") and side[-1] == "dvc push --with-deps dvc.yaml"
    assert reviewer[0].startswith("git clone URL-OF-THE-REPOSITORY") and reviewer[-3:] == [
        "dvc pull --with-deps dvc.yaml",
        "dvc status",
        "classaware audit",
    ]


@pytest.mark.parametrize(
    "script, argv",
    [("zoo_pilot.py", ["--archs", "resnet10_w8"]), ("scale_study.py", [])],
)
def test_the_benchmarks_that_train_in_workers_refuse_a_missing_data_file_before_starting_them(
    script, argv, tmp_path, capsys, monkeypatch
):
    """Their workers load the data: a wrong path is refused by the parent, exit 2, nothing written."""
    out, missing = tmp_path / "out", tmp_path / "nope.pt"
    monkeypatch.setattr(sys, "argv", [script, "--data", str(missing), "--out", str(out), *argv])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(REPO / "benchmarks" / script), run_name="__main__")
    err = capsys.readouterr().err
    assert exited.value.code == 2 and f"error: --data {missing} does not exist" in err, err
    assert not out.exists()
