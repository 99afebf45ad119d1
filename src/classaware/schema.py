"""Every artifact that crosses a stage boundary, one frozen dataclass each (the schema; :mod:`codec` reads and writes them).

The stage that writes an artifact and every stage that reads it share the definition here, and
readers ask questions through accessors (``transfer.ratio(source, attack, eps, target,
"same")``, ``distance.dist(source, target)``) instead of following the file's layout.

=====================  ==========  ==========================  ========================
record                 stored as   written by                  read by
=====================  ==========  ==========================  ========================
AdversarialSet         tensors     attack                      predict
PredictionTable        tensors     predict                     transfer
TransferResults        JSON        transfer                    figures, verify, report
DistanceResults        JSON        distance                    figures, verify, report
ImageDistances         tensors     distance                    (reviewers)
DecisionPlanes         tensors     plane                       figures
NonRobustSet           tensors     construct                   train-grid
ConstructMetrics       JSON        construct                   tables
GridMetrics            JSON        train-grid                  tables
Table1, Table2         JSON        tables                      verify
ClaimResults           JSON        verify                      report
=====================  ==========  ==========================  ========================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Literal

import torch

from .codec import JsonRecord, TensorRecord
from .data import Provenance
from .environment import Environment
from .metrics import ClassAwareTransfer, PairDistance, Proportion
from .models import family
from .search import SearchSettings

Ratio = Literal["unfooled", "fooled", "different", "same"]
# A claim's verdict: the point value against the paper's bound, and whether its 95% interval also
# clears the bound ("pass", "fail") or straddles it ("... within noise"); see stages/verify.py.
# A claim one of whose models breaks the paper's conditions (claims.yaml) is "not under the paper's
# conditions", whatever its value.
OUTSIDE = "not under the paper's conditions"
Verdict = Literal[
    "pass", "pass within noise", "fail within noise", "fail", "not under the paper's conditions", "not assessed"
]
VERDICTS: tuple[Verdict, ...] = ("pass", "pass within noise", "fail within noise", "fail", OUTSIDE, "not assessed")
PASSING: tuple[Verdict, ...] = ("pass", "pass within noise")  # the point value is on the claim's side
FAILING: tuple[Verdict, ...] = ("fail within noise", "fail")
# Over replicates: the same words when every replicate is on the same side of the bound, else unstable
ReplicatedVerdict = Literal[
    "pass",
    "pass within noise",
    "fail within noise",
    "fail",
    "unstable",
    "not under the paper's conditions",
    "not assessed",
]
RATIOS: tuple[Ratio, ...] = ("unfooled", "different", "same", "fooled")
# The source's attacks in the paper's order: FGM before PGD, untargeted before targeted.
_ATTACK_ORDER = {"fgm": 0, "pgd": 1, "untargeted": 0, "targeted": 1}


def eps_key(eps: float) -> str:
    """How an eps is spelt as a key: 1.0 -> '1', 0.25 -> '0.25'."""
    return f"{eps:g}"


# ----------------------------------------------------------------------------- section 3
@dataclass(frozen=True)
class ModelInfo:
    """A model of the zoo, and how it relates to a source F1 in the paper's words: "source",
    "v:E" (F1 at epoch E), "w:same" (same architecture and initial weights, other data order),
    "w:diff" (same architecture, other initial weights) or "other" (another architecture)."""

    arch: str
    family: str
    epoch: int
    init_seed: int
    data_seed: int
    relation: str

    @classmethod
    def of(cls, meta: dict, source_meta: dict) -> ModelInfo:
        """The model of checkpoint metadata ``meta``, related to the source's ``source_meta``."""
        if meta["arch"] != source_meta["arch"]:
            relation = "other"
        elif meta["init_seed"] != source_meta["init_seed"]:
            relation = "w:diff"
        elif meta["data_seed"] != source_meta["data_seed"]:
            relation = "w:same"
        else:
            relation = "source" if meta["epoch"] == source_meta["epoch"] else f"v:{meta['epoch']}"
        return cls(meta["arch"], family(meta["arch"]), meta["epoch"], meta["init_seed"], meta["data_seed"], relation)


@dataclass(frozen=True)
class AdversarialSet(TensorRecord):
    """x' = adv(x, y, F1) for every eps of a sweep (eqs. 2, 3), on test images ``indices``."""

    FORMAT = "classaware-adversarial-set/1"
    WHAT = "adversarial set"
    source: str  # zoo reference of F1
    source_info: ModelInfo
    method: Literal["fgm", "pgd"]
    objective: Literal["untargeted", "targeted"]
    norm: Literal["l2", "linf"]
    eps: tuple[float, ...]
    steps: int
    alpha_ratio: float
    indices: torch.Tensor  # (N,) test-set indices
    y: torch.Tensor  # (N,) true labels
    target_classes: torch.Tensor | None  # (N,) the targeted attack's classes
    x_adv: torch.Tensor  # (E, N, C, H, W), one set per eps
    provenance: Provenance
    environment: Environment  # what computed it (see classaware.environment)


@dataclass(frozen=True)
class SetPredictions:
    """Every model's labels on one adversarial set: ``labels[e, m, i]`` for eps e, model m."""

    method: Literal["fgm", "pgd"]
    objective: Literal["untargeted", "targeted"]
    eps: tuple[float, ...]
    target_classes: torch.Tensor | None
    labels: torch.Tensor  # (E, M, N)


@dataclass(frozen=True)
class PredictionTable(TensorRecord):
    """One source's predictions: model 0 is F1, then the target models F2."""

    FORMAT = "classaware-predictions/1"
    WHAT = "prediction table"
    source: str
    models: tuple[str, ...]
    info: dict[str, ModelInfo]
    indices: torch.Tensor
    y: torch.Tensor
    clean: torch.Tensor  # (M, N) labels on the clean images
    sets: dict[str, SetPredictions]  # by attack name, e.g. "fgm-targeted"
    provenance: Provenance
    environment: Environment  # what computed it (see classaware.environment)

    @property
    def targets(self) -> tuple[str, ...]:
        return self.models[1:]


@dataclass(frozen=True)
class AttackTransfer:
    """Class-aware transferability of one attack: ``by_eps[eps_key][target]`` over D'_F1 (eq. 1),
    and the diagnostic ``target_right[eps_key][target]``: the same ratios over the images of D'_F1
    that the target classifies right before the attack (F2(x) = y), which sets the target's clean
    errors apart from what the attack did."""

    method: Literal["fgm", "pgd"]
    objective: Literal["untargeted", "targeted"]
    by_eps: dict[str, dict[str, ClassAwareTransfer]]
    target_right: dict[str, dict[str, ClassAwareTransfer]]


@dataclass(frozen=True)
class SourceTransfer:
    models: tuple[str, ...]  # F1 first, then the targets F2
    info: dict[str, ModelInfo]
    clean_acc: dict[str, float]
    n_images: int
    attacks: dict[str, AttackTransfer]


@dataclass(frozen=True)
class TransferResults(JsonRecord):
    """Section 3.1.1's ratios for every source, attack, eps and target (eq. 1)."""

    FORMAT = "classaware-transfer/2"
    WHAT = "transfer results"
    dataset: str
    sources: dict[str, SourceTransfer]

    def over_target_right(self) -> TransferResults:
        """The diagnostic reading: every ratio over the images of D'_F1 its target classified
        right before the attack (``AttackTransfer.target_right``) in place of all of D'_F1."""
        return replace(self, sources={
            name: replace(s, attacks={a: replace(at, by_eps=at.target_right) for a, at in s.attacks.items()})
            for name, s in self.sources.items()
        })  # fmt: skip

    def targets(self, source: str) -> tuple[str, ...]:
        return self.sources[source].models[1:]

    def info(self, source: str, model: str) -> ModelInfo:
        return self.sources[source].info[model]

    def targets_by_relation(self, source: str, relation: str) -> list[str]:
        """The source's targets with this relation ("w:same", "w:diff", "other"); "v:" gives
        every early version."""
        match = (lambda r: r.startswith("v:")) if relation == "v:" else (lambda r: r == relation)
        return [t for t in self.targets(source) if match(self.info(source, t).relation)]

    def attack_names(self, source: str) -> list[str]:
        attacks = self.sources[source].attacks
        return sorted(attacks, key=lambda a: (_ATTACK_ORDER[attacks[a].method], _ATTACK_ORDER[attacks[a].objective], a))

    def attack(self, source: str, attack: str) -> AttackTransfer:
        return self.sources[source].attacks[attack]

    def eps_values(self, source: str, attack: str) -> list[float]:
        return sorted(float(e) for e in self.attack(source, attack).by_eps)

    def check_eps(self, eps: float, option: str = "figures.figure_eps") -> None:
        """Raise ValueError, naming ``option``, unless every source's every attack was run at ``eps``."""
        attacks = [a for s in self.sources.values() for a in s.attacks.values()]
        if not attacks or any(eps_key(eps) not in a.by_eps for a in attacks):
            attacked = sorted({float(e) for a in attacks for e in a.by_eps})
            raise ValueError(
                f"{option} {eps:g} is not an eps every attack was run at "
                f"(attacked: {', '.join(map(eps_key, attacked)) or 'none'}); set {option} to one of them"
            )

    def result(self, source: str, attack: str, eps: float, target: str) -> ClassAwareTransfer:
        return self.attack(source, attack).by_eps[eps_key(eps)][target]

    def ratio(self, source: str, attack: str, eps: float, target: str, kind: Ratio) -> float | None:
        """P[...] over D'_F1 (None when no AE fooled F1)."""
        return getattr(self.result(source, attack, eps, target), kind).ratio


@dataclass(frozen=True)
class SourceDistance:
    targets: dict[str, PairDistance]
    censored: dict[str, int]  # model -> images whose label never changed up to the radius
    radius: float  # the radius every model's search along this source's directions ended at
    mean_d: dict[str, float]  # model -> mean d(f, x), censored ones at the radius


@dataclass(frozen=True)
class DistanceResults(JsonRecord):
    """Dist(F1, F2) (eq. 4) for every source and target."""

    FORMAT = "classaware-distance/3"
    WHAT = "distance results"
    dataset: str
    n_images: int
    n_eligible: int
    search: SearchSettings
    sources: dict[str, SourceDistance]
    environment: Environment  # what computed it (see classaware.environment)

    def pair(self, source: str, target: str) -> PairDistance | None:
        return self.sources[source].targets.get(target)

    def dist(self, source: str, target: str) -> float | None:
        """Dist(F1, F2) over every image (censored distances as lower bounds)."""
        pair = self.pair(source, target)
        return None if pair is None else pair.dist

    def over_flipped_images(self) -> DistanceResults:
        """The diagnostic reading: every pair's Dist over the images neither model leaves
        censored (``PairDistance.dist_flipped``, its interval and count), in place of the paper's
        mean over all images; a pair with no such image has no Dist here."""
        sources = {
            name: replace(s, targets={
                t: PairDistance(p.dist_flipped, p.flipped_ci_low, p.flipped_ci_high, p.n_flipped, 0,
                                p.dist_flipped, p.flipped_ci_low, p.flipped_ci_high, p.n_flipped)
                for t, p in s.targets.items() if p.dist_flipped is not None
            })
            for name, s in self.sources.items()
        }  # fmt: skip
        return replace(self, sources=sources)


@dataclass(frozen=True)
class ImageDistances(TensorRecord):
    """d(f, x_i) along each source's gradient directions: ``distances[source][model]``, and
    which of them are censored (``boundary.search_boundaries``)."""

    FORMAT = "classaware-image-distances/3"
    WHAT = "per-image distances"
    indices: torch.Tensor
    distances: dict[str, dict[str, torch.Tensor]]
    censored: dict[str, dict[str, torch.Tensor]]  # bool: the distance is the radius searched, a lower bound
    provenance: Provenance
    environment: Environment  # what computed it (see classaware.environment)


@dataclass(frozen=True)
class DecisionPlanes(TensorRecord):
    """Fig. 4: each model's labels on the plane x + u d1 + v d2 of one test image."""

    FORMAT = "classaware-decision-planes/1"
    WHAT = "decision planes"
    source: str
    models: tuple[str, ...]  # the source first
    index: int  # test-set index of the image
    true_label: int
    classes: tuple[str, ...]
    coords: torch.Tensor
    labels: torch.Tensor  # (M, S, S)
    unit: float
    image: torch.Tensor  # (3, 32, 32) uint8
    all_right: bool  # every model classifies the image right
    provenance: Provenance
    environment: Environment  # what computed it (see classaware.environment)


# ----------------------------------------------------------------------------- section 4
@dataclass(frozen=True)
class NonRobustSet(TensorRecord):
    """X' of the N-targeted attack (eq. 5) on F1 and F2, with Y1 and Y2 (Fig. 6)."""

    FORMAT = "classaware-nonrobust-set/1"
    WHAT = "non-robust set"
    pair: tuple[str, str]
    eps: float
    alpha: float
    steps: int
    norm: Literal["l2", "linf"]
    indices: torch.Tensor  # training-set indices of the attacked images
    val_indices: torch.Tensor  # clean training images held out for the grid search
    y: torch.Tensor
    y1: torch.Tensor
    y2: torch.Tensor
    x: torch.Tensor
    provenance: Provenance
    environment: Environment  # what computed it (see classaware.environment)

    def labels(self, labelling: Literal["y1", "y2"]) -> torch.Tensor:
        return self.y1 if labelling == "y1" else self.y2

    def labels_digest(self, labelling: Literal["y1", "y2"]) -> str:
        """sha256 of the training images' indices and one labelling: equal for two sets (or a set
        and its control) exactly when they label the same images the same way."""
        h = hashlib.sha256(self.indices.to(torch.int64).numpy().tobytes())
        h.update(self.labels(labelling).to(torch.int64).numpy().tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class Table1Rates:
    """P[F1(X') = Y1], P[F2(X') = Y2] and P[both], with Wilson intervals."""

    f1_hits_y1: Proportion
    f2_hits_y2: Proportion
    both: Proportion


@dataclass(frozen=True)
class Probe:
    n_images: int
    rates: Table1Rates


@dataclass(frozen=True)
class ConstructMetrics(JsonRecord):
    """Table 1's row of one pair, and the same rates at the probe eps."""

    FORMAT = "classaware-construct-metrics/1"
    WHAT = "construct metrics"
    pair: str
    f1: str
    f2: str
    dataset: str
    n_images: int
    eps: float
    alpha: float
    steps: int
    rates: Table1Rates
    probes: dict[str, Probe]  # by eps key
    targets_equal_true: float  # P[Y1 = Y]
    targets_equal_each_other: float  # P[Y1 = Y2]
    environment: Environment  # what computed it (see classaware.environment)


@dataclass(frozen=True)
class GridCell:
    cell: str
    lr: float
    batch_size: int
    augment: str
    val_acc: float | None
    test_acc: float
    fit: float  # accuracy on its own (un-augmented) training images and labels: does it fit them?


@dataclass(frozen=True)
class GridMetrics(JsonRecord):
    """Every grid cell of one training on a non-robust set, on its matched control (``clean``:
    the set's clean images X with the same labels) or on the original set, and the cell chosen
    on the held-out clean training images."""

    FORMAT = "classaware-grid-metrics/2"
    WHAT = "train-grid metrics"
    arch: str
    labelling: Literal["y1", "y2", "y"]
    pair: str | None  # None: the original set
    clean: bool  # the control: the clean images of ``pair``'s set with its labelling
    labels_digest: str | None  # NonRobustSet.labels_digest of the images and labels trained on
    dataset: str
    n_train: int
    n_val: int
    n_test: int
    cells: tuple[GridCell, ...]
    selected: str
    val_acc: float | None
    test_acc: float
    environment: Environment  # what computed it (see classaware.environment)


@dataclass(frozen=True)
class Table1Row:
    pair: str
    paper_pair: str | None
    eps: float
    n_images: int
    rates: Table1Rates
    probes: dict[str, Probe]
    paper: tuple[float, float, float] | None


@dataclass(frozen=True)
class Table1(JsonRecord):
    FORMAT = "classaware-table1/1"
    WHAT = "Table 1"
    dataset: str
    rows: tuple[Table1Row, ...]


@dataclass(frozen=True)
class Table2Row:
    pair: str
    labelling: Literal["y1", "y2"]
    arch: str
    test_acc: float
    n_test: int
    val_acc: float | None
    fit: float  # the selected cell's accuracy on its own training labels
    selected: str
    paper: float | None  # %


@dataclass(frozen=True)
class BaselineRow:
    arch: str
    test_acc: float
    selected: str
    paper: float | None  # %


@dataclass(frozen=True)
class ControlRow:
    """The matched negative control of every set with this labelling, for one learner: the same
    learner and schedule on the clean images X with the same random labels."""

    labelling: Literal["y1", "y2"]
    arch: str
    test_acc: float
    n_test: int
    fit: float
    selected: str


@dataclass(frozen=True)
class Table2(JsonRecord):
    FORMAT = "classaware-table2/2"
    WHAT = "Table 2"
    dataset: str
    chance: float
    rows: tuple[Table2Row, ...]
    controls: tuple[ControlRow, ...]
    baseline: tuple[BaselineRow, ...]

    def control(self, row: Table2Row) -> ControlRow:
        """The control matched to ``row``: same labelling, same learner."""
        for c in self.controls:
            if (c.labelling, c.arch) == (row.labelling, row.arch):
                return c
        raise ValueError(f"Table 2 has no control for labelling {row.labelling} and learner {row.arch}")


# ----------------------------------------------------------------------------- the paper's conditions
@dataclass(frozen=True)
class ModelCondition:
    """One model's place under the paper's conditions (claims.yaml): its clean test accuracy on
    ``n_test`` test images, how far (a fraction: 0.05 is 5 points) it lies below the mean of the
    zoo's most accurate architecture, and whether that is within the rule's bound."""

    arch: str
    accuracy: float
    n_test: int
    below_best: float
    holds: bool


@dataclass(frozen=True)
class ZooConditions(JsonRecord):
    """The paper's conditions applied to a trained zoo: every zoo member and every saved early
    version (``member@epoch``), against the mean accuracy of the best architecture."""

    FORMAT = "classaware-conditions/1"
    WHAT = "zoo conditions"
    dataset: str
    rule: str
    within: float
    arch_means: dict[str, float]  # each architecture's mean final accuracy over its members
    best_arch: str
    models: dict[str, ModelCondition]

    def outside(self, refs) -> tuple[str, ...]:
        """Those of zoo references ``refs`` that break the rule, sorted; ValueError for a reference
        the zoo does not have (a claim cannot be judged on a model nobody checked)."""
        unknown = sorted(set(refs) - set(self.models))
        if unknown:
            raise ValueError(f"no condition recorded for {', '.join(unknown)}: not in the zoo's training results")
        return tuple(sorted(r for r in set(refs) if not self.models[r].holds))

    def holds(self) -> bool:
        return all(m.holds for m in self.models.values())


# ----------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Reading:
    """One reading of a claim's quantity beside the paper's: its value and 95% interval."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim checked: its metric's value, 95% interval (where it has one), the diagnostic
    readings beside it and related numbers (``analysis.Estimate``), the bound, the verdict, and
    the models it reads that break the paper's conditions (the verdict then says so)."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    readings: dict[str, Reading]
    notes: dict[str, float | None]
    bound: float | None
    verdict: Verdict
    caveats: tuple[str, ...]  # why a pass is fragile: readings on which it would not pass
    outside: tuple[str, ...]  # the models the claim reads that break the paper's conditions


@dataclass(frozen=True)
class ClaimResults(JsonRecord):
    """Each claim of claims.yaml checked at one profile."""

    FORMAT = "classaware-claims/3"
    WHAT = "claims results"
    profile: str
    dataset: str
    claims: dict[str, ClaimVerdict]

    def count(self, verdict: Verdict) -> int:
        return sum(c.verdict == verdict for c in self.claims.values())

    def summary(self) -> str:
        """E.g. "9 pass, 1 pass within noise, 1 fail within noise, 2 fail, 2 not assessed (of 15)"."""
        counts = ", ".join(f"{self.count(v)} {v}" for v in VERDICTS)
        return f"{counts} (of {len(self.claims)})"


@dataclass(frozen=True)
class ReplicatedClaim:
    """One claim over the replicates: its value and verdict in each, and what they add up to."""

    values: tuple[float | None, ...]
    verdicts: tuple[Verdict, ...]
    mean: float | None
    low: float | None
    high: float | None
    n_pass: int  # replicates whose point value passes (decided or within noise)
    verdict: ReplicatedVerdict

    @classmethod
    def of(cls, values: list[float | None], verdicts: list[Verdict]) -> ReplicatedClaim:
        """The verdict every replicate gives; "pass within noise" (or "fail within noise") when all
        are on the passing (failing) side of the bound but not all are decided; "not under the
        paper's conditions" when any replicate is (its zoo decides nothing about the paper); else
        unstable: the replicates disagree on the side."""
        known = [v for v in values if v is not None]
        if OUTSIDE in verdicts:
            agreed = OUTSIDE
        elif len(set(verdicts)) == 1:
            agreed = verdicts[0]
        elif set(verdicts) <= set(PASSING):
            agreed = "pass within noise"
        elif set(verdicts) <= set(FAILING):
            agreed = "fail within noise"
        else:
            agreed = "unstable"
        return cls(
            values=tuple(values),
            verdicts=tuple(verdicts),
            mean=sum(known) / len(known) if known else None,
            low=min(known, default=None),
            high=max(known, default=None),
            n_pass=sum(v in PASSING for v in verdicts),
            verdict=agreed,
        )


@dataclass(frozen=True)
class Replicates(JsonRecord):
    """Every claim over replicate runs of one profile that differ only in their seeds."""

    FORMAT = "classaware-replicates/1"
    WHAT = "replicates"
    profile: str
    seed_shifts: tuple[int, ...]
    claims: dict[str, ReplicatedClaim]
