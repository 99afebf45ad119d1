"""Profiles and the dvc.yaml <-> params.yaml <-> CLI contract: every stage's command line, as DVC
resolves it for every profile, parses into that stage's validated Config."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
import yaml

from classaware.cli import COMMANDS, build_parser
from classaware.config import from_args
from classaware.stages import profile
from conftest import REPO

PROFILES = REPO / "profiles"
NAMES = sorted(p.stem for p in PROFILES.glob("*.yaml"))


def test_the_committed_params_file_is_the_paper_profile_verbatim():
    assert profile.render("paper", PROFILES) == (PROFILES / "paper.yaml").read_text()
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True)
    if committed.returncode == 0:  # a checkout with history
        assert committed.stdout == (PROFILES / "paper.yaml").read_text()


@pytest.mark.parametrize("name", [n for n in NAMES if n != "paper"])
def test_a_profile_replaces_whole_groups_and_keeps_the_rest(name):
    base = yaml.safe_load((PROFILES / "paper.yaml").read_text())
    override = yaml.safe_load((PROFILES / f"{name}.yaml").read_text())
    params = yaml.safe_load(profile.render(name, PROFILES))
    assert params["profile"] == name
    for group in base:
        if group != "profile":
            assert params[group] == override.get(group, base[group]), group
    assert set(params) == set(base)  # a profile only replaces groups, it invents none


def test_data_option_points_the_prepare_stage_at_a_local_archive():
    params = yaml.safe_load(profile.render("quick", PROFILES, data=REPO / "x.tar.gz"))
    assert params["data"]["source"] == str(REPO / "x.tar.gz")
    assert yaml.safe_load(profile.render("paper", PROFILES, data=REPO / "x.tar.gz"))["profile"] == "paper"


def test_unknown_profile_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: paper, quick, smoke"):
        profile.Config(name="huge", profiles_dir=PROFILES)


@pytest.mark.parametrize("name", NAMES)
def test_every_stage_command_parses_into_its_config(name, tmp_path):
    from dvc.repo import Repo

    for path in ("dvc.yaml", ".dvc/config"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    (tmp_path / "params.yaml").write_text(profile.render(name, PROFILES))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    with Repo(str(tmp_path)) as repo:
        cmds = {stage.addressing: stage.cmd for stage in repo.index.stages if getattr(stage, "cmd", None)}
    assert len(cmds) > 10
    for stage_name, cmd in cmds.items():
        argv = shlex.split(cmd)
        assert argv[0] == "classaware" and argv[1] in COMMANDS, stage_name
        args = build_parser(argv[1]).parse_args(argv[1:])
        from_args(__import__(f"classaware.stages.{COMMANDS[argv[1]][0]}", fromlist=["Config"]).Config, args)
