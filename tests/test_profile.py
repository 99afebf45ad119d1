"""Profiles and the dvc.yaml <-> params.yaml <-> CLI contract: every stage's command line, as DVC
resolves it for every profile, parses into that stage's validated Config."""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO

from classaware import profiles
from classaware.cli import COMMANDS, build_parser
from classaware.config import from_args
from classaware.stages import profile

PROFILES = REPO / "profiles"
NAMES = sorted(p.stem for p in PROFILES.glob("*.yaml"))


def test_the_committed_params_file_is_the_paper_profile_verbatim():
    assert profiles.render("paper", PROFILES) == (PROFILES / "paper.yaml").read_text()
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True)
    if committed.returncode == 0:  # a checkout with history
        assert committed.stdout == (PROFILES / "paper.yaml").read_text()


@pytest.mark.parametrize("name", [n for n in NAMES if n != "paper"])
def test_a_profile_states_only_what_differs_and_is_merged_key_by_key(name):
    base = yaml.safe_load((PROFILES / "paper.yaml").read_text())
    override = yaml.safe_load((PROFILES / f"{name}.yaml").read_text())
    params = yaml.safe_load(profiles.render(name, PROFILES))
    assert params["profile"] == name and set(params) == set(base)  # a profile invents no group
    for group, options in base.items():
        if group in ("profile", "zoo") or not isinstance(options, dict):
            continue
        for key, value in options.items():
            assert params[group][key] == override.get(group, {}).get(key, value), (group, key)
        for key, value in override.get(group, {}).items():
            assert value != options[key], f"{name}.yaml restates {group}.{key} = {value!r} from paper.yaml"
    assert params["zoo"] == override["zoo"]  # replaced whole


def test_merge_replaces_lists_and_the_zoo_whole_and_merges_mappings():
    base = {"a": {"x": 1, "y": [1, 2]}, "zoo": {"m1": {"arch": "r"}, "m2": {"arch": "v"}}}
    merged = profiles.merge(base, {"a": {"y": [3]}, "zoo": {"n1": {"arch": "r"}}})
    assert merged == {"a": {"x": 1, "y": [3]}, "zoo": {"n1": {"arch": "r"}}}
    assert base["a"]["y"] == [1, 2]  # the base is not changed


def test_data_option_points_the_prepare_stage_at_a_local_archive():
    params = yaml.safe_load(profiles.render("quick", PROFILES, data=REPO / "x.tar.gz"))
    assert params["data"] == {"archive": str(REPO / "x.tar.gz")}
    assert yaml.safe_load(profiles.render("paper", PROFILES, data=REPO / "x.tar.gz"))["profile"] == "paper"


def test_unknown_profile_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: gpu-check, paper, quick, smoke"):
        profile.Config(name="huge", profiles_dir=PROFILES)


@pytest.mark.parametrize("name", NAMES)
def test_every_stage_command_parses_into_its_config(name, tmp_path):
    from dvc.repo import Repo

    for path in ("dvc.yaml", ".dvc/config"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    (tmp_path / "params.yaml").write_text(profiles.render(name, PROFILES))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    with Repo(str(tmp_path)) as repo:
        cmds = {stage.name: stage.cmd for stage in repo.index.stages if getattr(stage, "cmd", None)}
    assert len(cmds) > 10
    params = profiles.merged_params(name, PROFILES)
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage_name, cmd in cmds.items():
        argv = shlex.split(cmd)
        assert argv[0] == "classaware" and argv[1] in COMMANDS, stage_name
        args = build_parser(argv[1]).parse_args(argv[1:])
        cfg = from_args(__import__(f"classaware.stages.{COMMANDS[argv[1]][0]}", fromlist=["Config"]).Config, args)
        # the merged profile is what DVC runs: every option of every group the stage unpacks
        values = _flat(cfg)
        base, _, key = stage_name.partition("@")
        body = raw[base]
        for group in re.findall(r"\$\{(\w+)\}", body.get("do", body)["cmd"]):
            # ${item} of a foreach over a mapping (the zoo) unpacks that member's options
            options = params.get(group)
            if group == "item" and isinstance(params.get(body["foreach"][2:-1]), dict):
                options = params[body["foreach"][2:-1]][key]
            for option, value in options.items() if isinstance(options, dict) else ():
                assert values[option] == (tuple(value) if isinstance(value, list) else value), (
                    stage_name,
                    group,
                    option,
                )


def _flat(cfg) -> dict:
    """The option values of a stage's Config, nested dataclasses flattened (as on the command line)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out |= _flat(value) if dataclasses.is_dataclass(value) else {f.name: value}
    return out


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
                todo += [
                    f for f in (src.joinpath(*base, *n.split(".")).with_suffix(".py") for n in names) if f.is_file()
                ]
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


def test_a_table2_learner_may_not_start_from_a_zoo_models_initial_weights(tmp_path):
    for name in ("paper.yaml", "quick.yaml"):
        (tmp_path / name).write_text((PROFILES / name).read_text())
    (tmp_path / "quick.yaml").write_text((PROFILES / "quick.yaml").read_text() + "\n" + "grid:\n  init_seed: 1\n")
    with pytest.raises(ValueError, match=r"grid.init_seed 1 is a zoo model's init_seed \(\[0, 1\]\)"):
        profiles.merged_params("quick", tmp_path)
    for name in NAMES:  # every profile's learners start from a seed of their own
        params = profiles.merged_params(name, PROFILES)
        assert params["grid"]["init_seed"] not in {m["init_seed"] for m in params["zoo"].values()}
