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

Recomputations are compared bit for bit when the artifact was made in this environment (same
torch build, CPU kernels and threads: ``Environment.reproduces``); otherwise within the stated
tolerances below, since other kernels change the last bits and attacks amplify them. Whole
batches are re-run, in the stage's own batching, because a network's arithmetic (and so its
last bits) depends on which images share a batch.

Writes ``DIR/audit.json`` and ``DIR/audit.md``; exits 0 when every check passes, 1 when one
fails, 2 when it cannot run (an artifact is missing: it names them and says ``dvc pull``).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import yaml

from ..analysis import section3_metrics, section4_metrics
from ..artifacts import save_text
from ..attacks import fgm, pgd
from ..boundary import BoundarySearch, distance_from_distances
from ..checkpoint import load_model, load_refs
from ..config import DEVICE_EXPECTED, DEVICE_PATTERN, Options, from_args, help_field
from ..data import balanced_subset, file_digests, load_canonical, to_float
from ..environment import Environment
from ..models import pick_device, predict
from ..records import JsonRecord
from ..results import (
    AdversarialSet,
    ClaimResults,
    ConstructMetrics,
    DistanceResults,
    GridMetrics,
    ImageDistances,
    NonRobustSet,
    PredictionTable,
    Table1,
    Table2,
    TransferResults,
)
from ..text import markdown_table
from ..training import TrainMetrics
from . import construct, tables, transfer, verify

log = logging.getLogger(__name__)

# Across environments: accuracies and label rates within half a percentage point (a few
# near-tied images may flip), examples within 1e-3 in every pixel (PGD's 10 steps amplify
# last-bit differences to about 1e-4 on the CPU).
RATE_TOLERANCE = 0.005
PIXEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Check:
    name: str
    what: str
    items: int
    result: Literal["pass", "fail", "skipped"]
    first_mismatch: str | None
    seconds: float


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


# ----------------------------------------------------------------------------- the run's stages
def stage_configs(lock: dict) -> dict[str, tuple[str, Options]]:
    """{stage name: (command, its Config)} from the commands dvc.lock recorded."""
    from ..cli import _stage, build_parser  # the CLI sits above the stages; imported when run

    out = {}
    for name, stage in lock["stages"].items():
        # DVC runs the command in a shell: expand its globs the same way (sorted)
        argv = [e for a in shlex.split(stage["cmd"]) for e in (sorted(glob.glob(a)) if glob.has_magic(a) else [a])]
        if argv[0] != "classaware":
            continue
        args = build_parser(argv[1]).parse_args(argv[1:])
        out[name] = (argv[1], from_args(_stage(argv[1]).Config, args))
    return out


def missing_outputs(lock: dict) -> list[str]:
    return sorted(o["path"] for s in lock["stages"].values() for o in s.get("outs", []) if not Path(o["path"]).exists())


def by_folder(paths: list[str]) -> str:
    """``paths`` counted per top folder, e.g. ``adv/: 40, data/cifar10.pt, models/: 10``."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(path.split("/", 1)[0] + "/" if "/" in path else path, []).append(path)
    return ", ".join(items[0] if len(items) == 1 else f"{top}: {len(items)}" for top, items in sorted(groups.items()))


@dataclass
class Run:
    """What the checks share: the stages' configurations, the data, the device, the sampling."""

    stages: dict[str, tuple[str, Options]]
    device: torch.device
    sample: int
    generator: torch.Generator
    here: Environment

    def of(self, command: str) -> list[Options]:
        return [cfg for cmd, cfg in self.stages.values() if cmd == command]

    def same(self, made_in: Environment) -> bool:
        return self.here.reproduces(made_in)

    def batches(self, n: int, batch_size: int) -> list[slice]:
        """Randomly chosen batches of the stage's batching covering at least ``sample`` images."""
        starts = list(range(0, n, batch_size))
        k = min(len(starts), math.ceil(self.sample / batch_size))
        chosen = torch.randperm(len(starts), generator=self.generator)[:k].sort().values.tolist()
        return [slice(starts[i], min(starts[i] + batch_size, n)) for i in chosen]


def _equal(same: bool, ours: torch.Tensor, stored: torch.Tensor, tolerance: float) -> bool:
    return torch.equal(ours, stored) if same else bool((ours - stored).abs().max() <= tolerance)


def _rate_equal(same: bool, ours: float, stored: float) -> bool:
    return ours == stored if same else abs(ours - stored) <= RATE_TOLERANCE


# ----------------------------------------------------------------------------- the checks
def check_dvc_status(run: Run) -> int:
    done = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise Mismatch(f"dvc status failed: {done.stderr.strip()[-500:]}")
    changed = {k: v for k, v in json.loads(done.stdout or "{}").items() if k != "data.dvc"}
    if changed:
        raise Mismatch(f"not as dvc.lock pins them: {json.dumps(changed)[:400]}")
    return len(run.stages)


def check_data(run: Run) -> int:
    ((_, cfg),) = [(c, s) for c, s in run.stages.values() if c == "prepare"]
    data = load_canonical(cfg.out)
    if not Path(cfg.archive).is_file():
        raise Skip(f"archive {cfg.archive} is not here; the canonical file records md5 {data.provenance.md5}")
    md5, sha256 = file_digests(Path(cfg.archive))
    if (md5, sha256) != (data.provenance.md5, data.provenance.sha256):
        raise Mismatch(f"{cfg.out} records md5 {data.provenance.md5} but {cfg.archive} has {md5}")
    return 1


def check_checkpoints(run: Run) -> int:
    n = 0
    for cfg in run.of("train"):
        data = load_canonical(cfg.data)
        idx = balanced_subset(data.test_y, cfg.test_size, cfg.seed_shift)
        recorded = TrainMetrics.load(cfg.results)
        for path in sorted(Path(cfg.out).glob("epoch_*.pt")):
            model, meta = load_model(path, device=run.device)
            ours = (predict(model, to_float(data.test_x[idx])) == data.test_y[idx].to(run.device)).float().mean().item()
            if not _rate_equal(run.same(recorded.environment), ours, recorded.test_acc[str(meta["epoch"])]):
                raise Mismatch(
                    f"{path}: test accuracy {ours} here, {recorded.test_acc[str(meta['epoch'])]} in {cfg.results}"
                )
            n += 1
    for cfg in run.of("train-grid"):
        data = load_canonical(cfg.data)
        idx = balanced_subset(data.test_y, cfg.test_size, cfg.seed_shift)
        recorded = GridMetrics.load(cfg.results)
        for cell in recorded.cells:
            model, _ = load_model(max(Path(cfg.out, cell.cell).glob("epoch_*.pt")), device=run.device)
            ours = (predict(model, to_float(data.test_x[idx])) == data.test_y[idx].to(run.device)).float().mean().item()
            if not _rate_equal(run.same(recorded.environment), ours, cell.test_acc):
                raise Mismatch(f"{cfg.out}/{cell.cell}: test accuracy {ours} here, {cell.test_acc} in {cfg.results}")
            n += 1
    return n


def _in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str, where: str) -> None:
    delta = (x_adv - x).flatten(1)
    size = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)
    if bool((size > eps * (1 + 1e-5) + 1e-6).any()) or x_adv.min() < 0 or x_adv.max() > 1:
        i = int(torch.argmax(size))
        raise Mismatch(f"{where}: image {i} is {float(size[i]):.6f} from its original (eps {eps}) or outside [0, 1]")


def check_adversarial_sets(run: Run) -> int:
    n = 0
    for cfg in run.of("attack"):
        s = AdversarialSet.load(cfg.out)
        data = load_canonical(cfg.data)
        x, y = to_float(data.test_x[s.indices]), s.y
        ((model, _),) = load_refs(cfg.models_dir, [s.source], run.device).values()
        for e, eps in enumerate(s.eps):
            _in_ball(s.x_adv[e], x, eps, s.norm, f"{cfg.out} eps {eps:g}")
            for b in run.batches(len(y), cfg.batch_size):
                classes = None if s.target_classes is None else s.target_classes[b].to(run.device)
                xb, yb = x[b].to(run.device), y[b].to(run.device)
                if s.method == "fgm":
                    ours = fgm(model, xb, yb, eps, s.norm, target_classes=classes)
                else:
                    ours = pgd(model, xb, yb, eps, s.alpha_ratio * eps, s.steps, s.norm, target_classes=classes)
                if not _equal(run.same(s.environment), ours.cpu(), s.x_adv[e][b], PIXEL_TOLERANCE):
                    diff = float((ours.cpu() - s.x_adv[e][b]).abs().max())
                    raise Mismatch(
                        f"{cfg.out} eps {eps:g}: re-attacked images {b.start}-{b.stop} differ by up to {diff:.2e}"
                    )
                n += b.stop - b.start
    return n


def check_predictions(run: Run) -> int:
    n = 0
    for cfg in run.of("predict"):
        data = load_canonical(cfg.data)
        for source in cfg.compare.sources:
            path = cfg.out_dir / f"{source}.pt"
            table = PredictionTable.load(path)
            models = {ref: m for ref, (m, _) in load_refs(cfg.models_dir, list(table.models), run.device).items()}
            sets = {p.stem: AdversarialSet.load(p) for p in sorted((cfg.adv_dir / source).glob("*.pt"))}
            # the clean images, and one randomly chosen eps of every set
            views = [("clean", to_float(data.test_x[table.indices]), table.clean)]
            for name, preds in table.sets.items():
                e = int(torch.randint(len(preds.eps), (1,), generator=run.generator))
                views.append((f"{name} eps {preds.eps[e]:g}", sets[name].x_adv[e], preds.labels[e]))
            for view, images, stored in views:
                for b in run.batches(len(images), cfg.batch_size):
                    for m, ref in enumerate(table.models):
                        ours = predict(models[ref], images[b], cfg.batch_size).cpu()
                        where = f"{path}: {view} labels of {ref}, images {b.start}-{b.stop}"
                        _labels_agree(run.same(table.environment), ours, stored[m, b], where)
                        n += len(ours)
    return n


def _labels_agree(same: bool, ours: torch.Tensor, stored: torch.Tensor, where: str) -> None:
    differ = float((ours != stored).float().mean())
    if differ > (0 if same else RATE_TOLERANCE):
        raise Mismatch(f"{where}: {differ:.1%} of the labels differ")


def check_nonrobust_sets(run: Run) -> int:
    n = 0
    for cfg in run.of("construct"):
        s, recorded = NonRobustSet.load(cfg.out), ConstructMetrics.load(cfg.results)
        data = load_canonical(cfg.data)
        _in_ball(s.x, to_float(data.train_x[s.indices]), s.eps, s.norm, str(cfg.out))
        models = load_refs(cfg.models_dir, list(s.pair), run.device)
        f1, f2 = (models[ref][0] for ref in s.pair)
        ours = construct.table1_rates(
            predict(f1, s.x, cfg.batch_size).cpu(), predict(f2, s.x, cfg.batch_size).cpu(), s.y1, s.y2
        )
        for name in ("f1_hits_y1", "f2_hits_y2", "both"):
            mine, theirs = getattr(ours, name).ratio, getattr(recorded.rates, name).ratio
            if not _rate_equal(run.same(s.environment), mine, theirs):
                raise Mismatch(f"{cfg.results}: Table 1's {name} is {mine} re-predicted, {theirs} recorded")
        n += len(s.y)
    return n


def check_derived(run: Run) -> int:
    """Ratios, Dist, tables and claims recomputed from the artifacts below them: exact, since
    they are counts and sums of stored numbers."""
    n = 0
    for cfg in run.of("transfer"):
        ours = TransferResults(
            dataset=PredictionTable.load(cfg.predictions[0]).provenance.dataset,
            sources={t.source: transfer.source_transfer(t) for t in map(PredictionTable.load, cfg.predictions)},
        )
        if ours != TransferResults.load(cfg.out):
            raise Mismatch(f"{cfg.out}: the ratios recomputed from {', '.join(map(str, cfg.predictions))} differ")
        n += 1
    for cfg in run.of("distance"):
        stored, per_image = DistanceResults.load(cfg.out), ImageDistances.load(cfg.distances)
        for source, distances in per_image.distances.items():
            searches = {
                ref: BoundarySearch(d, per_image.censored[source][ref], stored.sources[source].radius[ref])
                for ref, d in distances.items()
            }
            for target, pair in stored.sources[source].targets.items():
                ours = distance_from_distances(searches[source], searches[target], stored.search.max_radius)
                if ours != pair:
                    raise Mismatch(
                        f"{cfg.out}: Dist({source}, {target}) is {ours.dist} from {cfg.distances}, {pair.dist} stored"
                    )
                n += 1
    for cfg in run.of("tables"):
        table1, table2 = tables.build_tables(cfg)
        if (table1, table2) != (Table1.load(cfg.out_dir / "table1.json"), Table2.load(cfg.out_dir / "table2.json")):
            raise Mismatch(f"{cfg.out_dir}/table1.json or table2.json differ from the section-4 results below them")
        for name, values in tables.headlines(table1, table2).items():
            _same_json(cfg.metrics_dir / name, values)
        n += 1
    for cfg in run.of("train"):
        _same_json(cfg.metrics, {"test_acc": TrainMetrics.load(cfg.results).final()[1]})
        n += 1
    for cfg in run.of("verify"):
        claims = verify.load_claims(cfg.claims, cfg.profile)
        metrics = {
            **section3_metrics(TransferResults.load(cfg.transfer), DistanceResults.load(cfg.distance), cfg.figure_eps),
            **section4_metrics(Table1.load(cfg.table1), Table2.load(cfg.table2)),
        }
        stored = ClaimResults.load(cfg.out)
        for c in claims:
            ours = verify.check(c, metrics[c["metric"]], c["bound"][cfg.profile])
            _same_json(verify.metric_file(cfg.metrics_dir, c["id"]), verify.headline(c, ours))
            if ours != stored.claims[c["id"]]:
                raise Mismatch(f"{cfg.out}: claim {c['id']} recomputes to {ours.value} ({ours.verdict}), "
                               f"stored {stored.claims[c['id']].value} ({stored.claims[c['id']].verdict})")  # fmt: skip
            n += 1
    return n


def _same_json(path: Path, values: dict) -> None:
    """A headline metrics file holds what its record says."""
    if json.loads(Path(path).read_text()) != values:
        raise Mismatch(f"{path} holds {Path(path).read_text().strip()[:200]}, its results say {values}")


CHECKS: list[tuple[str, str, Callable[[Run], int]]] = [
    ("artifacts", "every output is what dvc.lock pins (dvc status)", check_dvc_status),
    ("data", "the canonical data file matches its archive's md5 and sha256", check_data),
    ("checkpoints", "each checkpoint's test accuracy, re-evaluated, equals the recorded one", check_checkpoints),
    ("adversarial-sets", "examples in their eps-ball and [0, 1]; sampled batches re-attacked", check_adversarial_sets),
    ("predictions", "sampled batches of the prediction tables re-predicted", check_predictions),
    ("nonrobust-sets", "examples in their eps-ball and [0, 1]; Table 1's rates re-predicted", check_nonrobust_sets),
    (
        "derived",
        "ratios, Dist, Tables 1-2, claims and headline metrics recomputed from the artifacts below",
        check_derived,
    ),
]


@dataclass(frozen=True)
class Config(Options):
    sample: int = help_field(100, "images re-attacked and re-predicted per set (in whole batches of the stage)", ge=1)
    out: Path = help_field(Path("audit"), "folder for audit.json and audit.md", output="dir")
    seed: int = help_field(0, "seed of the random choice of batches", ge=0)
    device: str = help_field(
        "cpu", "cpu, cuda or cuda:N: where to recompute", pattern=DEVICE_PATTERN, expected=DEVICE_EXPECTED
    )
    only: tuple[str, ...] = help_field(
        (), "run only these checks (default: all)", choices=[name for name, _, _ in CHECKS]
    )


def audit(run: Run, only: tuple[str, ...] = ()) -> list[Check]:
    checks = []
    for name, what, check in CHECKS:
        if only and name not in only:
            continue
        log.info("audit: %s ...", name)
        start = time.perf_counter()
        try:
            items, result, mismatch = check(run), "pass", None
        except Mismatch as exc:
            items, result, mismatch = 0, "fail", str(exc)
        except Skip as exc:
            items, result, mismatch = 0, "skipped", str(exc)
        except (ValueError, FileNotFoundError) as exc:  # an artifact that does not load: corrupt, foreign
            items, result, mismatch = 0, "fail", str(exc)
        seconds = round(time.perf_counter() - start, 1)
        checks.append(Check(name, what, items, result, mismatch, seconds))
        log.info(
            "audit: %s: %s (%d items, %.1f s)%s", name, result, items, seconds, f": {mismatch}" if mismatch else ""
        )
    return checks


def markdown(results: AuditResults) -> str:
    verdict = "passes" if all(c.result != "fail" for c in results.checks) else "FAILS"
    rows = [[c.name, c.what, c.items, c.result.upper() if c.result == "fail" else c.result, c.first_mismatch or "",
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
    if not lock_path.is_file():
        raise FileNotFoundError("dvc.lock does not exist: run the audit in a workspace of a finished run")
    lock = yaml.safe_load(lock_path.read_text())
    missing = missing_outputs(lock)
    if missing:
        print(
            f"classaware audit: cannot run, {len(missing)} artifacts are missing ({by_folder(missing)}); run `dvc pull`"
        )
        raise SystemExit(2)
    device = pick_device(cfg.device)
    here = Environment.current(device)
    runner = Run(stage_configs(lock), device, cfg.sample, torch.Generator().manual_seed(cfg.seed), here)
    results = AuditResults(environment=here, sample=cfg.sample, checks=tuple(audit(runner, cfg.only)))
    results.save(cfg.out / "audit.json")
    save_text(markdown(results), cfg.out / "audit.md")
    if any(c.result == "fail" for c in results.checks):
        raise SystemExit(1)
