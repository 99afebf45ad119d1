"""Profiles and the dvc.yaml <-> params.yaml <-> CLI contract: every stage's command line, as DVC
resolves it for every profile, parses into that stage's validated Config."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers_data import folder_images, write_image_folder, write_official_format
from helpers_repo import REPO, git_commit_all, git_init

from classaware import cli, workflow
from classaware.cli import COMMANDS, build_parser
from classaware.config import from_args
from classaware.data import file_digests
from classaware.workflow import deps, profile

PROFILES = REPO / "profiles"
NAMES = sorted(p.stem for p in PROFILES.glob("*.yaml"))


def test_the_help_names_every_committed_profile():
    assert sorted(workflow.PROFILES) == NAMES and workflow.PROFILES[0] == profile.BASE


def test_the_committed_params_file_is_the_paper_profile_verbatim():
    assert profile.render("paper", PROFILES) == (PROFILES / "paper.yaml").read_text()
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True)
    if committed.returncode == 0:  # a checkout with history
        assert committed.stdout == (PROFILES / "paper.yaml").read_text()


@pytest.mark.parametrize("name", [n for n in NAMES if n != "paper"])
def test_a_profile_states_only_what_differs_and_is_merged_key_by_key(name):
    base = yaml.safe_load((PROFILES / "paper.yaml").read_text())
    override = yaml.safe_load((PROFILES / f"{name}.yaml").read_text())
    params = yaml.safe_load(profile.render(name, PROFILES))
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
    merged = profile.merge(base, {"a": {"y": [3]}, "zoo": {"n1": {"arch": "r"}}})
    assert merged == {"a": {"x": 1, "y": [3]}, "zoo": {"n1": {"arch": "r"}}}
    assert base["a"]["y"] == [1, 2]  # the base is not changed


def test_data_option_points_the_prepare_stage_at_a_local_archive():
    params = yaml.safe_load(profile.render("quick", PROFILES, data=REPO / "x.tar.gz"))
    assert params["data"] == {"archive": str(REPO / "x.tar.gz")}
    assert yaml.safe_load(profile.render("paper", PROFILES, data=REPO / "x.tar.gz"))["profile"] == "paper"


def test_unknown_profile_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: cpu, gpu-check, paper, quick, smoke"):
        profile.Config(name="huge", profiles_dir=PROFILES)


@pytest.mark.parametrize("name", NAMES)
def test_every_stage_command_parses_into_its_config(name, tmp_path):
    from dvc.repo import Repo

    for path in ("dvc.yaml", ".dvc/config"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    (tmp_path / "params.yaml").write_text(profile.render(name, PROFILES))
    git_init(tmp_path)
    with Repo(str(tmp_path)) as repo:
        cmds = {stage.name: stage.cmd for stage in repo.index.stages if getattr(stage, "cmd", None)}
    assert len(cmds) > 10
    params = profile.merged_params(name, PROFILES)
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


def test_every_stage_depends_on_the_code_it_runs():
    """A code change reruns exactly the stages whose modules changed: each stage of dvc.yaml lists
    every classaware module its subcommand imports, and no other (``classaware deps``)."""
    wanted, listed = deps.expected(REPO / "dvc.yaml"), deps.listed(REPO / "dvc.yaml")
    wrong = {name: code for name, code in wanted.items() if sorted(listed[name]) != code}
    blocks = "\n".join(f"{name}:\n  deps:\n{deps.block(code, 4)}" for name, code in wrong.items())
    assert not wrong, (
        f"dvc.yaml's code deps differ from the imports; run `classaware deps --write`, or paste:\n{blocks}"
    )


def test_deps_rewrites_only_the_code_deps(tmp_path):
    """``classaware deps --write`` replaces each stage's ``- src/`` items and keeps every other line."""
    text = (REPO / "dvc.yaml").read_text()
    wanted = {
        name: ["src/classaware/x.py", f"src/classaware/{name.split('@')[0]}.py"]
        for name in deps.listed(REPO / "dvc.yaml")
    }
    rewritten = deps.rewrite(text, wanted)
    (tmp_path / "dvc.yaml").write_text(rewritten)
    assert deps.listed(tmp_path / "dvc.yaml") == wanted
    kept = [line for line in text.splitlines() if not line.strip().startswith("- src/")]
    assert [line for line in rewritten.splitlines() if not line.strip().startswith("- src/")] == kept
    assert deps.rewrite(text, deps.expected(REPO / "dvc.yaml")) == text  # the committed file is what it writes


def test_deps_follows_imports_transitively(tmp_path):
    src = tmp_path / "src" / "classaware"
    (src / "stages").mkdir(parents=True)
    (src / "__init__.py").write_text("from .a import x\n")
    (src / "a.py").write_text("from .b import y\n")
    (src / "b.py").write_text("y = 1\n")
    (src / "c.py").write_text("")
    (src / "stages" / "__init__.py").write_text("from ..c import z\n")
    (src / "stages" / "s.py").write_text(
        "from ..a import x\nfrom . import Upstream\nif TYPE_CHECKING:\n    from ..c2 import T\n"
    )
    (src / "c2.py").write_text("")
    assert deps.closure(src / "stages" / "s.py", tmp_path) == [
        "src/classaware/a.py", "src/classaware/b.py", "src/classaware/c.py",
        "src/classaware/stages/__init__.py", "src/classaware/stages/s.py",
    ]  # fmt: skip


def test_a_table2_learner_may_not_start_from_a_zoo_models_initial_weights(tmp_path):
    for name in ("paper.yaml", "quick.yaml"):
        (tmp_path / name).write_text((PROFILES / name).read_text())
    (tmp_path / "quick.yaml").write_text((PROFILES / "quick.yaml").read_text() + "\n" + "grid:\n  init_seed: 1\n")
    with pytest.raises(ValueError, match=r"grid.init_seed 1 is a zoo model's init_seed \(\[0, 1\]\)"):
        profile.merged_params("quick", tmp_path)
    for name in NAMES:  # every profile's learners start from a seed of their own
        params = profile.merged_params(name, PROFILES)
        assert params["grid"]["init_seed"] not in {m["init_seed"] for m in params["zoo"].values()}


# ----------------------------------------------------------------------------- the archive, wherever the workspace sits
def _workspace(root: Path, git: bool = True) -> Path:
    """The files `classaware profile` and DVC read (dvc.yaml, params.yaml, .dvc/config, profiles/), in a git repository."""
    names = ["dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".gitignore", "data.dvc"]
    for path in names + [f"profiles/{n}.yaml" for n in NAMES]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, root / path)
    # params.yaml as committed (the paper profile), whatever profile this working copy was switched to
    shutil.copy(PROFILES / "paper.yaml", root / "params.yaml")
    if git:
        git_commit_all(root, "w")
    return root


def _archive(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image_folder(path, folder_images(1))


def _staged(root: Path) -> set[str]:
    done = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=root, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_an_archive_outside_the_repository_is_brought_in_under_dvc(tmp_path, monkeypatch):
    """README's `classaware profile NAME --data ../shared/...`: data.archive is a path inside the
    repository, the archive's .dvc file is staged for DVC's experiments, and a second call changes nothing."""
    root = _workspace(tmp_path / "repo")
    archive = _archive(tmp_path / "shared" / "data" / "c10.tar.gz")
    monkeypatch.chdir(root)
    assert cli.main(["profile", "smoke", "--data", "../shared/data/c10.tar.gz"]) == 0
    assert yaml.safe_load((root / "params.yaml").read_text())["data"] == {"archive": "data/c10.tar.gz"}
    assert (root / "data/c10.tar.gz").read_bytes() == archive.read_bytes()
    tracked = yaml.safe_load((root / "data/c10.tar.gz.dvc").read_text())["outs"]
    assert tracked == [
        {"md5": file_digests(archive)[0], "size": archive.stat().st_size, "hash": "md5", "path": "c10.tar.gz"}
    ]
    assert _staged(root) == {"data/c10.tar.gz.dvc", "data/.gitignore"}
    before = {p: p.stat().st_mtime_ns for p in (root / "data").iterdir()}
    assert cli.main(["profile", "quick", "--data", str(archive)]) == 0  # the same archive, by another path
    assert {p: p.stat().st_mtime_ns for p in (root / "data").iterdir()} == before
    assert yaml.safe_load((root / "params.yaml").read_text())["data"] == {"archive": "data/c10.tar.gz"}


@pytest.mark.parametrize("inside", ["data/own.tar.gz", "elsewhere/own.tar.gz"])
def test_an_archive_inside_the_repository_stays_where_it_is(inside, tmp_path, monkeypatch):
    root = _workspace(tmp_path)
    _archive(root / inside)
    monkeypatch.chdir(root)
    assert cli.main(["profile", "smoke", "--data", inside]) == 0
    assert yaml.safe_load((root / "params.yaml").read_text())["data"] == {"archive": inside}
    assert (root / f"{inside}.dvc").is_file() and f"{inside}.dvc" in _staged(root)


def test_the_official_archive_keeps_its_own_dvc_file(tmp_path, monkeypatch, capsys):
    root = _workspace(tmp_path / "repo")
    (root / "data").mkdir()
    write_official_format(root / "data" / "cifar-10-python.tar.gz")  # what `classaware download` leaves
    monkeypatch.chdir(root)
    assert cli.main(["profile", "smoke"]) == 0
    assert yaml.safe_load((root / "params.yaml").read_text())["data"] == {"archive": "data/cifar-10-python.tar.gz"}
    outside = _archive(tmp_path / "cifar-10-python.tar.gz")
    assert cli.main(["profile", "quick", "--data", str(outside)]) == 2
    assert capsys.readouterr().err.endswith(
        f"--data {outside}: data/cifar-10-python.tar.gz is the output of data.dvc; rename the archive, or copy it "
        "to data/cifar-10-python.tar.gz and leave out --data\n"
    )
    assert [p.name for p in (root / "data").iterdir()] == ["cifar-10-python.tar.gz"] and not _staged(root)
    assert yaml.safe_load((root / "params.yaml").read_text())["profile"] == "smoke"  # not rewritten


@pytest.mark.parametrize("name", ["my cifar.tar.gz", "c10$(x).tar.gz"])
def test_a_file_name_a_shell_would_split_is_refused_and_a_folder_with_spaces_is_fine(
    name, tmp_path, monkeypatch, capsys
):
    root = _workspace(tmp_path / "repo")
    monkeypatch.chdir(root)
    spaced = _archive(tmp_path / "my data" / name)
    assert cli.main(["profile", "smoke", "--data", str(spaced)]) == 2
    assert capsys.readouterr().err.endswith(
        f"  data.archive: {json.dumps('data/' + name)} holds characters a shell splits or expands, and DVC writes "
        "some strings into the stages' commands unquoted; use letters, digits and . _ - + @ % = : , / only\n"
    )
    assert (root / "params.yaml").read_text() == (PROFILES / "paper.yaml").read_text()
    assert not (root / "data").exists()
    fine = _archive(tmp_path / "my data" / "cifar.tar.gz")  # the path: the space is in a folder
    assert cli.main(["profile", "smoke", "--data", str(fine)]) == 0
    assert yaml.safe_load((root / "params.yaml").read_text())["data"] == {"archive": "data/cifar.tar.gz"}


# ----------------------------------------------------------------------------- every stage accepts the params
@pytest.mark.parametrize(
    "override, lines",
    [
        ({"attack": {"test_size": None}},
         ["attack.test_size: null has no value on a command line (DVC would write None); give one"]),
        ({"attack": {"test_size": True}},
         ["attack.test_size: true is refused by attack@resnet10_w8-fgm-untargeted: argument --test_size/--test-size: expected one argument (and 7 more stages)"]),
        ({"train": {"bf16": 1}},
         ["train.bf16: 1 is refused by train@resnet10_w8: unrecognized arguments: 1 (and 5 more stages)"]),
        ({"attack": {"eps": [0.5, True]}},
         ["attack.eps: [0.5, true] is refused by attack@resnet10_w8-fgm-untargeted: argument --eps: invalid float value: 'True' (and 7 more stages)"]),
        ({"plane": {"unit": "wide"}},
         ["plane.unit: \"wide\" is refused by plane: argument --unit: invalid float value: 'wide'"]),
        ({"plane": {"image_class": "horse cart"}},
         ["plane.image_class: \"horse cart\" holds characters a shell splits or expands, and DVC writes some strings into the stages' commands unquoted; use letters, digits and . _ - + @ % = : , / only"]),
        ({"distance": {"step": 50.0}},
         ["distance.max_radius: 5.0 is refused by distance: invalid search options: need tol <= step <= max_radius, got 0.01, 50.0, 5.0",
          "distance.step: 50.0 is refused by distance: invalid search options: need tol <= step <= max_radius, got 0.01, 50.0, 5.0",
          "distance.tol: 0.01 is refused by distance: invalid search options: need tol <= step <= max_radius, got 0.01, 50.0, 5.0"]),
        ({"data": {"archive": "data/my cifar.tar.gz"}},
         ["data.archive: \"data/my cifar.tar.gz\" holds characters a shell splits or expands, and DVC writes some strings into the stages' commands unquoted; use letters, digits and . _ - + @ % = : , / only"]),
        ({"compare": {"targets": ["vgg11_bn_w8", "resnet10_w8_wsame;ls"]}},
         ["compare.targets: [\"vgg11_bn_w8\", \"resnet10_w8_wsame;ls\"] holds characters a shell splits or expands, and DVC writes some strings into the stages' commands unquoted; use letters, digits and . _ - + @ % = : , / only"]),
    ],
    ids=["null", "bool for an int", "int for a bool", "bool in a list of floats", "string for a float", "string with a space", "relation", "space", "shell"],
)  # fmt: skip
def test_profile_refuses_params_some_stage_would_refuse_naming_the_key(override, lines, tmp_path, monkeypatch, capsys):
    """Before params.yaml is written or the archive brought in: the pipeline never starts on them."""
    root = _workspace(tmp_path / "repo")
    bad = yaml.safe_load((root / "profiles/smoke.yaml").read_text())
    for group, value in override.items():
        bad[group] = {**bad.get(group, {}), **value} if isinstance(value, dict) else value
    (root / "profiles/bad.yaml").write_text(yaml.safe_dump(bad))
    _archive(tmp_path / "shared" / "c10.tar.gz")
    monkeypatch.chdir(root)
    data = [] if "data" in override else ["--data", "../shared/c10.tar.gz"]  # --data would set data.archive
    assert cli.main(["profile", "bad", *data]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "classaware profile: error: profile bad: parameters some stage of dvc.yaml refuses:\n"
        + "".join(f"  {line}\n" for line in lines).rstrip("\n")
        + "\n"
    ), err
    assert (root / "params.yaml").read_text() == (PROFILES / "paper.yaml").read_text()
    assert not (root / "data").exists() and not _staged(root)


def test_dvc_quotes_unpacked_strings_but_not_scalar_ones():
    """Why every string of the params must be one a shell leaves alone: DVC quotes the strings a
    ${group} unpacks into options, but writes a ${key.path} scalar as it is."""
    params = yaml.safe_load(profile.render("smoke", PROFILES))
    params["data"]["archive"] = "data/my cifar.tar.gz"
    params["plane"]["image_class"] = "horse cart"
    rendered = profile.commands(yaml.safe_dump(params), REPO)
    assert "--archive data/my cifar.tar.gz --out" in rendered["prepare"]
    assert "--image_class 'horse cart'" in rendered["plane"]


@pytest.mark.parametrize("name", NAMES)
def test_every_profile_is_accepted_by_every_stage(name):
    assert profile.pipeline_problems(profile.render(name, PROFILES), REPO) == []
