"""Command ``keep``: keep a finished run in ``runs/NAME/``, viewable and auditable from a clone.

Run in the workspace of a finished run (``dvc.lock`` and every output it pins present). It copies
what DVC's views read, ``params.yaml``, ``dvc.lock``, ``metrics/`` and ``figures/``, and the
``.dvc`` file of the run's data archive into ``runs/NAME/``, and makes ``runs/NAME/dvc-store/``,
a DVC folder remote meant to be committed with them: ``dvc push`` of the run's outputs into it,
as many as fit in ``--budget_mb``, in the order the audit needs them:

1. the data archive (``data/NAME.dvc``): ``dvc repro prepare`` makes the canonical data file
   (``data/cifar10.pt``, 185 MB) from it again, byte for byte, and every check reads that file;
2. the results (``results/``: every ratio, Dist and its per-image distances, the claims);
3. the prediction tables (``predictions/``);
4. the checkpoints (``models/``, ``models_nonrobust/``);
5. then the rest (the adversarial sets, the non-robust sets, the canonical data file), the
   smallest first, while they fit.

``runs/NAME/remote.json`` lists what the remote holds and what it leaves out, with their sizes
(``dvc.lock``'s); ``classaware view runs/NAME`` brings the run into a workspace, and
``classaware audit`` then says "not checked: ... (not in the remote)" for the checks that need
what is left out, instead of failing. Files already in ``runs/NAME/`` (a README, the report)
stay; the ones named here are replaced.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field
from ..files import parse_yaml, save_text
from .pipeline import dvc

log = logging.getLogger(__name__)

VIEWED = ("params.yaml", "dvc.lock")  # files DVC's views read, beside the folders below
VIEWED_DIRS = ("metrics", "figures")
STORE = "dvc-store"  # the remote's folder in runs/NAME
MANIFEST = "remote.json"  # what the remote holds and what it leaves out
FORMAT = "classaware-kept-remote/1"
# the audit's needs, in order (see the module docstring); the archive's .dvc file comes first
PRIORITY = ("results/", "predictions", "models/", "models_nonrobust/")
MB = 1e6


@dataclass(frozen=True)
class Config(Options):
    run_dir: Path = help_field(
        help="folder to keep the run in, e.g. runs/cpu-cifar10-jpeg", positional=True, output="dir"
    )
    budget_mb: float = help_field(
        90.0, "most MB of outputs to put in its DVC remote (runs/NAME/dvc-store, committed to git)", gt=0
    )
    dry_run: bool = help_field(False, "only print what the remote would hold and leave out")


@dataclass(frozen=True)
class Artifact:
    path: str  # an output of dvc.lock, or a data archive's .dvc file
    size: int  # bytes, as dvc.lock (or the .dvc file) records them
    target: str  # what `dvc push` is given for it


def archive_dvc_file(params: dict) -> Path | None:
    """The ``.dvc`` file that tracks the run's data archive (``data.archive`` + .dvc), where there is one."""
    name = (params.get("data") or {}).get("archive") if isinstance(params, dict) else None
    if not name:
        return None
    archive = Path(str(name))
    for candidate in (archive.with_name(archive.name + ".dvc"), Path("data.dvc")):
        if candidate.is_file():
            outs = parse_yaml(candidate.read_text()).get("outs", [])
            if any(Path(candidate.parent, o["path"]) == archive for o in outs):
                return candidate
    return None


def artifacts(lock: dict, archive_file: Path | None) -> list[Artifact]:
    """Every output ``dvc push`` can carry (those in DVC's cache) and the archive, in the order
    the remote takes them (see the module docstring)."""
    outs = {o["path"]: o.get("size", 0) for s in lock["stages"].values() for o in s.get("outs", [])}
    cached = [Artifact(p, size, p) for p, size in outs.items() if not p.startswith(VIEWED_DIRS)]

    def rank(a: Artifact) -> tuple:
        first = next((i for i, prefix in enumerate(PRIORITY) if a.path.startswith(prefix)), len(PRIORITY))
        return (first, a.size if first == len(PRIORITY) else 0, a.path)

    found = sorted(cached, key=rank)
    if archive_file is not None:
        (out,) = parse_yaml(archive_file.read_text())["outs"]
        found.insert(0, Artifact(str(archive_file.parent / out["path"]), out.get("size", 0), str(archive_file)))
    return found


def choose(found: list[Artifact], budget: float) -> tuple[list[Artifact], list[Artifact]]:
    """(held, left out): each artifact in turn is held while the total stays within ``budget`` bytes."""
    held, left, total = [], [], 0
    for a in found:
        if total + a.size <= budget:
            held.append(a)
            total += a.size
        else:
            left.append(a)
    return held, left


def by_folder(items: list[Artifact]) -> list[tuple[str, int, float]]:
    """(top folder, or the path of its one artifact; count; MB) of ``items``."""
    groups: dict[str, list[Artifact]] = {}
    for a in items:
        groups.setdefault(a.path.split("/", 1)[0] + ("/" if "/" in a.path else ""), []).append(a)
    return [(g[0].path if len(g) == 1 else top, len(g), sum(a.size for a in g) / MB) for top, g in groups.items()]


def _summary(held: list[Artifact], left: list[Artifact]) -> None:
    for title, items in (("holds", held), ("leaves out", left)):
        parts = ", ".join(f"{top}{f' {n}' if n > 1 else ''} ({mb:.1f} MB)" for top, n, mb in by_folder(items))
        print(f"  the remote {title} {sum(a.size for a in items) / MB:.1f} MB: {parts or 'nothing'}")


def _copy_views(run_dir: Path, archive_file: Path | None) -> None:
    for name in VIEWED:
        shutil.copyfile(name, run_dir / name)
    for name in VIEWED_DIRS:
        if (run_dir / name).exists():
            shutil.rmtree(run_dir / name)
        shutil.copytree(name, run_dir / name)
    if archive_file is not None:
        (run_dir / archive_file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archive_file, run_dir / archive_file)


def _push(targets: list[str], store: Path) -> None:
    """``dvc push`` of ``targets`` into the folder ``store``, through a remote that lives only
    for this push (in .dvc/config.local: the committed config stays as it is)."""
    name = f"keep-{uuid.uuid4().hex[:8]}"
    root = Path.cwd()
    dvc("remote", "add", "--local", name, str(store.resolve()), cwd=root)
    try:
        # .dvc files apart: given one beside pipeline outputs, DVC 3.67 pushes that file's data alone
        for group in ([t for t in targets if t.endswith(".dvc")], [t for t in targets if not t.endswith(".dvc")]):
            if group:
                dvc("push", "-r", name, *group, cwd=root)
    finally:
        dvc("remote", "remove", "--local", name, cwd=root)


def run(cfg: Config) -> None:
    lock_path = Path("dvc.lock")
    if not lock_path.is_file() or not Path("params.yaml").is_file():
        raise FileNotFoundError(
            "dvc.lock or params.yaml does not exist: run `classaware keep` in a finished run's workspace"
        )
    for name in VIEWED_DIRS:
        if not Path(name).is_dir():
            raise FileNotFoundError(f"{name}/ does not exist: run `classaware keep` in a finished run's workspace")
    if cfg.run_dir.resolve() == Path.cwd().resolve() or Path.cwd().resolve() not in cfg.run_dir.resolve().parents:
        raise ValueError(f"run_dir {cfg.run_dir} must be a folder inside this workspace, e.g. runs/NAME")
    lock, params = parse_yaml(lock_path.read_text()), parse_yaml(Path("params.yaml").read_text())
    archive_file = archive_dvc_file(params)
    found = artifacts(lock, archive_file)
    held, left = choose(found, cfg.budget_mb * MB)
    if cfg.dry_run:
        _summary(held, left)
        return
    missing = [a.path for a in found if not Path(a.path).exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} outputs of dvc.lock are not here (e.g. {missing[0]}): keep a finished run (`dvc pull` first)"
        )
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    _copy_views(cfg.run_dir, archive_file)
    store = cfg.run_dir / STORE
    if store.exists():
        shutil.rmtree(store)
    store.mkdir()
    _push([a.target for a in held], store)
    manifest = {
        "format": FORMAT,
        "remote": STORE,
        "budget_mb": cfg.budget_mb,
        "held": {a.path: a.size for a in held},
        "left_out": {a.path: a.size for a in left},
        "archive": None if archive_file is None else str(archive_file),
    }
    save_text(json.dumps(manifest, indent=2) + "\n", cfg.run_dir / MANIFEST)
    stored = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    if stored < sum(a.size for a in held):  # DVC pushed less than it was given
        raise ValueError(
            f"`dvc push` put {stored / MB:.1f} MB in {store}, not the {sum(a.size for a in held) / MB:.1f} MB chosen"
        )
    print(f"classaware keep: {cfg.run_dir}: params.yaml, dvc.lock, metrics/, figures/ and a DVC remote ({STORE}/, "
          f"{stored / MB:.1f} MB on disk)")  # fmt: skip
    _summary(held, left)
    print(f"  commit {cfg.run_dir} to git; a reviewer runs `classaware view {cfg.run_dir}` in a clone (README.md)")
