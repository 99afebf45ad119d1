"""Command ``audit``: check a finished run's artifacts without retraining anything.

For a reviewer who has the artifacts (``dvc pull``), the audit re-derives what each artifact
claims to be, from the artifacts below it, with the settings its stage ran with (parsed from
the stage's command in ``dvc.lock``):

* every output matches ``dvc.lock`` (``dvc status``);
* the canonical data file matches the archive it records (md5, sha256), where that is here;
* every checkpoint, zoo and grid, re-evaluated on its test images, gives the recorded accuracy;
* every adversarial example lies in its eps-ball and in [0, 1], and the attack, re-run from the
  checkpoint on randomly chosen batches, gives the stored examples;
* the stored predictions, re-predicted on randomly chosen batches, are the models' labels;
* every non-robust example lies in its eps-ball and in [0, 1], and Table 1's rates,
  re-predicted on all of X', are the recorded ones;
* the transfer ratios, Dist, Tables 1 and 2 and the claims, recomputed from the artifacts
  below them, equal the stored ones.

Each stage module says how its own outputs are recomputed, with the functions its ``run`` uses
(its ``AUDIT``, see :mod:`classaware.stages`); this module finds the stages in ``dvc.lock``
through the registry, runs their checks in order with the comparisons below, and writes the
report. Recomputations are compared bit for bit when the artifact was made in this environment (same
torch build, CPU kernels and threads: ``Environment.reproduces``); otherwise within the stated
tolerances below, since other kernels change the last bits and attacks amplify them. Whole
batches are re-run, in the stage's own batching, because a network's arithmetic (and so its
last bits) depends on which images share a batch.

Writes ``DIR/audit.json`` and ``DIR/audit.md``; exits 0 when every check passes, 1 when one
fails, 2 when it cannot run yet: the run is unfinished (a stage of ``dvc.yaml`` has never run,
or has not run since its code, parameters or inputs changed: finish it with ``dvc repro``), or an
artifact or input is missing (it names them and says ``dvc pull``). An unfinished run is not a
failed audit: only what differs from what ``dvc.lock`` pins, with nothing left to run, is. In a
workspace that shows a kept run (``classaware view``), the artifacts its remote leaves out by
design are not missing: each check that needs one says "not checked: ... (not in the remote)"
and checks the rest, and ``dvc status``'s "deleted" or "not in cache" for them is no change.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import torch

from ..codec import JsonRecord
from ..config import DEVICE_EXPECTED, DEVICE_PATTERN, Options, help_field
from ..data import Cifar10, load_canonical
from ..environment import Environment
from ..files import parse_yaml, save_text
from ..models import pick_device
from ..stages import COMMANDS, Stage, configure, load
from ..text import markdown_table
from . import pipeline, view

log = logging.getLogger(__name__)

# Across environments: accuracies and label rates within half a percentage point (a few
# near-tied images may flip), examples within 1e-3 in every pixel (PGD's 10 steps amplify
# last-bit differences to about 1e-4 on the CPU).
RATE_TOLERANCE = 0.005
PIXEL_TOLERANCE = 1e-3

# The checks every pipeline can have, beside those a stage introduces (its CHECKS); derived
# results are checked last, after the artifacts they are computed from.
ARTIFACTS = "artifacts"
SHARED = {
    ARTIFACTS: "every output is what dvc.lock pins (dvc status)",
    "checkpoints": "each checkpoint's test accuracy, re-evaluated, equals the recorded one",
    "derived": "ratios, Dist, Tables 1-2, claims and headline metrics recomputed from the artifacts below",
}
LAST = "derived"


@dataclass(frozen=True)
class Check:
    name: str
    what: str
    items: int
    result: Literal["pass", "fail", "skipped", "not checked"]
    first_mismatch: str | None
    seconds: float
    not_checked: str | None = None  # artifacts a kept run's remote leaves out, which this check needed


@dataclass(frozen=True)
class AuditResults(JsonRecord):
    FORMAT = "classaware-audit/1"
    WHAT = "audit"
    environment: Environment
    sample: int
    checks: tuple[Check, ...]


class Mismatch(Exception):
    """The first item of a check that does not hold."""


class Skip(Exception):
    """A check that cannot be made here, and why (the archive is elsewhere)."""


# ----------------------------------------------------------------------------- what the stages' checks get
class Context:
    """What every stage's audit function gets: where to recompute, which batches to sample,
    and the comparisons with their tolerances. Recomputations are compared bit for bit when the
    artifact was made in this environment (:meth:`Environment.reproduces`), else within the
    tolerances above. A function raises :attr:`Mismatch` at the first item that does not hold
    and :attr:`Skip` when its check cannot be made here."""

    Mismatch = Mismatch
    Skip = Skip

    def __init__(
        self, device: torch.device, sample: int, seed: int, here: Environment, left_out: frozenset[str] = frozenset()
    ):
        self.device, self.sample, self.here = device, sample, here
        self.left_out = left_out  # outputs a kept run's remote leaves out (classaware view), absent by design
        self.generator = torch.Generator().manual_seed(seed)
        self.data: Callable[[Path], Cifar10] = cache(load_canonical)  # each canonical file read once

    def same(self, made_in: Environment) -> bool:
        return self.here.reproduces(made_in)

    def batches(self, n: int, batch_size: int) -> list[slice]:
        """Randomly chosen batches of the stage's batching (``batching.map_batches``: from image
        0, ``batch_size`` at a time) covering at least ``sample`` images."""
        starts = list(range(0, n, batch_size))
        k = min(len(starts), math.ceil(self.sample / batch_size))
        chosen = torch.randperm(len(starts), generator=self.generator)[:k].sort().values.tolist()
        return [slice(starts[i], min(starts[i] + batch_size, n)) for i in chosen]

    def pixels_equal(self, made_in: Environment, ours: torch.Tensor, stored: torch.Tensor) -> bool:
        same = self.same(made_in)
        return torch.equal(ours, stored) if same else bool((ours - stored).abs().max() <= PIXEL_TOLERANCE)

    def rates_equal(self, made_in: Environment, ours: float, stored: float) -> bool:
        return ours == stored if self.same(made_in) else abs(ours - stored) <= RATE_TOLERANCE

    def labels_agree(self, made_in: Environment, ours: torch.Tensor, stored: torch.Tensor, where: str) -> None:
        differ = float((ours != stored).float().mean())
        if differ > (0 if self.same(made_in) else RATE_TOLERANCE):
            raise Mismatch(f"{where}: {differ:.1%} of the labels differ")

    @staticmethod
    def in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str, where: str) -> None:
        """Every example within ``eps`` of its original (l2 or linf) and in [0, 1]."""
        delta = (x_adv - x).flatten(1)
        size = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)
        if bool((size > eps * (1 + 1e-5) + 1e-6).any()) or x_adv.min() < 0 or x_adv.max() > 1:
            i = int(torch.argmax(size))
            raise Mismatch(
                f"{where}: image {i} is {float(size[i]):.6f} from its original (eps {eps}) or outside [0, 1]"
            )

    @staticmethod
    def same_json(path: Path, values: dict) -> None:
        """A headline metrics file holds what its record says."""
        if json.loads(Path(path).read_text()) != values:
            raise Mismatch(f"{path} holds {Path(path).read_text().strip()[:200]}, its results say {values}")


# ----------------------------------------------------------------------------- the checks
def check_names() -> list[str]:
    """Every check an audit can make: the shared ones and those of every registered stage."""
    introduced = [name for command in COMMANDS for name in getattr(load(command), "CHECKS", {})]
    return list(dict.fromkeys([*SHARED, *introduced]))


def plan(stages: list[Stage]) -> list[tuple[str, str, list[tuple[Stage, Callable]]]]:
    """(name, what, [(stage, its function)]) of every check of ``stages``, in the registry's
    order of the stages that make them, derived results last; the dvc status check first,
    over every stage. ValueError for a stage module without ``AUDIT``, or a check nobody describes."""
    found: dict[str, list[tuple[Stage, Callable]]] = {}
    what = dict(SHARED)
    for command in COMMANDS:
        for s in (s for s in stages if s.command == command):
            if not hasattr(s.module, "AUDIT"):
                raise ValueError(f"stage {s.name}: {s.module.__name__} does not say how it is audited (AUDIT)")
            what |= getattr(s.module, "CHECKS", {})
            for name, function in s.module.AUDIT.items():
                found.setdefault(name, []).append((s, function))
    undescribed = sorted(set(found) - set(what))
    if undescribed:
        raise ValueError(f"no stage describes the audit checks {undescribed} (a stage module's CHECKS)")
    order = [ARTIFACTS, *(n for n in found if n != LAST), *([LAST] if LAST in found else [])]
    return [(name, what[name], found.get(name, [])) for name in order]


def _absent_by_design(path: str, status: str, left_out: frozenset[str], outs: frozenset[str]) -> bool:
    """``dvc status`` says ``status`` of ``path`` because a kept run's remote leaves out what is
    missing of it: an output left out and not here ("deleted", "not in cache"), or a folder that
    holds nothing but outputs of dvc.lock, all of them here but those left out ("modified": a
    stage depending on ``adv``, whose sets the remote leaves out)."""
    inside = path.rstrip("/") + "/"
    if path in left_out:
        return not Path(path).exists()
    under = {o for o in outs if o.startswith(inside)}
    if status not in ("deleted", "not in cache", "modified") or not under & left_out:
        return False
    here = {str(f) for f in Path(path).rglob("*") if f.is_file()} if Path(path).is_dir() else set()
    present = {o for o in under if Path(o).exists()}
    return all(any(f == o or f.startswith(o + "/") for o in present) for f in here) and under - present <= left_out


def _without_absent(entries: list, left_out: frozenset[str], outs: frozenset[str] = frozenset()) -> list:
    """``dvc status`` entries of one stage, less what a kept run's remote leaves out by design."""
    kept = []
    for entry in entries:
        if isinstance(entry, dict):
            entry = {
                kind: {p: st for p, st in changes.items() if not _absent_by_design(p, st, left_out, outs)}
                if isinstance(changes, dict) else changes
                for kind, changes in entry.items()
            }  # fmt: skip
            entry = {kind: changes for kind, changes in entry.items() if changes}
            if not entry:
                continue
        kept.append(entry)
    return kept


def changed_stages(left_out: frozenset[str] = frozenset()) -> dict[str, list]:
    """``dvc status`` of the workspace, but for data.dvc, which pins the official archive a run
    from a local archive never has, and for what a kept run's remote leaves out (``left_out``)."""
    changed = {k: v for k, v in pipeline.status(Path.cwd()).items() if k != "data.dvc"}
    if left_out:
        lock = parse_yaml(Path("dvc.lock").read_text())
        outs = frozenset(o["path"] for s in lock["stages"].values() for o in s.get("outs", []))
        changed = {k: kept for k, v in changed.items() if (kept := _without_absent(v, left_out, outs))}
    return changed


def check_dvc_status(stages: list[Stage], changed: dict[str, list]) -> int:
    """Every stage as dvc.lock pins it (``changed``: ``dvc status`` as :func:`changed_stages` gave it)."""
    if changed:
        raise Mismatch(f"not as dvc.lock pins them: {json.dumps(changed)[:400]}")
    return len(stages)


def _changes(entry: list) -> set[str]:
    """The kinds of change of one stage in ``dvc status --json`` ("changed outs", "changed deps", ...)."""
    return {k for item in entry for k in (item if isinstance(item, dict) else {item: None})}


def never_run(lock: Path, root: Path) -> list[str]:
    """The stages of dvc.yaml (and those upstream of them) that ``lock`` does not hold: they have never run."""
    locked = pipeline.locked_commands(lock) if lock.is_file() else {}
    return [s for s in pipeline.graph(root).order if not s.endswith(".dvc") and s not in locked]


def stale(changed: dict[str, list]) -> list[str]:
    """The stages of ``dvc status`` (``changed``) that have not run since their code, parameters
    or inputs changed, their outputs being as dvc.lock pins them: an unfinished run. A stage whose
    outputs differ from dvc.lock is not among them: that is for the audit to report."""
    return [s for s, entry in changed.items() if not s.endswith(".dvc") and "changed outs" not in _changes(entry)]


def _stages(n: int) -> str:
    return f"{n} stage has" if n == 1 else f"{n} stages have"


def _some(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def missing_inputs(lock: Path) -> list[str]:
    """The outputs ``lock`` pins and the data the stages read (an archive a .dvc file tracks)
    that are not in the workspace: what ``dvc pull --with-deps dvc.yaml`` brings."""
    stages = parse_yaml(lock.read_text())["stages"].values()
    paths = {o["path"] for s in stages for o in s.get("outs", [])}
    paths |= {d["path"] for s in stages for d in s.get("deps", []) if not d["path"].startswith("src/")}
    return sorted(p for p in paths if not Path(p).exists())


def audit(
    stages: list[Stage], ctx: Context, only: tuple[str, ...] = (), changed: dict[str, list] | None = None
) -> list[Check]:
    """Every check of ``stages`` (or those named in ``only``), in :func:`plan`'s order; ``changed``:
    ``dvc status`` as :func:`changed_stages` gave it, if asked already."""
    checks = []
    for name, what, functions in plan(stages):
        if only and name not in only:
            continue
        log.info("audit: %s ...", name)
        start = time.perf_counter()
        absent: list[str] = []
        try:
            if name == ARTIFACTS:
                items = check_dvc_status(stages, changed)
            else:
                items = 0
                for s, function in functions:
                    try:
                        items += function(s.config, ctx)
                    except FileNotFoundError as exc:  # an artifact the kept run's remote leaves out
                        if not (missed := sorted(p for p in ctx.left_out if p in str(exc) and not Path(p).exists())):
                            raise
                        # it stops at the first; the others left out beside it (adv/...) it would need as well
                        tops = {p.split("/", 1)[0] for p in missed}
                        absent += [p for p in ctx.left_out if p.split("/", 1)[0] in tops and not Path(p).exists()]
            result, mismatch = ("not checked" if absent and not items else "pass"), None
        except Mismatch as exc:
            items, result, mismatch = 0, "fail", str(exc)
        except Skip as exc:
            items, result, mismatch = 0, "skipped", str(exc)
        except (ValueError, FileNotFoundError) as exc:  # an artifact that does not load: corrupt, foreign
            items, result, mismatch = 0, "fail", str(exc)
        seconds = round(time.perf_counter() - start, 1)
        note = f"{by_folder(sorted(set(absent)))} (not in the remote)" if absent else None
        checks.append(Check(name, what, items, result, mismatch, seconds, note))
        log.info(
            "audit: %s: %s (%d item%s, %.1f s)%s",
            name,
            result,
            items,
            "" if items == 1 else "s",
            seconds,
            f": {mismatch}" if mismatch else "",
        )
        if note:
            log.info("audit: %s: not checked: %s", name, note)
    return checks


def by_folder(paths: list[str]) -> str:
    """``paths`` counted per top folder, e.g. ``adv/: 40, data/cifar10.pt, models/: 10``."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(path.split("/", 1)[0] + "/" if "/" in path else path, []).append(path)
    return ", ".join(items[0] if len(items) == 1 else f"{top}: {len(items)}" for top, items in sorted(groups.items()))


@dataclass(frozen=True)
class Config(Options):
    sample: int = help_field(100, "images re-attacked and re-predicted per set (in whole batches of the stage)", ge=1)
    out: Path = help_field(Path("audit"), "folder for audit.json and audit.md", output="dir")
    seed: int = help_field(0, "seed of the random choice of batches", ge=0)
    device: str = help_field(
        "cpu", "cpu, cuda or cuda:N: where to recompute", pattern=DEVICE_PATTERN, expected=DEVICE_EXPECTED
    )
    only: tuple[str, ...] = help_field((), "run only these checks (default: all), by name")

    def check(self) -> list[str]:
        known = check_names()
        unknown = [name for name in self.only if name not in known]
        return [f"only must be one of {', '.join(known)}; got {unknown[0]!r}"] if unknown else []


def failed(results: AuditResults) -> list[str]:
    """The names of the checks that failed."""
    return [c.name for c in results.checks if c.result == "fail"]


def unchecked(results: AuditResults) -> list[str]:
    """What the checks could not check, because a kept run's remote leaves it out."""
    return [f"{c.name}: {c.not_checked}" for c in results.checks if c.not_checked]


def markdown(results: AuditResults) -> str:
    verdict = "FAILS" if failed(results) else ("passes on what is here" if unchecked(results) else "passes")
    rows = [[c.name, c.what, c.items, c.result.upper() if c.result == "fail" else c.result,
             c.first_mismatch or (f"not checked: {c.not_checked}" if c.not_checked else ""),
             f"{c.seconds:.1f}"] for c in results.checks]  # fmt: skip
    return (
        "\n".join(
            [
                f"# Audit: the run {verdict}",
                "",
                f"Recomputed on {results.environment.describe()}; about {results.sample} "
                "images per set re-attacked and re-predicted.",
                "",
            ]  # fmt: skip
            + markdown_table(["check", "what", "items", "result", "first mismatch", "seconds"], rows)
        )
        + "\n"
    )


def run(cfg: Config) -> None:
    lock_path = Path("dvc.lock")
    if problems := pipeline.workspace_problems(Path.cwd()):
        raise ValueError(problems[0])
    never = never_run(lock_path, Path.cwd())
    if never:
        raise ValueError(
            f"the run is unfinished: {_stages(len(never))} not run ({_some(never)}); finish it with `dvc repro` "
            "(or `classaware repro`), then audit it"
        )
    left_out = view.left_out()
    absent = frozenset(p for p in left_out if not Path(p).exists())  # left out by the kept run's remote
    missing = [p for p in missing_inputs(lock_path) if p not in left_out]
    if missing:
        print(
            f"classaware audit: cannot run, {len(missing)} artifacts are missing ({by_folder(missing)}); "
            "run `dvc pull --with-deps dvc.yaml`"
        )
        raise SystemExit(2)
    changed = changed_stages(absent)
    if behind := stale(changed):
        raise ValueError(
            f"the run is unfinished: {_stages(len(behind))} not run since {'its' if len(behind) == 1 else 'their'} "
            "code, parameters or inputs "
            f"changed ({_some(behind)}; `dvc status` says what changed); finish it with `dvc repro`, then audit it"
        )
    stages = configure(pipeline.locked_commands(lock_path), Path.cwd())
    device = pick_device(cfg.device)
    here = Environment.current(device)
    ctx = Context(device, cfg.sample, cfg.seed, here, absent)
    results = AuditResults(environment=here, sample=cfg.sample, checks=tuple(audit(stages, ctx, cfg.only, changed)))
    results.save(cfg.out / "audit.json")
    save_text(markdown(results), cfg.out / "audit.md")
    bad = failed(results)
    verdict = f"FAILS ({', '.join(bad)})" if bad else f"passes ({len(results.checks)} checks)"
    if not bad and (skipped := sum(c.result == "not checked" for c in results.checks)):
        verdict = f"passes on what is here ({len(results.checks) - skipped} checks; {skipped} not checked)"
    print(f"classaware audit: the run {verdict}; report: {cfg.out / 'audit.md'}")
    for line in unchecked(results):
        print(f"  not checked: {line}")
    if bad:
        raise SystemExit(1)
