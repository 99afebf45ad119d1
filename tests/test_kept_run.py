"""A kept run (``classaware keep``) brought into a fresh clone (``classaware view``), on a small
real DVC pipeline: DVC's views read it, ``dvc pull --allow-missing`` fetches what its folder
remote holds, and ``classaware audit`` passes on that and names what the remote leaves out,
instead of failing. The same round trip on the `smoke` run is in tests/test_audit.py."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers_repo import git, git_commit_all, git_init, smoke_env

from classaware import cli
from classaware.workflow import audit, keep, view

# a big output the remote cannot hold within 1 MB, and small ones it takes; metrics and figures
# as the pipeline's (cache: false, git tracks them)
STAGES = {
    "big": {
        "cmd": "python -c \"open('big.bin', 'wb').write(bytes(range(256)) * 8192)\"",  # 2 MB
        "outs": ["big.bin"],
    },
    "small": {
        "cmd": "mkdir -p results metrics figures && wc -c big.bin > results/a.txt && echo '{\"value\": ${n}}' > "
        "metrics/m.json && printf 'x,y\\n1,2\\n' > figures/f.csv",
        "deps": ["big.bin"],
        "outs": ["results/a.txt"],
        "metrics": [{"metrics/m.json": {"cache": False}}],
        "plots": [{"figures/f.csv": {"cache": False}}],
    },
}


PARAMS = "n: 7\ndata:\n  archive: data/arch.bin\n"


def sh(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, cwd=cwd, env=smoke_env(), capture_output=True, text=True)


def ok(cmd: str, cwd: Path) -> str:
    done = sh(cmd, cwd)
    assert done.returncode == 0, f"{cmd} failed in {cwd}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def main(cwd: Path, *argv: str) -> int:
    """``classaware ARGV`` in ``cwd``, in this process; its exit status."""
    with contextlib.chdir(cwd):
        try:
            return cli.main(list(argv))
        except SystemExit as exc:
            return exc.code


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> Path:
    """The run's side: the pipeline run, then kept in runs/k with a 1 MB remote, committed."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": STAGES}, sort_keys=False))
    (folder / "params.yaml").write_text(PARAMS)
    (folder / "data").mkdir()
    (folder / "data" / "arch.bin").write_bytes(bytes(100_000))  # the run's data archive, under DVC
    git_init(folder)
    ok("dvc init -q && dvc add -q data/arch.bin && dvc repro -q", folder)
    git_commit_all(folder, "the run")
    assert main(folder, "keep", "runs/k", "--budget_mb", "1") == 0
    # as in the repository: no run at the root (git tracks a run's metrics/ and figures/ only in runs/)
    git(folder, "rm", "-rq", "metrics", "figures", "dvc.lock")
    (folder / "params.yaml").write_text(PARAMS.replace("n: 7", "n: 0"))
    git_commit_all(folder, "kept")
    return folder


@pytest.fixture
def clone(kept, tmp_path) -> Path:
    """A fresh clone of the repository holding the kept run: no outputs, no DVC cache."""
    ok(f"git clone -q {kept} clone", tmp_path)
    return tmp_path / "clone"


def test_keep_copies_the_views_and_pushes_what_fits(kept):
    run = kept / "runs" / "k"
    assert (run / "params.yaml").read_text() == PARAMS
    assert (run / "data" / "arch.bin.dvc").read_bytes() == (kept / "data" / "arch.bin.dvc").read_bytes()
    assert set(yaml.safe_load((run / "dvc.lock").read_text())["stages"]) == {"big", "small"}
    assert json.loads((run / "metrics" / "m.json").read_text()) == {"value": 7}
    assert (run / "figures" / "f.csv").is_file()
    manifest = json.loads((run / keep.MANIFEST).read_text())
    assert manifest["held"] == {"data/arch.bin": 100_000, "results/a.txt": (kept / "results" / "a.txt").stat().st_size}
    assert manifest["left_out"] == {"big.bin": 2 * 1024 * 1024}
    stored = sorted(f.stat().st_size for f in (run / keep.STORE).rglob("*") if f.is_file())
    assert stored == sorted(manifest["held"].values())  # both pushed: the archive and the pipeline's output
    assert "keep-" not in (kept / ".dvc" / "config.local").read_text()
    assert git(kept, "status", "--porcelain") == ""


def test_a_clone_shows_the_kept_run_through_dvcs_views_and_passes_the_audit_on_what_the_remote_holds(clone, capsys):
    assert '"value": 7' not in sh("dvc metrics show --json", clone).stdout  # no commit has a run's metrics/ at the root
    assert main(clone, "view", "runs/k") == 0
    out = capsys.readouterr().out
    assert "dvc pull --allow-missing" in out and "1 output left out" in out
    metrics = json.loads(ok("dvc metrics show --json", clone))
    assert metrics[""]["data"]["metrics/m.json"]["data"] == {"value": 7}  # "": the workspace
    assert "figures/f.csv" in json.loads(ok("dvc plots show --json", clone))["data"]
    ok("dvc pull --allow-missing", clone)  # exit 0 although big.bin is not in the remote
    assert (clone / "results" / "a.txt").is_file() and not (clone / "big.bin").exists()
    assert (clone / "data" / "arch.bin").read_bytes() == bytes(100_000)
    assert view.left_out(clone) == {"big.bin"}
    capsys.readouterr()
    assert main(clone, "audit", "--out", "audit") == 0  # dvc status's "deleted" big.bin is by design
    assert capsys.readouterr().out.startswith("classaware audit: the run passes")


def test_view_refuses_to_replace_another_runs_dvc_lock_without_force(clone, capsys):
    (clone / "dvc.lock").write_text("stages: {}\n")
    assert main(clone, "view", "runs/k") == 2
    assert "--force" in capsys.readouterr().err
    assert (clone / "dvc.lock").read_text() == "stages: {}\n" and not (clone / "metrics").exists()
    assert main(clone, "view", "runs/k", "--force") == 0
    assert (clone / "dvc.lock").read_bytes() == (clone / "runs" / "k" / "dvc.lock").read_bytes()


def test_view_of_a_folder_that_is_no_kept_run_is_a_clear_error(clone, capsys):
    assert main(clone, "view", "runs") == 2
    assert "runs is not a kept run" in capsys.readouterr().err
    assert not (clone / "metrics").exists()


def test_what_the_remote_left_out_is_forgotten_once_the_workspace_has_another_runs_lock(clone):
    assert main(clone, "view", "runs/k") == 0
    assert view.left_out(clone) == {"big.bin"}
    (clone / "dvc.lock").write_text("stages: {}\n")
    assert view.left_out(clone) == frozenset()


def test_keep_holds_the_archive_first_then_results_predictions_checkpoints_then_the_smallest():
    lock = {"stages": {
        "prepare": {"outs": [{"path": "data/cifar10.pt", "size": 185}]},
        "attack": {"outs": [{"path": "adv/a/fgm.pt", "size": 98}]},
        "construct": {"outs": [{"path": "nonrobust/p.pt", "size": 123}, {"path": "results/nonrobust/p.json", "size": 1}]},
        "predict": {"outs": [{"path": "predictions", "size": 10}]},
        "train": {"outs": [{"path": "models/m", "size": 2}, {"path": "metrics/zoo/m.json", "size": 1}]},
        "figures": {"outs": [{"path": "figures", "size": 3}]},
    }}  # fmt: skip
    found = keep.artifacts(lock, None)
    assert [a.path for a in found] == ["results/nonrobust/p.json", "predictions", "models/m", "adv/a/fgm.pt",
                                       "nonrobust/p.pt", "data/cifar10.pt"]  # fmt: skip
    held, left = keep.choose(found, 100)
    assert [a.path for a in held] == ["results/nonrobust/p.json", "predictions", "models/m"]
    assert [a.path for a in left] == ["adv/a/fgm.pt", "nonrobust/p.pt", "data/cifar10.pt"]


def test_dvc_status_less_what_the_remote_leaves_out_by_design(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.pt").write_text("x")
    (tmp_path / "adv" / "b").mkdir(parents=True)  # what `dvc pull --allow-missing` leaves of a folder left out
    left, outs = frozenset({"adv/a.pt", "adv/b/c.pt"}), frozenset({"adv/a.pt", "adv/b/c.pt", "here.pt"})
    status = [
        {"changed outs": {"adv/a.pt": "not in cache", "here.pt": "modified"}},
        {"changed deps": {"adv": "modified"}},
    ]
    assert audit._without_absent(status, left, outs) == [{"changed outs": {"here.pt": "modified"}}]
    assert audit._without_absent(status, frozenset(), outs) == status
    assert audit._without_absent(["changed command"], left, outs) == ["changed command"]
    (tmp_path / "adv" / "b" / "stray.pt").write_text("x")  # a file no output accounts for: a change
    assert audit._without_absent(status, left, outs)[1] == {"changed deps": {"adv": "modified"}}
    (tmp_path / "here.pt").unlink()  # missing, but not left out: a change
    assert audit._without_absent([{"changed outs": {"here.pt": "deleted"}}], left, outs) == [
        {"changed outs": {"here.pt": "deleted"}}]  # fmt: skip


def test_a_check_that_needs_an_artifact_the_remote_leaves_out_says_not_checked(tmp_path, monkeypatch):
    """A stage's audit function that finds its artifact left out is "not checked", naming it; the
    other stages of the check are checked; an artifact missing otherwise still fails."""
    monkeypatch.chdir(tmp_path)

    def needs(path):
        def check(config, ctx):
            if not Path(path).exists():
                raise FileNotFoundError(f"adversarial set {path} does not exist")
            return 5

        return check

    (tmp_path / "adv").mkdir()
    (tmp_path / "adv" / "here.pt").write_text("x")
    stage = SimpleNamespace(config=None)
    plans = {
        "some": [("adversarial-sets", "what", [(stage, needs("adv/gone.pt")), (stage, needs("adv/here.pt"))])],
        "none": [("adversarial-sets", "what", [(stage, needs("adv/gone.pt"))])],
        "unlisted": [("adversarial-sets", "what", [(stage, needs("adv/lost.pt"))])],
    }
    ctx = audit.Context(torch.device("cpu"), 1, 0, audit.Environment.current(), frozenset({"adv/gone.pt"}))
    found = {}
    for name, planned in plans.items():
        monkeypatch.setattr(audit, "plan", lambda stages, planned=planned: planned)
        (check,) = audit.audit([], ctx)
        found[name] = check
    assert (found["some"].result, found["some"].items) == ("pass", 5)
    assert found["some"].not_checked == "adv/gone.pt (not in the remote)"
    assert (found["none"].result, found["none"].items, found["none"].not_checked) == (
        "not checked", 0, "adv/gone.pt (not in the remote)")  # fmt: skip
    assert found["unlisted"].result == "fail" and "adv/lost.pt" in found["unlisted"].first_mismatch
    results = audit.AuditResults(environment=ctx.here, sample=1, checks=(found["none"],))
    assert audit.failed(results) == [] and audit.unchecked(results) == [
        "adversarial-sets: adv/gone.pt (not in the remote)"
    ]
    assert "not checked: adv/gone.pt (not in the remote)" in audit.markdown(results)
    assert audit.markdown(results).startswith("# Audit: the run passes on what is here")
