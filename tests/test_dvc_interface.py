"""What classaware reads from DVC, read through DVC's documented command line (classaware.pipeline):
the graph of ``dvc dag --dot``, the changes of ``dvc status --json``, the commands of ``dvc repro
--dry``; on a small real pipeline, and DVC's output formats as this DVC prints them, so that an
upgrade that changes them fails here, saying which."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from helpers_repo import git_commit_all, git_init, smoke_env

from classaware.workflow import pipeline

# a -> b -> c, a -> m@x and m@y (a foreach), and d on its own; ${n} from params.yaml
STAGES = {
    "d": {"cmd": "echo d > d.txt", "outs": ["d.txt"]},
    "a": {"cmd": "cat seed.txt > a.txt && echo ${n} >> a.txt", "deps": ["seed.txt"], "outs": ["a.txt"]},
    "b": {"cmd": "cat a.txt > b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
    "c": {"cmd": "cat b.txt > c.txt", "deps": ["b.txt"], "outs": ["c.txt"]},
    "m": {
        "foreach": ["x", "y"],
        "do": {"cmd": "cat a.txt > m-${item}.txt", "deps": ["a.txt"], "outs": ["m-${item}.txt"]},
    },
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The pipeline above, run once (git and DVC repository)."""
    folder = tmp_path_factory.mktemp("pipeline")
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": STAGES}, sort_keys=False))
    (folder / "params.yaml").write_text("n: 1\n")
    (folder / "seed.txt").write_text("seed\n")
    git_init(folder)
    for cmd in ("dvc init -q", "dvc repro -q"):
        subprocess.run(cmd, shell=True, cwd=folder, env=smoke_env(), check=True, capture_output=True)
    git_commit_all(folder, "t")
    return folder


def test_the_graph_is_dvc_yaml_upstream_first_in_its_order(repo):
    g = pipeline.graph(repo)
    assert g.order == ("d", "a", "b", "c", "m@x", "m@y")
    assert g.upstream == {
        "d": frozenset(),
        "a": frozenset(),
        "b": {"a"},
        "c": {"b"},
        "m@x": {"a"},
        "m@y": {"a"},
    }


def test_the_dot_reader_refuses_what_it_does_not_know_and_says_so():
    with pytest.raises(
        ValueError, match=r"printed a line this version of classaware does not read: '\"a\" \[shape=box\];'"
    ):
        pipeline.parse_dot('strict digraph {\n"a" [shape=box];\n}\n')
    with pytest.raises(ValueError, match="printed no graph"):
        pipeline.parse_dot("digraph {\n}\n")


def test_an_upstream_stage_comes_first_whatever_dvc_yaml_order(tmp_path):
    dot = 'strict digraph {\n"late";\n"early";\n"other";\n"early" -> "late";\n}\n'
    assert pipeline.parse_dot(dot).order == ("early", "late", "other")


def test_status_names_the_stages_that_changed_and_what_changed(repo, tmp_path):
    assert pipeline.status(repo) == {}
    (repo / "seed.txt").write_text("another\n")
    (repo / "m-y.txt").unlink()
    try:
        report = pipeline.status(repo, ["dvc.yaml"], with_deps=True)
        assert set(report) == {"a", "m@y"} and report["a"] == [{"changed deps": {"seed.txt": "modified"}}]
        assert set(pipeline.status(repo, pipeline.targets(["b", "c", "m@x", "m@y"], pipeline.graph(repo).order))) == {
            "m@y"
        }
    finally:
        subprocess.run("git checkout -q seed.txt && dvc checkout -q", shell=True, cwd=repo, env=smoke_env(), check=True)
    assert pipeline.status(repo) == {}


def test_status_targets_name_a_whole_foreach_group_when_they_can():
    every = ["d", "a", "m@x", "m@y", "n@1", "n@2"]
    assert pipeline.targets(["a", "m@x", "m@y", "n@2"], every) == ["a", "m", "n@2"]


def test_rendered_commands_are_those_dvc_runs(repo, tmp_path):
    """What ``dvc repro --dry`` renders with other params is what DVC runs and records."""
    rendered = pipeline.rendered_commands(repo / "dvc.yaml", {"n": 7})
    assert rendered["a"] == "cat seed.txt > a.txt && echo 7 >> a.txt"
    locked = pipeline.locked_commands(repo / "dvc.lock")
    assert set(rendered) == set(locked) == {"d", "a", "b", "c", "m@x", "m@y"}
    assert {k: v for k, v in rendered.items() if k != "a"} == {k: v for k, v in locked.items() if k != "a"}
    assert locked["a"] == "cat seed.txt > a.txt && echo 1 >> a.txt"


def test_a_dry_run_is_read_stage_by_stage():
    text = "Running stage 'a':\n> classaware a --x 1\n\nRunning stage 'b@k':\n> classaware b\nUse `dvc push` to ...\n"
    assert pipeline.parse_dry_run(text) == {"a": "classaware a --x 1", "b@k": "classaware b"}
    with pytest.raises(ValueError, match="stage a runs several commands"):
        pipeline.parse_dry_run("Running stage 'a':\n> one\n> two\n")


def test_dvc_errors_name_the_command_and_carry_dvcs_message(tmp_path):
    with pytest.raises(ValueError, match=r"`dvc dag --dot dvc.yaml` failed in .*: .*"):
        pipeline.graph(tmp_path)
