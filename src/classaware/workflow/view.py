"""Command ``view``: bring a kept run (``runs/NAME``, made by ``classaware keep``) into the workspace.

It copies the run's ``params.yaml``, ``dvc.lock``, ``metrics/`` and ``figures/`` (and its data
archive's ``.dvc`` file) to where the pipeline writes them, so DVC's own views read the kept run
in a fresh clone, with no network: ``dvc metrics show``, ``dvc plots show``, ``dvc exp show``,
``dvc params diff``. Where the run has a DVC remote beside it (``runs/NAME/dvc-store``), that
becomes the workspace's default remote (in ``.dvc/config.local``, which git ignores), so
``dvc pull --allow-missing`` fetches what it holds; ``kept-run.json`` (git-ignored) records what
the remote leaves out, so that ``classaware audit`` says "not checked: ... (not in the remote)"
for those artifacts instead of failing.

A workspace whose ``dvc.lock`` is another run's is not overwritten without ``--force``.
``git checkout params.yaml`` and removing the copied files undo it; ``classaware profile NAME``
switches to a profile again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field
from ..files import parse_yaml, save_text
from .keep import MANIFEST, STORE, VIEWED, VIEWED_DIRS
from .pipeline import dvc

log = logging.getLogger(__name__)

KEPT = Path("kept-run.json")  # in the workspace: which kept run it shows, and what its remote leaves out
REMOTE = "kept"


@dataclass(frozen=True)
class Config(Options):
    run_dir: Path = help_field(help="the kept run's folder, e.g. runs/cpu-cifar10-jpeg", positional=True)
    force: bool = help_field(False, "replace a dvc.lock of another run in the workspace")


def _digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def left_out(root: Path = Path()) -> frozenset[str]:
    """The outputs the kept run's remote leaves out, when the workspace shows that kept run (its
    ``dvc.lock`` is the one ``view`` copied); empty otherwise."""
    kept, lock = root / KEPT, root / "dvc.lock"
    if not kept.is_file() or not lock.is_file():
        return frozenset()
    record = json.loads(kept.read_text())
    return frozenset(record.get("left_out", ())) if record.get("dvc_lock_md5") == _digest(lock) else frozenset()


def changed_code(lock: dict) -> list[str]:
    """The files the stages depend on that no stage writes (the code, claims.yaml, the archive)
    and whose md5 here differs from the one ``lock`` records: ``dvc status`` would report
    their stages changed."""
    outs = {o["path"] for s in lock["stages"].values() for o in s.get("outs", [])}
    deps = {d["path"]: d.get("md5") for s in lock["stages"].values() for d in s.get("deps", [])}
    return sorted(
        p for p, md5 in deps.items() if p not in outs and Path(p).is_file() and md5 and _digest(Path(p)) != md5
    )


def run(cfg: Config) -> None:
    src = cfg.run_dir
    needed = [src / name for name in VIEWED] + [src / name for name in VIEWED_DIRS]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        raise FileNotFoundError(f"{src} is not a kept run: {', '.join(absent)} not found (`classaware keep` makes one)")
    lock = Path("dvc.lock")
    if lock.is_file() and lock.read_bytes() != (src / "dvc.lock").read_bytes() and not cfg.force:
        raise ValueError(
            "this workspace's dvc.lock is another run's; `classaware view --force` replaces it, with params.yaml, "
            "metrics/ and figures/ (commit them first to keep them)"
        )
    for name in VIEWED:
        shutil.copyfile(src / name, name)
    for name in VIEWED_DIRS:
        if Path(name).exists():
            shutil.rmtree(name)
        shutil.copytree(src / name, name)
    for dvc_file in sorted(src.glob("data/*.dvc")):  # the archive's .dvc file, for `dvc pull`
        Path("data").mkdir(exist_ok=True)
        shutil.copyfile(dvc_file, Path("data") / dvc_file.name)
    manifest = src / MANIFEST
    record = {"run": str(src), "dvc_lock_md5": _digest(lock), "remote": None, "left_out": []}
    if manifest.is_file() and (src / STORE).is_dir():
        held = json.loads(manifest.read_text())
        dvc("remote", "add", "--local", "--force", "--default", REMOTE, str((src / STORE).resolve()), cwd=Path.cwd())
        record |= {"remote": str(src / STORE), "left_out": sorted(held["left_out"])}
    save_text(json.dumps(record, indent=2) + "\n", KEPT)
    print(f"classaware view: the workspace shows {src}: params.yaml, dvc.lock, metrics/, figures/")
    differ = changed_code(parse_yaml(lock.read_text()))
    if differ:
        print(f"  the code here is not the run's ({len(differ)} files differ, e.g. {differ[0]}): `dvc status` and "
              f"`classaware audit` need the run's code, the commit that added {src} (`git log -1 -- {src}`)")  # fmt: skip
    print("  dvc metrics show / dvc plots show / dvc exp show read it (README.md, 'DVC's views')")
    if record["remote"]:
        n = len(record["left_out"])
        print(f"  its DVC remote {record['remote']} is the default: `dvc pull --allow-missing` fetches what it holds"
              f" ({n} output{'' if n == 1 else 's'} left out, listed in {manifest})")  # fmt: skip
        prepared = [o["path"] for o in parse_yaml(lock.read_text())["stages"].get("prepare", {}).get("outs", [])]
        if set(prepared) & set(record["left_out"]):
            print(f"  then `dvc repro prepare` makes {', '.join(prepared)} from the archive again, and `classaware audit`"
                  " checks the run")  # fmt: skip
        else:
            print("  then `classaware audit` checks the run")
