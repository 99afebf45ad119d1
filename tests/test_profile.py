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
def test_a_profile_merges_its_groups_into_the_papers_and_keeps_the_rest(name):
    base = yaml.safe_load((PROFILES / "paper.yaml").read_text())
    override = yaml.safe_load((PROFILES / f"{name}.yaml").read_text())
    params = yaml.safe_load(profile.render(name, PROFILES))
    assert params["profile"] == name
    for group in base:
        if group != "profile":
            expected = override.get(group, base[group])
            if isinstance(expected, dict) and group not in profile.REPLACED_WHOLE:  # option groups are flat
                expected = {**base[group], **expected}
            assert params[group] == expected, group
    assert set(params) == set(base)  # a profile only replaces groups, it invents none


def test_data_option_points_the_prepare_stage_at_a_local_archive():
    params = yaml.safe_load(profile.render("quick", PROFILES, data=REPO / "x.tar.gz"))
    assert params["data"]["source"] == str(REPO / "x.tar.gz")
    assert yaml.safe_load(profile.render("paper", PROFILES, data=REPO / "x.tar.gz"))["profile"] == "paper"


def test_unknown_profile_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: gpu-check, paper, quick, smoke"):
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


def _imported_modules(path) -> set:
    """The classaware modules ``path`` imports (relative imports), transitively, itself included."""
    import ast

    src = REPO / "src" / "classaware"
    seen, todo = set(), [path]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        package = list(p.relative_to(src).parent.parts)
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                names = [node.module] if node.module else [a.name for a in node.names]
                todo += [f for f in (src.joinpath(*base, *n.split(".")).with_suffix(".py") for n in names) if f.is_file()]
    return {str(p.relative_to(REPO)) for p in seen}


def test_every_stage_depends_on_the_code_it_runs():
    """A code change reruns exactly the stages whose modules changed: each stage lists every
    classaware module its subcommand imports, and no other."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        command = shlex.split(body["cmd"])[1]
        module = REPO / "src" / "classaware" / "stages" / f"{COMMANDS[command][0]}.py"
        listed = {d for d in body["deps"] if d.startswith("src/")}
        assert listed == _imported_modules(module), name
