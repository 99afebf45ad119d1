"""The repository under test, clean copies of it, and the git and environment helpers of the tests
that run commands in such copies (or in small repositories of their own)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
JPEG_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
GIT_USER = ("-c", "user.name=t", "-c", "user.email=t@t")  # commits need an author; the machine may have none


def smoke_env(base: dict | None = None) -> dict:
    """``base`` (default: os.environ) on one thread, with the `classaware` and `dvc` of this
    interpreter's environment first on PATH, whatever PATH says."""
    base = os.environ if base is None else base
    bin_dir = str(Path(sys.executable).parent)
    return {**base, **SINGLE_THREAD, "PATH": bin_dir + os.pathsep + base.get("PATH", "")}


def git(repo: Path, *args: str) -> str:
    """``git ARGS`` in ``repo`` (as user t), its output stripped; a failure fails the test with git's message."""
    done = subprocess.run(["git", *GIT_USER, *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)} failed in {repo}:\n{done.stdout}{done.stderr}"
    return done.stdout.strip()


def git_init(path: Path) -> None:
    """A new, empty git repository in ``path``."""
    git(path, "init", "-q")


def git_commit_all(path: Path, message: str) -> None:
    """Everything in ``path`` that git does not ignore, committed with ``message`` (the repository
    made first where ``path`` has none)."""
    if not (path / ".git").exists():
        git_init(path)
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)


def clean_copy(dest: Path) -> Path:
    """The repository's files as a fresh clone would have them (tracked, plus untracked files
    git does not ignore), committed in a new git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    git_commit_all(dest, "copy")
    return dest


def locked_hashes(repo: Path, rev: str | None = None) -> dict:
    """(stage, deps or outs, path) -> md5 of every entry of ``repo``'s dvc.lock (as git's commit
    ``rev`` holds it, when given)."""
    text = git(repo, "show", f"{rev}:dvc.lock") if rev else (repo / "dvc.lock").read_text()
    lock = yaml.safe_load(text)
    return {
        (stage, kind, entry["path"]): entry.get("md5")
        for stage, body in lock["stages"].items()
        for kind in ("deps", "outs")
        for entry in body.get(kind, [])
    }


def project(root: Path, git: bool = True) -> Path:
    """The files `classaware profile` and DVC read (dvc.yaml, .dvc/config, data.dvc, profiles/), and
    params.yaml as committed (the paper profile), in ``root``: a classaware project without its code
    or data, committed in git unless ``git`` is false."""
    names = ["dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".gitignore", "data.dvc"]
    names += [str(p.relative_to(REPO)) for p in (REPO / "profiles").glob("*.yaml")]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    shutil.copy(REPO / "profiles" / "paper.yaml", root / "params.yaml")
    if git:
        git_commit_all(root, "project")
    return root


def as_from_a_terminal() -> None:
    """``preexec_fn`` of a child that a test stops with SIGINT, as Ctrl-C would: SIGINT back to its
    default. A shell starting the test suite in the background (``cmd &``, as a CI runner may)
    makes every process below it inherit SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler, so the child would run on."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
