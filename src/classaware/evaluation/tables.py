"""The tables of an evaluation, computed from its per-image labels (:class:`~.samples.Samples`).

The paper's ratios come from :func:`classaware.metrics.class_aware_transfer` (over D'_F1, eq. 1:
F1(x) = y and F1(x') != y) and every interval is a :class:`classaware.metrics.Proportion`'s 95%
Wilson interval; this module only groups images and names the rows. Beside the paper's ratios,
the denominators the tools publish, each labelled (metric ``success:...``), so a published number
can be matched (N images, targets t, F2 the target):

========================================  ====================================  =======================================
metric                                    untargeted                            targeted
========================================  ====================================  =======================================
``success:all_images`` (TransferAttack    #{F2(x') != y} / N                    #{F2(x') = t} / N
main.py eval, TA-Bench evaluation.py,
TransferAttackEval, TransferBench,
foolbox's 1 - accuracy)
``success:target_correct``                #{F2(x) = y, F2(x') != y} /           #{F2(x) = y, F2(x') = t} /
(TransferAttack#101)                      #{F2(x) = y}                          #{F2(x) = y}
``success:torchattack_fooling_rate``      (#{F2(x) = y} - #{F2(x') = y}) /      #{F2(x') = t} / N
(torchattack's FoolingRateMeter)          #{F2(x) = y} (can be negative)
``success:art_prediction_changed``        #{F2(x') != F2(x)} / N                #{F2(x') = t} / N
(ART's compute_success)
========================================  ====================================  =======================================

The targeted split of D'_F1: ``target_hit`` (F2(x') = t), ``restored`` (F2(x') = y), ``source_class``
(F2(x') = y1 != t, the source's own wrong class) and ``other`` (the rest): they sum to |D'_F1|.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..metrics import Proportion, class_aware_transfer, fooled_set
from .samples import AdversarialLabels, Samples

PAPER = "Waseda et al. 2023"
ALL_IMAGES_TOOLS = "TransferAttack, TA-Bench, TransferAttackEval, TransferBench, foolbox"


@dataclass(frozen=True)
class SummaryRow:
    """One number of one target on one adversarial set (long format): ``count`` of ``n`` (the
    denominator, described in words), ``value`` = count / n, its 95% Wilson interval."""

    dataset: str
    source: str
    target: str
    attack: str
    eps: float | None
    objective: str
    quantize: str
    metric: str
    denominator: str
    count: int
    n: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    reported_by: str


@dataclass(frozen=True)
class ClassRow:
    """The three ratios of one target over the D'_F1 images of one class: grouped by the true
    class y, by the source's wrong class y1, or by the target class t. ``n_images`` images are in
    the group, ``n`` of them in D'_F1."""

    dataset: str
    source: str
    target: str
    attack: str
    eps: float | None
    objective: str
    quantize: str
    group_by: str
    class_index: int
    class_name: str
    n_images: int
    n: int
    unfooled: int
    different: int
    same: int
    unfooled_ratio: float | None
    different_ratio: float | None
    same_ratio: float | None
    different_ci_low: float | None
    different_ci_high: float | None
    same_ci_low: float | None
    same_ci_high: float | None


@dataclass(frozen=True)
class PairRow:
    """The different mistakes y1 -> y2 (F1(x') = y1, F2(x') = y2, y2 not in {y, y1}) of one
    target: ``count`` of the ``n`` D'_F1 images with F1(x') = y1, with its Wilson interval."""

    dataset: str
    source: str
    target: str
    attack: str
    eps: float | None
    objective: str
    quantize: str
    y1: int
    y1_name: str
    y2: int
    y2_name: str
    count: int
    n: int
    ratio: float | None
    ci_low: float | None
    ci_high: float | None


def _key_fields(samples: Samples, s: AdversarialLabels, target: str) -> dict:
    k = s.key
    return {"dataset": samples.dataset, "source": samples.source, "target": target, "attack": k.attack, "eps": k.eps,
            "objective": k.objective, "quantize": k.quantize}  # fmt: skip


def _row(fields: dict, metric: str, denominator: str, p: Proportion, by: str) -> SummaryRow:
    return SummaryRow(**fields, metric=metric, denominator=denominator, count=p.count, n=p.n, value=p.ratio,
                      ci_low=p.ci_low, ci_high=p.ci_high, reported_by=by)  # fmt: skip


def targeted_split(y, source_adv, target_adv, t, mask) -> dict[str, int]:
    """Counts over D'_F1 (``mask``) of F2(x') = t, = y, = y1 != t, and the rest."""
    y, y1, f2, t = y[mask], source_adv[mask], target_adv[mask], t[mask]
    hit = int((f2 == t).sum())
    restored = int((f2 == y).sum())
    source_class = int(((f2 == y1) & (y1 != t)).sum())
    return {
        "target_hit": hit,
        "restored": restored,
        "source_class": source_class,
        "other": int(mask.sum()) - hit - restored - source_class,
    }


def published(y, target_clean, target_adv, t) -> dict[str, tuple[int, int]]:
    """(count, n) of every published success rate (see the module docstring) for one target."""
    n = len(y)
    right = target_clean == y
    n_right = int(right.sum())
    if t is None:
        return {
            "all_images": (int((target_adv != y).sum()), n),
            "target_correct": (int((right & (target_adv != y)).sum()), n_right),
            "torchattack_fooling_rate": (n_right - int((target_adv == y).sum()), n_right),
            "art_prediction_changed": (int((target_adv != target_clean).sum()), n),
        }
    hits = target_adv == t
    return {
        "all_images": (int(hits.sum()), n),
        "target_correct": (int((right & hits).sum()), n_right),
        "torchattack_fooling_rate": (int(hits.sum()), n),
        "art_prediction_changed": (int(hits.sum()), n),
    }


PUBLISHED = {
    "all_images": ("all images", ALL_IMAGES_TOOLS),
    "target_correct": ("images F2 classifies correctly", "TransferAttack#101"),
    "torchattack_fooling_rate": ("images F2 classifies correctly (difference of counts)", "torchattack"),
    "art_prediction_changed": ("all images (F2's clean prediction as the reference)", "ART"),
}


def _value(count: int, n: int) -> Proportion:
    """A Proportion, or (for torchattack's fooling rate, which can leave [0, n]) the bare ratio."""
    if 0 <= count <= n:
        return Proportion.of(count, n)
    return Proportion(count, n, count / n if n else None, None, None)


def summary(samples: Samples, dists: dict | None = None) -> list[SummaryRow]:
    """Every number of every set and target (see the module docstring); ``dists`` maps a target
    name to its :class:`classaware.metrics.PairDistance` when Dist(F1, F2) was measured."""
    rows: list[SummaryRow] = []
    y = samples.y
    for s in samples.sets:
        results = class_aware_transfer(y, samples.source_clean, s.source_adv, s.target_adv, target_classes=s.t)
        mask = fooled_set(y, samples.source_clean, s.source_adv)
        src = _key_fields(samples, s, samples.source)
        rows.append(
            _row(
                src,
                "source_accuracy",
                "all images",
                Proportion.of(int((samples.source_clean == y).sum()), len(y)),
                PAPER,
            )
        )
        rows.append(
            _row(
                src,
                "source_fooled",
                "images F1 classifies correctly (|D'_F1| of them)",
                Proportion.of(int(mask.sum()), int((samples.source_clean == y).sum())),
                PAPER,
            )
        )
        if s.t is not None:
            rows.append(_row(src, "source_target_hit", "D'_F1", results[0].source_target_class_hit, PAPER))
        if s.source_adv_raw is not None:
            rows.append(
                _row(
                    src,
                    "quantization_changed",
                    "all images",
                    Proportion.of(int((s.source_adv != s.source_adv_raw).sum()), len(y)),
                    "classaware",
                )
            )
        for j, (name, r) in enumerate(zip(samples.targets, results, strict=True)):
            f = _key_fields(samples, s, name)
            for metric in ("unfooled", "different", "same", "fooled"):
                rows.append(_row(f, metric, "D'_F1", getattr(r, metric), PAPER))
            if s.t is not None:
                rows.append(_row(f, "target_hit", "D'_F1", r.target_class_hit, PAPER))
                for part, count in targeted_split(y, s.source_adv, s.target_adv[j], s.t, mask).items():
                    if part != "target_hit":
                        rows.append(_row(f, f"split:{part}", "D'_F1", Proportion.of(count, r.n), "classaware"))
            for metric, (count, n) in published(y, samples.target_clean[j], s.target_adv[j], s.t).items():
                what, by = PUBLISHED[metric]
                rows.append(_row(f, f"success:{metric}", what, _value(count, n), by))
            rows.append(
                _row(
                    f,
                    "target_accuracy",
                    "all images",
                    Proportion.of(int((samples.target_clean[j] == y).sum()), len(y)),
                    "classaware",
                )
            )
            rows.append(
                _row(
                    f,
                    "clean_agreement",
                    "all images (F2(x) = F1(x))",
                    Proportion.of(int((samples.target_clean[j] == samples.source_clean).sum()), len(y)),
                    "classaware",
                )
            )
            if s.target_adv_raw is not None:
                changed = int((s.target_adv[j] != s.target_adv_raw[j]).sum())
                rows.append(_row(f, "quantization_changed", "all images", Proportion.of(changed, len(y)), "classaware"))
            d = (dists or {}).get(name)
            if d is not None:
                rows.append(SummaryRow(**f, metric="dist", denominator="images both classify correctly", count=d.n_censored, n=d.n_images,
                                       value=d.dist, ci_low=d.ci_low, ci_high=d.ci_high, reported_by=PAPER))  # fmt: skip
    return rows


GROUPS = {"true_class": "y", "source_class": "y1", "target_class": "t"}


def per_class(samples: Samples) -> list[ClassRow]:
    """The three ratios per true class y, per source wrong class y1 (within D'_F1) and per target
    class t (targeted sets), each group through :func:`class_aware_transfer` on its images."""
    rows = []
    y = samples.y
    for s in samples.sets:
        keys = {"true_class": y, "source_class": s.source_adv, "target_class": s.t}
        mask = fooled_set(y, samples.source_clean, s.source_adv)
        for group, values in keys.items():
            if values is None:
                continue
            for k in torch.unique(values if group != "source_class" else values[mask]).tolist():
                sel = values == k
                if group == "source_class":
                    sel &= mask
                results = class_aware_transfer(
                    y[sel], samples.source_clean[sel], s.source_adv[sel], s.target_adv[:, sel]
                )
                for name, r in zip(samples.targets, results, strict=True):
                    rows.append(ClassRow(
                        **_key_fields(samples, s, name), group_by=group, class_index=k, class_name=samples.class_name(k),
                        n_images=int(sel.sum()), n=r.n, unfooled=r.unfooled.count, different=r.different.count, same=r.same.count,
                        unfooled_ratio=r.unfooled.ratio, different_ratio=r.different.ratio, same_ratio=r.same.ratio,
                        different_ci_low=r.different.ci_low, different_ci_high=r.different.ci_high,
                        same_ci_low=r.same.ci_low, same_ci_high=r.same.ci_high,
                    ))  # fmt: skip
    return rows


def pair_counts(y, source_adv, target_adv, mask, num_classes: int) -> torch.Tensor:
    """(C, C) counts of the different mistakes y1 -> y2 over D'_F1 (``mask``)."""
    y1, y2, yy = source_adv[mask], target_adv[mask], y[mask]
    different = (y2 != yy) & (y2 != y1)
    flat = y1[different] * num_classes + y2[different]
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def pairs(samples: Samples, top: int = 50, dense_up_to: int = 20) -> list[PairRow]:
    """Every y1 -> y2 pair (zeros too) for up to ``dense_up_to`` classes; above that, the ``top``
    most frequent pairs per set and target."""
    rows = []
    c = samples.num_classes
    for s in samples.sets:
        mask = fooled_set(samples.y, samples.source_clean, s.source_adv)
        per_y1 = torch.bincount(s.source_adv[mask], minlength=c)
        for j, name in enumerate(samples.targets):
            counts = pair_counts(samples.y, s.source_adv, s.target_adv[j], mask, c)
            if c <= dense_up_to:
                cells = [(a, b) for a in range(c) for b in range(c) if a != b]
            else:
                flat = counts.flatten()
                order = torch.argsort(flat, descending=True, stable=True)[:top]
                cells = [(int(i) // c, int(i) % c) for i in order if flat[i] > 0]
            for a, b in cells:
                p = Proportion.of(int(counts[a, b]), int(per_y1[a]))
                rows.append(PairRow(**_key_fields(samples, s, name), y1=a, y1_name=samples.class_name(a), y2=b,
                                    y2_name=samples.class_name(b), count=p.count, n=p.n, ratio=p.ratio, ci_low=p.ci_low,
                                    ci_high=p.ci_high))  # fmt: skip
    return rows
