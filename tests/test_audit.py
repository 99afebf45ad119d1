"""The reviewer's path, on the session's `smoke` run: push to a folder remote, clone, pull, check
that nothing needs rerunning, audit; then tampered artifacts the audit must catch and name, even
after `dvc commit` has re-hashed them so that `dvc status` sees nothing wrong."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers_repo import JPEG_ARCHIVE, REPO, git_commit_all, smoke_env

from classaware import cli
from classaware.data import load_canonical, to_float
from classaware.files import load_tensors, save_tensors
from classaware.schema import AdversarialSet, NonRobustSet, PredictionTable

pytestmark = [pytest.mark.slow, pytest.mark.smoke_run("serial")]


def sh(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=smoke_env(), capture_output=True, text=True)


def ok(cmd: list[str], cwd: Path) -> str:
    done = sh(cmd, cwd)
    assert done.returncode == 0, f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def reviewers_commands() -> tuple[list[str], list[str]]:
    """The commands of REPRODUCE.md's "For reviewers" section as written: the run's side (the
    first bash block) and the reviewer's (the second), one per ``&&`` link, comments left out."""
    section = (REPO / "REPRODUCE.md").read_text().split("## For reviewers", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)[:2]
    return tuple(
        [link.strip() for line in block.splitlines() for link in line.split("#", 1)[0].split("&&") if link.strip()]
        for block in blocks
    )


def run_as_written(commands: list[str], cwd: Path, url: dict[str, str]) -> Path:
    """Each command in ``cwd`` (``cd DIR`` moves there), with REPRODUCE.md's placeholders replaced by
    ``url``; what stands for things the suite has already (a remote to ``git push`` to, an
    environment to install) is left out, and nothing else."""
    for command in commands:
        if command in ("git push", "python3 -m venv .venv", ". .venv/bin/activate") or command.startswith(
            "pip install"
        ):
            continue
        for placeholder, value in url.items():
            command = command.replace(placeholder, value)
        if command.startswith("cd "):
            cwd = cwd / command[3:]
            continue
        if command.startswith("git commit"):  # the machine may have no git user
            command = command.replace("git commit", "git -c user.name=t -c user.email=t@t commit", 1)
        ok(["bash", "-c", command], cwd)
    return cwd


@pytest.fixture(scope="module")
def reviewer(smoke_runs, tmp_path_factory) -> Path:
    """Issue 29 item 11: REPRODUCE.md's commands exactly as written, on the session's `smoke` run
    (made with `classaware profile smoke --data ../shared/data/...`): the run's side commits and
    pushes to a folder remote; the reviewer clones, pulls, checks `dvc status` and audits (the
    audit's exit status and report are the tests below)."""
    serial = smoke_runs["serial"]
    assert serial.returncode == 0, f"the serial smoke run failed in {serial.repo}:\n{serial.output[-6000:]}"
    side, theirs = reviewers_commands()
    remote = tmp_path_factory.mktemp("remote")
    run_as_written(
        [c.replace("dvc remote add", "dvc remote add --force") for c in side], serial.repo, {"URL": str(remote)}
    )
    folder = tmp_path_factory.mktemp("reviewer")
    clone = run_as_written(
        [c for c in theirs if c != "classaware audit"], folder, {"URL-OF-THE-REPOSITORY": str(serial.repo)}
    )
    assert (clone / "data" / f"{JPEG_ARCHIVE.name}").read_bytes() == JPEG_ARCHIVE.read_bytes()  # the archive came too
    return clone


def changed(repo: Path) -> dict:
    """dvc status, but for data.dvc's official archive, which a run on a local archive never has."""
    return {k: v for k, v in json.loads(ok(["dvc", "status", "--json"], repo)).items() if k != "data.dvc"}


def audit_cli(repo: Path, *argv: str) -> int:
    """``classaware audit ARGV`` in ``repo``, in this process (on one thread, as the run's
    stages were: the artifacts are compared bit for bit); its exit status."""
    with contextlib.chdir(repo):
        try:
            return cli.main(["audit", *argv])
        except SystemExit as exc:
            return exc.code


def audit(repo: Path, *options: str) -> tuple[int, dict]:
    status = audit_cli(repo, "--out", "audit", *options)
    assert status in (0, 1), status
    return status, json.loads((repo / "audit" / "audit.json").read_text())


def test_the_pulled_run_is_up_to_date_and_passes_the_audit(reviewer, capsys):
    assert changed(reviewer) == {}
    again = ok(["dvc", "repro"], reviewer)
    assert "Running stage" not in again, again
    capsys.readouterr()
    status = audit_cli(reviewer)  # `classaware audit`, as REPRODUCE.md writes it
    report = json.loads((reviewer / "audit" / "audit.json").read_text())
    assert status == 0
    assert capsys.readouterr().out == "classaware audit: the run passes (7 checks); report: audit/audit.md\n"
    assert [(c["name"], c["result"]) for c in report["checks"]] == [
        (name, "pass") for name in ("artifacts", "data", "checkpoints", "adversarial-sets", "predictions", "nonrobust-sets", "derived")
    ]  # fmt: skip
    assert all(c["items"] > 0 for c in report["checks"])
    assert (reviewer / "audit" / "audit.md").read_text().startswith("# Audit: the run passes")


def test_missing_artifacts_stop_the_audit_and_say_dvc_pull(reviewer, tmp_path, capsys):
    bare = tmp_path / "bare"
    ok(["git", "clone", "-q", str(reviewer), str(bare)], tmp_path)
    status = audit_cli(bare)
    out = capsys.readouterr().out
    assert status == 2 and "run `dvc pull --with-deps dvc.yaml`" in out and "models/" in out


# ----------------------------------------------------------------------------- tampering
def _move_one_value_out(path: Path) -> None:
    s = AdversarialSet.load(path)
    x = s.x_adv.clone()
    x[0, 5, 0, 0, 0] = 1.0 - x[0, 5, 0, 0, 0]  # one value of one example
    dataclasses.replace(s, x_adv=x).save(path)


def _move_one_value_within(path: Path) -> None:
    """Halfway back to the clean image, in the pixel the attack moved most: still in the
    eps-ball, so only re-running the attack can tell."""
    s = AdversarialSet.load(path)
    clean = to_float(load_canonical(path.parents[2] / "data" / "cifar10.pt").test_x[s.indices[5]])
    x = s.x_adv.clone()
    delta = (x[0, 5] - clean).flatten()
    i = int(delta.abs().argmax())
    x[0, 5].view(-1)[i] -= delta[i] / 2
    dataclasses.replace(s, x_adv=x).save(path)


def _change_one_weight(path: Path) -> None:
    ckpt = load_tensors(path)
    bias = [k for k in ckpt["state_dict"] if k.endswith(".bias")][-1]  # the last layer's: every prediction moves
    ckpt["state_dict"][bias][0] += 100.0
    save_tensors(ckpt, path)


def _change_one_label(path: Path) -> None:
    t = PredictionTable.load(path)
    preds = t.sets["pgd-untargeted"]
    labels = preds.labels.clone()
    fooled = ((t.clean[0] == t.y) & (labels[0, 0] != t.y)).nonzero()
    i = int(fooled[0])  # an AE in D'_F1: its target's case (un-fooled, same or different) changes
    labels[0, 1, i] = t.y[i] if labels[0, 1, i] != t.y[i] else labels[0, 0, i]
    sets = {**t.sets, "pgd-untargeted": dataclasses.replace(preds, labels=labels)}
    dataclasses.replace(t, sets=sets).save(path)


def _edit_one_number(path: Path) -> None:
    values = json.loads(path.read_text())
    values["test_acc"] += 0.01
    path.write_text(json.dumps(values))


def _leave_the_ball(path: Path) -> None:
    s = NonRobustSet.load(path)
    x = s.x.clone()
    x[0] = 1.0 - x[0]  # far outside eps = 1 (and still in [0, 1])
    dataclasses.replace(s, x=x).save(path)


TAMPERS = {  # what is changed: (the file, how, the check that must catch it)
    "one value of an adversarial set, out of its eps-ball": (
        "adv/resnet10_w8/pgd-untargeted.pt",
        _move_one_value_out,
        "adversarial-sets",
    ),
    "one value of an adversarial set, within its eps-ball": (
        "adv/vgg11_bn_w8/fgm-targeted.pt",
        _move_one_value_within,
        "adversarial-sets",
    ),
    "one weight of a checkpoint": ("models/vgg11_bn_w8/epoch_004.pt", _change_one_weight, "checkpoints"),
    "one label of a prediction table": ("predictions/resnet10_w8.pt", _change_one_label, "derived"),
    "one number of a metrics JSON": ("metrics/zoo/resnet10_w8_wsame.json", _edit_one_number, "derived"),
    "a non-robust example outside its eps-ball": (
        "nonrobust/resnet10_w8+vgg11_bn_w8.pt",
        _leave_the_ball,
        "nonrobust-sets",
    ),
}


@pytest.mark.parametrize("what", TAMPERS)
def test_a_tampered_artifact_fails_the_audit_and_is_named(reviewer, what, tmp_path, capsys):
    name, tamper, check = TAMPERS[what]
    path = reviewer / name
    saved = {p: p.read_bytes() for p in (path, reviewer / "dvc.lock")}
    try:
        tamper(path)
        ok(
            ["dvc", "commit", "--force", "dvc.yaml"], reviewer
        )  # re-hash: dvc.lock now pins the tampered artifact (and its dependents its hash)
        assert changed(reviewer) == {}
        capsys.readouterr()
        status, report = audit(reviewer, "--sample", "1000", "--only", check)  # every batch of the smoke sets
        (result,) = report["checks"]
        assert status == 1 and result["result"] == "fail" and name in result["first_mismatch"], result
        assert f"classaware audit: the run FAILS ({check}); report: audit/audit.md" in capsys.readouterr().out
    finally:  # the bytes dvc.lock pinned before, and dvc.lock itself: the workspace is as it was
        for p, data in saved.items():
            p.write_bytes(data)


# ----------------------------------------------------------------------------- the kept run, from a fresh clone
def test_a_kept_run_is_viewable_and_auditable_from_a_fresh_clone_on_what_its_remote_holds(smoke_runs, tmp_path, capsys):
    """README's reviewer commands on a kept smoke run whose remote holds the archive, the
    results, the prediction tables and the checkpoints, and leaves out the adversarial sets, the
    non-robust set and the canonical data file (as the `cpu` run's does): from a clone with no
    network, DVC's views read it, `dvc pull --allow-missing` and `dvc repro prepare` exit 0, and
    the audit passes on what is here, naming what it did not check."""
    serial = smoke_runs["serial"]
    assert serial.returncode == 0, f"the serial smoke run failed in {serial.repo}:\n{serial.output[-6000:]}"
    run = tmp_path / "run"
    shutil.copytree(serial.repo, run, symlinks=True)  # with its DVC cache; the other tests keep theirs
    lock = yaml.safe_load((run / "dvc.lock").read_text())
    sizes = {o["path"]: o["size"] for s in lock["stages"].values() for o in s.get("outs", [])}
    archive = yaml.safe_load((run / f"data/{JPEG_ARCHIVE.name}.dvc").read_text())["outs"][0]["size"]
    held = archive + sum(n for p, n in sizes.items() if p.startswith(("results/", "predictions", "models")))
    ok(["classaware", "keep", "runs/smoke", "--budget_mb", f"{held / 1e6 + 0.001:.3f}"], run)
    git_commit_all(run, "kept")
    clone = tmp_path / "clone"
    ok(["git", "clone", "-q", str(run), str(clone)], tmp_path)
    ok(["classaware", "view", "runs/smoke"], clone)
    claims = json.loads(ok(["dvc", "metrics", "show", "--json", "metrics/claims"], clone))
    (shown,) = claims.values()  # the workspace, the one revision shown (DVC 3.67 names it "")
    assert len(shown["data"]) == 15, claims
    ok(["dvc", "pull", "--allow-missing"], clone)
    pulled_sets = [p for p in (clone / "adv").rglob("*") if p.is_file()]  # DVC may leave adv/'s empty folders
    assert not pulled_sets and not (clone / "data" / "cifar10.pt").exists(), pulled_sets
    ok(["dvc", "repro", "prepare"], clone)  # the canonical file again, from the archive the remote holds
    capsys.readouterr()
    status, report = audit(clone)
    out = capsys.readouterr().out
    assert status == 0, out
    results = {c["name"]: (c["result"], c["not_checked"]) for c in report["checks"]}
    assert results["adversarial-sets"] == ("not checked", "adv/: 8 (not in the remote)")
    assert results["predictions"][0] == "not checked" and "adv/" in results["predictions"][1]
    assert results["nonrobust-sets"] == ("not checked", "nonrobust/resnet10_w8+vgg11_bn_w8.pt (not in the remote)")
    assert all(results[name] == ("pass", None) for name in ("artifacts", "data", "checkpoints", "derived"))
    assert out.startswith("classaware audit: the run passes on what is here (4 checks; 3 not checked)")
    assert "not checked: adversarial-sets: adv/: 8 (not in the remote)" in out
