"""Cost model of the pipeline: the work every DVC stage does at a profile's sizes, and the time
that work takes on a device whose throughput was measured (``benchmarks/gpu_check.py``).

Work is counted from the parameters alone (a profile's merged ``params.yaml``), per
architecture, in units of one image:

  train    one image through one SGD step (forward, backward, update) at the recipe's batch size
  forward  one image through one eval-mode forward pass (predictions, accuracies, Dist's scan,
           the decision plane)
  grad     one gradient of a loss with respect to one input image (forward and backward to the
           input): one attack step of one model, one Dist direction
  save     one write of a training's resume state or checkpoint (``training.state_epochs``)
  decode   one image decoded from the CIFAR-10 archive (``prepare``)

plus the processes each stage starts (``runs``: one per DVC stage instance). Time is

  seconds = sum over (kind, arch) of units / rate(kind, arch)  +  runs * stage_overhead_s

with the rates of a throughput file (the ``throughput`` section ``gpu_check.py`` writes):
``train`` and ``forward`` are measured per architecture; ``save`` is 1 / state_save_s;
``grad`` is forward * g, where g = steps * pgd img/s / forward img/s is measured on the PGD
benchmark's architecture, both rates on the same images and batches, back to back: a gradient
is taken to cost the same multiple of a forward pass for every architecture (both are
convolutions through the same layers). ``decode`` and the
per-process overhead (start-up, loading data and checkpoints, DVC's bookkeeping) come from the
measured pipeline run.

Everything is counted exactly except Dist's scan, whose length depends on where each model's
boundary lies: it is counted at its bound, every image scanned to ``max_radius`` (``ceil(R /
step)`` forwards after the one at r = 0) and bisected (``ceil(log2(step / tol))``), and
``n_images`` images searched, so the distance stage's figures are upper bounds. Training rates
are measured at one batch size (128) and apply to every batch size of a grid.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import product

from .training import state_epochs

CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_TEST_PER_CLASS = 50_000, 10_000, 1_000
KINDS = ("train", "forward", "grad", "save", "decode")
ATTACKS = len(("fgm", "pgd")) * len(("untargeted", "targeted"))  # adversarial sets per source
DECODE = ""  # the "architecture" of decode units: none


@dataclass
class Work:
    """One stage's work: ``units[(kind, arch)]`` images, ``runs`` processes; ``bound``: the
    counts are upper bounds (Dist's scan)."""

    stage: str
    runs: int = 0
    units: Counter = field(default_factory=Counter)
    bound: bool = False

    def total(self, kind: str) -> float:
        return sum(n for (k, _), n in self.units.items() if k == kind)


def _all(size: int, total: int) -> int:
    """A size option: 0 means all ``total`` images."""
    return size or total


def _unique(refs) -> list[str]:
    return list(dict.fromkeys(refs))


def _training(
    w: Work, arch: str, n: int, epochs: int, eval_n: int, final_n: int, save_epochs: tuple[int, ...] = ()
) -> None:
    """One call of ``training.train`` and the accuracies its stage reports afterwards: ``epochs``
    epochs over ``n`` images, ``eval_n`` test images logged per epoch, the resume states of
    :func:`~classaware.training.state_epochs`, a checkpoint after each of ``save_epochs`` and
    the last epoch, each evaluated on ``final_n`` images."""
    checkpoints = len(set(save_epochs) | {epochs})
    w.units["train", arch] += n * epochs
    w.units["forward", arch] += eval_n * epochs + final_n * checkpoints
    w.units["save", arch] += len(state_epochs(epochs, tuple(save_epochs))) + checkpoints


def stage_work(p: dict) -> list[Work]:
    """The work of every stage of dvc.yaml, in its order, for merged parameters ``p``."""
    arch = {member: spec["arch"] for member, spec in p["zoo"].items()}

    def arch_of(ref: str) -> str:
        return arch[ref.split("@")[0]]

    out = []

    w = Work("prepare", runs=1)
    w.units["decode", DECODE] = CIFAR10_TRAIN + CIFAR10_TEST
    out.append(w)

    w, r, t = Work("train"), p["recipe"], p["train"]
    for spec in p["zoo"].values():
        w.runs += 1
        _training(
            w,
            spec["arch"],
            _all(t["train_size"], CIFAR10_TRAIN),
            r["epochs"],
            _all(t["eval_size"], CIFAR10_TEST),
            _all(t["test_size"], CIFAR10_TEST),
            t["save_epochs"],
        )
    out.append(w)

    a, c = p["attack"], p["compare"]
    n_attacked = _all(a["test_size"], CIFAR10_TEST)
    w = Work("attack")
    for source, method in product(c["sources"], ("fgm", "pgd")):
        w.runs += 2  # untargeted, targeted
        w.units["grad", arch_of(source)] += 2 * n_attacked * len(a["eps"]) * (a["steps"] if method == "pgd" else 1)
    out.append(w)

    def targets_of(source: str) -> list[str]:  # checkpoint.Comparison.targets_of
        early = [f"{source}@{c['early_epoch']}"] if c["early_epoch"] else []
        return early + [t for t in c["targets"] if t != source]

    w = Work("predict", runs=1)
    for source in c["sources"]:
        for ref in [source, *targets_of(source)]:
            w.units["forward", arch_of(ref)] += n_attacked * (
                1 + ATTACKS * len(a["eps"])
            )  # clean + every set, every eps
    out.append(w)

    out.append(Work("transfer", runs=1))

    d = p["distance"]
    w = Work("distance", runs=1, bound=True)
    compared = _unique([*c["sources"], *(t for s in c["sources"] for t in targets_of(s))])
    for ref in compared:  # which test images every model gets right
        w.units["forward", arch_of(ref)] += _all(d["test_size"], CIFAR10_TEST)
    # at most: every image scans the first radius and every doubling (each as many steps), then bisects
    scan = math.ceil(d["max_radius"] / d["step"] - 1e-9) + math.ceil(math.log2(d["step"] / d["tol"]))
    per_image = 1 + (1 + d["doublings"]) * scan
    for source in c["sources"]:
        w.units["grad", arch_of(source)] += d["n_images"]
        for ref in _unique([source, *targets_of(source)]):
            w.units["forward", arch_of(ref)] += d["n_images"] * per_image
    out.append(w)

    pl = p["plane"]
    w = Work("plane", runs=1)
    for ref in _unique([pl["source"], *pl["models"]]):
        w.units["forward", arch_of(ref)] += (
            CIFAR10_TEST_PER_CLASS + (2 * pl["span"] + 1) ** 2
        )  # the image's class, the grid
    w.units["grad", arch_of(pl["source"])] += 1
    out.append(w)

    out.append(Work("figures", runs=1))

    k, nr = p["construct"], p["nonrobust"]
    n_set = _all(k["train_size"], CIFAR10_TRAIN - k["val_size"])
    attacked = n_set + min(k["probe_size"], n_set) * len(k["probe_eps"])
    w = Work("construct")
    for pair in nr["pairs"]:
        w.runs += 1
        for ref in pair.split("+"):  # every step differentiates both models
            w.units["grad", arch_of(ref)] += attacked * k["steps"]
            w.units["forward", arch_of(ref)] += attacked  # Table 1's hits
    out.append(w)

    rn, g = p["nonrobust_schedule"], p["grid"]
    cells = len(g["grid_lr"]) * len(g["grid_batch_size"]) * len(g["grid_augment"])
    final = k["val_size"] + _all(g["test_size"], CIFAR10_TEST)  # each cell: selection, then its test accuracy
    for stage, sets in (("train_nonrobust", len(nr["pairs"]) * len(nr["labellings"])), ("train_baseline", 1)):
        w = Work(stage)
        for model_arch in nr["archs"]:
            for _ in range(sets):
                w.runs += 1
                for _ in range(cells):
                    _training(w, model_arch, n_set, rn["epochs"], _all(g["eval_size"], CIFAR10_TEST), final)
        out.append(w)

    out += [Work("tables", runs=1), Work("verify", runs=1), Work("report", runs=1)]
    return out


@dataclass(frozen=True)
class Rates:
    """Units per second by (kind, arch) and the per-process overhead, from a throughput file;
    a benchmark that did not run leaves its rates out (the stages needing them show as missing)."""

    device: str
    per_s: dict
    overhead_s: float | None
    train_bf16: bool | None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_results(cls, doc: dict) -> Rates:
        """From the JSON ``benchmarks/gpu_check.py`` writes (see the module docstring)."""
        t = {name: section or {} for name, section in doc["throughput"].items()}
        train, infer, pgd, pipeline = t["train"], t["infer"].get("img_per_s", {}), t["pgd"], t["pipeline"]
        per_s = {}
        if pipeline.get("decode_img_per_s"):
            per_s["decode", DECODE] = pipeline["decode_img_per_s"]
        for a, rate in train.get("img_per_s", {}).items():
            per_s["train", a] = rate
        for a, seconds in train.get("state_save_s", {}).items():
            per_s["save", a] = 1 / seconds
        g = pgd["steps"] * pgd["img_per_s"] / pgd["forward_img_per_s"] if pgd else None  # gradients/s over forwards/s
        for a, rate in infer.items():
            per_s["forward", a] = rate
            if g is not None:
                per_s["grad", a] = rate * g
        return cls(doc["device"], per_s, pipeline.get("stage_overhead_s"), train.get("bf16"), _checks(t, per_s))

    def seconds(self, w: Work) -> float | None:
        """The stage's time, or None when a figure it needs was not measured (see :meth:`missing`)."""
        if self.missing(w):
            return None
        return sum(n / self.per_s[key] for key, n in w.units.items() if n) + w.runs * self.overhead_s

    def missing(self, w: Work) -> list[str]:
        gaps = [f"{kind} {arch}".strip() for (kind, arch), n in w.units.items() if n and (kind, arch) not in self.per_s]
        return sorted(gaps + (["stage start-up"] if w.runs and self.overhead_s is None else []))


def _checks(t: dict, per_s: dict) -> tuple[str, ...]:
    """What the other benchmarks say about the model: the N-targeted attack predicted from the
    gradient rates against its measured rate, the concurrent trainings' total speed-up."""
    notes = []
    nt, ct = t["n_targeted"], t["concurrent_train"]
    if nt and all(("grad", a) in per_s for a in nt["archs"]):
        predicted = 1 / (nt["steps"] * sum(1 / per_s["grad", a] for a in nt["archs"]))
        notes.append(
            f"model check: N-targeted {'+'.join(nt['archs'])}, {nt['steps']} steps: "
            f"predicted {predicted:.4g} img/s, measured {nt['img_per_s']:.4g} img/s"
        )
    if ct.get("img_per_s", {}).get("1"):
        one = ct["img_per_s"]["1"]
        notes.append(
            f"{ct['arch']} trainings at once, total throughput / one training's: "
            + ", ".join(f"{k} at once {v / one:.2f}x" for k, v in ct["img_per_s"].items())
        )
    return tuple(notes)


def fmt_count(n: float) -> str:
    if n == 0:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def fmt_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"


def table(works: list[Work], rates: Rates | None) -> list[str]:
    """One line per stage: processes, units of every kind, time and share of the total (upper
    bounds marked <=), then the total; without rates, the work units and ``total: ? h``."""
    times = {w.stage: rates.seconds(w) for w in works} if rates else {}
    known = [s for s in times.values() if s is not None]
    total = sum(known)
    row = "{:<16} {:>5} {:>10} {:>10} {:>10} {:>8} {:>8} {:>12} {:>6}".format
    lines = [row("stage", "runs", "train img", "fwd img", "grad img", "saves", "decoded", "time", "share")]
    for w in works:
        mark = "<=" if w.bound else ""
        seconds = times.get(w.stage)
        time = "?" if seconds is None else mark + fmt_seconds(seconds)
        share = "" if seconds is None or not total else f"{100 * seconds / total:.1f}%"
        counts = [fmt_count(w.total(k)) for k in KINDS]
        counts[1] = mark + counts[1] if counts[1] != "-" else counts[1]
        lines.append(row(w.stage, w.runs, *counts, time, share))
    missing = sorted({m for w in works for m in (rates.missing(w) if rates else [])})
    if rates is None:
        lines.append("total: ? h (no throughput figures)")
    elif missing:
        lines.append(f"total: ? h (not measured: {', '.join(missing)}; the stages that are: {total / 3600:.2f} h)")
    else:
        bound = " (an upper bound: Dist's scan counted at its bound)" if any(w.bound for w in works) else ""
        lines.append(f"total: {total / 3600:.2f} h{bound}")
    return lines
