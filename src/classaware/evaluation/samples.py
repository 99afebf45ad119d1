"""The per-image labels an evaluation produces, from which every table is recomputed.

One :class:`Samples` holds the true labels y (N,), the source's clean predictions F1(x) (N,), the
targets' clean predictions F2(x) (M, N), and one :class:`AdversarialLabels` per adversarial set
(attack x eps x objective x quantisation): target classes t (or none), F1(x') and every F2(x'),
and, for a quantised set, the same predictions before quantisation. It is saved as
``samples.npz`` (plain integer arrays and one JSON string: ``numpy.load(allow_pickle=False)``
reads it) and read back by ``classaware score``; a predictions CSV (one row per image and set)
is read by :func:`from_csv`, for people who only have labels.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_path

FORMAT = "classaware-evaluate-samples/1"
OBJECTIVES = ("untargeted", "targeted")
QUANTIZE = ("none", "round", "floor")


@dataclass(frozen=True)
class SetKey:
    """Which adversarial set: the attack as named, its eps (None: the attack's own), the objective
    and how x' was quantised before the models saw it (``none``, ``round``: round(255 x')/255, what
    PNG writers that round hold; ``floor``: floor(255 x')/255, what ``(x * 255).astype(uint8)`` holds)."""

    attack: str
    eps: float | None
    objective: str
    quantize: str = "none"

    def label(self) -> str:
        eps = "" if self.eps is None else f", eps {self.eps:g}"
        q = "" if self.quantize == "none" else f", quantised ({self.quantize})"
        return f"{self.attack}{eps}, {self.objective}{q}"


@dataclass(frozen=True)
class AdversarialLabels:
    """Labels on one adversarial set: t (N,) or None, F1(x') (N,), F2(x') (M, N); for a quantised
    set also F1 and F2 on the unquantised x' (None otherwise)."""

    key: SetKey
    t: torch.Tensor | None
    source_adv: torch.Tensor
    target_adv: torch.Tensor
    source_adv_raw: torch.Tensor | None = None
    target_adv_raw: torch.Tensor | None = None


@dataclass(frozen=True)
class Samples:
    """Everything per image (see the module docstring); ``targets`` name the rows of F2."""

    dataset: str
    source: str
    targets: tuple[str, ...]
    num_classes: int
    class_names: tuple[str, ...] | None
    y: torch.Tensor
    source_clean: torch.Tensor
    target_clean: torch.Tensor
    sets: tuple[AdversarialLabels, ...]

    def class_name(self, k: int) -> str:
        return self.class_names[k] if self.class_names and k < len(self.class_names) else str(k)

    def save(self, path: str | Path) -> None:
        """Atomically write ``samples.npz`` (see the module docstring)."""
        arrays = {"y": self.y, "source_clean": self.source_clean, "target_clean": self.target_clean}
        for i, s in enumerate(self.sets):
            for name in ("t", "source_adv", "target_adv", "source_adv_raw", "target_adv_raw"):
                value = getattr(s, name)
                if value is not None:
                    arrays[f"set{i}_{name}"] = value
        meta = {
            "format": FORMAT,
            "dataset": self.dataset,
            "source": self.source,
            "targets": list(self.targets),
            "num_classes": self.num_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
            "sets": [asdict(s.key) for s in self.sets],
        }
        dtype = np.int16 if self.num_classes <= 32767 else np.int32
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f, meta=np.array(json.dumps(meta)), **{k: v.cpu().numpy().astype(dtype) for k, v in arrays.items()}
                )

    @classmethod
    def load(cls, path: str | Path) -> Samples:
        """Read ``samples.npz``; ValueError for another file."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: torch.from_numpy(z[k].astype(np.int64)) for k in z.files if k != "meta"}
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is not a samples.npz of classaware evaluate: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file (found {meta.get('format')!r})")
        sets = tuple(
            AdversarialLabels(
                SetKey(**key),
                *(
                    arrays.get(f"set{i}_{n}")
                    for n in ("t", "source_adv", "target_adv", "source_adv_raw", "target_adv_raw")
                ),
            )
            for i, key in enumerate(meta["sets"])
        )
        names = meta["class_names"]
        return cls(
            meta["dataset"], meta["source"], tuple(meta["targets"]), meta["num_classes"], tuple(names) if names else None,
            arrays["y"], arrays["source_clean"], arrays["target_clean"], sets,
        )  # fmt: skip


CSV_COLUMNS = (
    "source",
    "attack",
    "eps",
    "objective",
    "quantize",
    "image",
    "y",
    "t",
    "source_clean",
    "source_adv",
    "source_adv_raw",
)


def to_csv(samples: Samples, path: str | Path) -> None:
    """One row per image and set: the source's name, the set's key, y, t (empty when untargeted),
    F1(x), F1(x'), F1 on the unquantised x' (empty unless quantised), then ``clean:TARGET``,
    ``adv:TARGET`` and ``raw:TARGET`` per target; :func:`from_csv` reads it back."""
    names = samples.targets
    header = [*CSV_COLUMNS, *(f"clean:{t}" for t in names), *(f"adv:{t}" for t in names), *(f"raw:{t}" for t in names)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for s in samples.sets:
            raw = list(s.target_adv_raw) if s.target_adv_raw is not None else [None] * len(names)
            cols = [
                samples.y,
                s.t,
                samples.source_clean,
                s.source_adv,
                s.source_adv_raw,
                *samples.target_clean,
                *s.target_adv,
                *raw,
            ]
            cols = [None if c is None else c.tolist() for c in cols]
            key = [
                samples.source,
                s.key.attack,
                "" if s.key.eps is None else s.key.eps,
                s.key.objective,
                s.key.quantize,
            ]
            for i in range(len(samples.y)):
                w.writerow([*key, i, *("" if c is None else c[i] for c in cols)])


def from_csv(path: str | Path, num_classes: int | None = None, dataset: str = "", source: str = "") -> Samples:
    """Samples from a predictions CSV (:func:`to_csv`'s columns; ``source``, ``eps``, ``quantize``,
    ``t``, ``image`` and the ``raw`` columns may be empty or absent). ValueError naming the row and
    column of a bad cell."""
    path = Path(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows")
    cols = list(rows[0])
    missing = [c for c in ("attack", "objective", "y", "source_clean", "source_adv") if c not in cols]
    targets = [c[4:] for c in cols if c.startswith("adv:")]
    if missing or not targets:
        raise ValueError(f"{path} lacks columns {missing or ['adv:TARGET']}; see classaware.evaluation.samples.to_csv")
    if any(f"clean:{t}" not in cols for t in targets):
        raise ValueError(f"{path}: every adv:TARGET column needs its clean:TARGET column")

    def label(row, col, i):
        try:
            return int(row[col])
        except (TypeError, ValueError):
            raise ValueError(f"{path}, row {i + 2}, column {col}: {row.get(col)!r} is not a class label") from None

    groups: dict[SetKey, list[tuple[int, dict]]] = {}
    for i, row in enumerate(rows):
        eps = row.get("eps") or None
        key = SetKey(
            row["attack"], None if eps is None else float(eps), row["objective"], row.get("quantize") or "none"
        )
        if key.objective not in OBJECTIVES:
            raise ValueError(f"{path}, row {i + 2}: objective must be one of {OBJECTIVES}, got {key.objective!r}")
        groups.setdefault(key, []).append((i, row))
    first = next(iter(groups.values()))
    y = torch.tensor([label(r, "y", i) for i, r in first])
    src = torch.tensor([label(r, "source_clean", i) for i, r in first])
    tgt_clean = torch.tensor([[label(r, f"clean:{t}", i) for i, r in first] for t in targets])
    sets = []
    for key, members in groups.items():
        if len(members) != len(first) or [label(r, "y", i) for i, r in members] != y.tolist():
            raise ValueError(
                f"{path}: set {key.label()} does not list the same images, in the same order, as the first set"
            )
        has_t = key.objective == "targeted"
        t = torch.tensor([label(r, "t", i) for i, r in members]) if has_t else None
        first_row = members[0][1]
        raw = (
            key.quantize != "none"
            and bool(first_row.get("source_adv_raw"))
            and all(first_row.get(f"raw:{n}") for n in targets)
        )
        sets.append(
            AdversarialLabels(
                key,
                t,
                torch.tensor([label(r, "source_adv", i) for i, r in members]),
                torch.tensor([[label(r, f"adv:{n}", i) for i, r in members] for n in targets]),
                torch.tensor([label(r, "source_adv_raw", i) for i, r in members]) if raw else None,
                torch.tensor([[label(r, f"raw:{n}", i) for i, r in members] for n in targets]) if raw else None,
            )
        )
    found = 1 + max(
        int(y.max()),
        int(src.max()),
        int(tgt_clean.max()),
        *(int(s.target_adv.max()) for s in sets),
        *(int(s.source_adv.max()) for s in sets),
    )
    if num_classes is not None and found > num_classes:
        raise ValueError(f"{path}: labels reach {found - 1}, outside 0..{num_classes - 1}")
    if int(y.min()) < 0:
        raise ValueError(f"{path}: labels must be >= 0")
    source = source or rows[0].get("source") or "F1"
    return Samples(
        dataset or path.name, source, tuple(targets), num_classes or found, None, y, src, tgt_clean, tuple(sets)
    )
