"""Class-aware transferability (section 3.1.1), with 95% Wilson confidence intervals.

Only adversarial examples that fooled the source are counted (eq. 1):

    D'_F1 = {(x, y) in D : F1(x) = y and F1(x') = y1 != y}

and for a target model F2, over D'_F1:

    un-fooled        P[F2(x') = y]
    fooled           P[F2(x') != y]          (non-targeted transferability)
    different (2a)   P[F2(x') not in {y, y1}]
    same (2b)        P[F2(x') = y1]

so un-fooled + different + same = 1 and fooled = different + same. For a targeted attack with
target classes t, ``target_class_hit`` is P[F2(x') = t] and ``source_target_class_hit`` is
P[F1(x') = t], both over D'_F1.
An empty D'_F1 gives ``n = 0`` and every ratio ``None``: reported as empty, never divided by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .contracts import as_label_rows, as_labels

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion k/n:

        (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),  p = k/n.

    ``None`` for n = 0. Chosen over the normal interval because it stays inside [0, 1] and
    keeps its coverage at ratios near 0 or 1 and at the small D'_F1 of CPU-sized runs.
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # k = 0 and k = n give exactly 0 and 1 (centre -+ half cancels only up to rounding)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


@dataclass(frozen=True)
class Proportion:
    """count of n, with its ratio and 95% Wilson interval (ratio and interval None when n = 0).

    Arguments:
        count (int): how many of the n.
        n (int): out of how many (for the class-aware ratios, |D'_F1|).
        ratio (float or None): count / n.
        ci_low, ci_high (float or None): the 95% Wilson interval of the ratio, within [0, 1].

    Shape:
        - every field is a Python number (no tensors).

    Examples::

        >>> p = Proportion.of(3, 10)
        >>> p.ratio, round(p.ci_low, 3), round(p.ci_high, 3)
        (0.3, 0.108, 0.603)
        >>> Proportion.of(0, 0).ratio is None
        True
    """

    count: int
    n: int
    ratio: float | None
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def of(cls, count: int, n: int) -> Proportion:
        ci = wilson_interval(count, n)
        return cls(count, n, count / n if n else None, *(ci if ci else (None, None)))


def difference_interval(a: Proportion, b: Proportion) -> tuple[float, float] | None:
    """95% interval of the difference a.ratio - b.ratio of two independent proportions:
    Newcombe's hybrid score interval (method 10 of Newcombe, Statistics in Medicine 17:873,
    1998), from their Wilson intervals (l1, u1) and (l2, u2), with d = p1 - p2:

        (d - sqrt((p1 - l1)^2 + (u2 - p2)^2),  d + sqrt((u1 - p1)^2 + (p2 - l2)^2)).

    ``None`` when either is empty. Like Wilson's, it keeps its coverage near 0 and 1, where the
    Wald interval of a difference does not, and it never leaves [-1, 1]."""
    if a.n == 0 or b.n == 0:
        return None
    d = a.ratio - b.ratio
    low = d - math.sqrt((a.ratio - a.ci_low) ** 2 + (b.ci_high - b.ratio) ** 2)
    high = d + math.sqrt((a.ci_high - a.ratio) ** 2 + (b.ratio - b.ci_low) ** 2)
    return max(-1.0, low), min(1.0, high)


@dataclass(frozen=True)
class ClassAwareTransfer:
    """Class-aware transferability of one AE set from a source F1 to one target F2 (section
    3.1.1; the module docstring has the definitions): what :func:`class_aware_transfer` returns.

    Arguments:
        n_total (int): images attacked.
        n_source_correct (int): images with F1(x) = y.
        n (int): |D'_F1|, the images F1 gets right and its adversarial example fools.
        unfooled, fooled, different, same (Proportion): F2(x') = y, != y, not in {y, y1}, = y1,
            over D'_F1; unfooled + different + same = 1.
        target_class_hit (Proportion or None): F2(x') = t over D'_F1 (targeted attacks only).
        source_target_class_hit (Proportion or None): F1(x') = t over D'_F1 (targeted only).

    Shape:
        - every field is a Python number or a :class:`Proportion` (no tensors).

    Examples::

        >>> y = torch.tensor([0, 1, 2, 3])
        >>> r = class_aware_transfer(y, y, torch.tensor([1, 2, 3, 3]), torch.tensor([0, 2, 0, 3]))
        >>> r.n, r.unfooled.count, r.same.count, r.different.count
        (3, 1, 1, 1)
    """

    n_total: int  # images attacked
    n_source_correct: int  # F1(x) = y
    n: int  # |D'_F1|: also fooled F1
    unfooled: Proportion
    fooled: Proportion
    different: Proportion
    same: Proportion
    target_class_hit: Proportion | None = None  # F2 predicts the attack's target class
    source_target_class_hit: Proportion | None = None  # F1 does


def fooled_set(y: torch.Tensor, source_clean: torch.Tensor, source_adv: torch.Tensor) -> torch.Tensor:
    """Boolean mask of D'_F1 (eq. 1): F1 right on x and wrong on x'."""
    return (source_clean == y) & (source_adv != y)


def _labels(y, source_clean, source_adv, target_adv, target_classes=None) -> tuple:
    """The inputs of :func:`class_aware_transfer` checked (ValueError naming the argument) and
    as int64 on y's device: four (N,) label tensors (target_classes None when not given) and
    target_adv as (M, N)."""
    y = as_labels(y, None, name="y")
    n, device = len(y), y.device
    source_clean = as_labels(source_clean, n, name="source_clean").to(device)
    source_adv = as_labels(source_adv, n, name="source_adv").to(device)
    target_adv = as_label_rows(target_adv, n, "target_adv").to(device)
    if target_classes is not None:
        target_classes = as_labels(target_classes, n, name="target_classes").to(device)
    return y, source_clean, source_adv, target_adv, target_classes


def class_aware_counts(y, source_clean, source_adv, target_adv) -> torch.Tensor:
    """(M, 3) int64 counts of un-fooled, different, same over D'_F1 for M targets' predictions
    ``target_adv``; the rows sum to |D'_F1|. Every input is integer labels (any integer dtype);
    ValueError naming the argument otherwise (logits are refused: pass their argmax).

    Arguments:
        y (Tensor): the true labels.
        source_clean (Tensor): F1's labels of the clean images, F1(x).
        source_adv (Tensor): F1's labels of the adversarial examples, F1(x').
        target_adv (Tensor): each target's labels of the adversarial examples, F2(x').

    Shape:
        - y, source_clean, source_adv: (N,).
        - target_adv: (M, N), or (N,) for M = 1.
        - output: (M, 3) int64 on y's device: un-fooled, different, same.

    Examples::

        >>> y = torch.tensor([0, 1, 2, 3])
        >>> class_aware_counts(y, y, torch.tensor([1, 2, 3, 3]), torch.tensor([[0, 2, 0, 3], [1, 2, 3, 3]]))
        tensor([[1, 1, 1],
                [0, 0, 3]])
    """
    y, source_clean, source_adv, target_adv, _ = _labels(y, source_clean, source_adv, target_adv)
    mask = fooled_set(y, source_clean, source_adv)
    t, y_, y1 = target_adv[:, mask], y[mask], source_adv[mask]
    unfooled = (t == y_).sum(1)
    same = (t == y1).sum(1)
    return torch.stack([unfooled, mask.sum() - unfooled - same, same], 1)


def class_aware_transfer(
    y: torch.Tensor,
    source_clean: torch.Tensor,
    source_adv: torch.Tensor,
    target_adv: torch.Tensor,
    target_classes: torch.Tensor | None = None,
) -> list[ClassAwareTransfer] | ClassAwareTransfer:
    """Class-aware transferability (section 3.1.1) for one target (``target_adv`` of shape (N,))
    or several ((M, N): one result per row), with 95% Wilson intervals. Every input holds
    predicted or true labels, integers of any integer dtype; ValueError naming the argument
    otherwise (logits are refused: pass their argmax). An empty D'_F1 gives n = 0 and every ratio
    None.

    Arguments:
        y (Tensor): the true labels.
        source_clean (Tensor): F1(x), the source's labels of the clean images.
        source_adv (Tensor): F1(x'), the source's labels of the adversarial examples.
        target_adv (Tensor): F2(x'), each target's labels of the adversarial examples.
        target_classes (Tensor, optional): the attack's target classes t, for the target-class
            hit rates. Default: None (a non-targeted attack).

    Shape:
        - y, source_clean, source_adv, target_classes: (N,).
        - target_adv: (N,) (one ClassAwareTransfer returned) or (M, N) (a list of M).

    Examples::

        >>> y = torch.tensor([0, 1, 2, 3])
        >>> r = class_aware_transfer(y, y, torch.tensor([1, 2, 3, 3]), torch.tensor([0, 2, 0, 3]))
        >>> r.n, r.fooled.ratio, r.same.ratio
        (3, 0.6666666666666666, 0.3333333333333333)
    """
    single = isinstance(target_adv, torch.Tensor) and target_adv.dim() == 1
    y, source_clean, source_adv, target_adv, target_classes = _labels(
        y, source_clean, source_adv, target_adv, target_classes
    )
    mask = fooled_set(y, source_clean, source_adv)
    n = int(mask.sum())
    counts = class_aware_counts(y, source_clean, source_adv, target_adv).tolist()
    source_target_class_hit = None
    if target_classes is not None:
        t = target_classes[mask]
        source_target_class_hit = Proportion.of(int((source_adv[mask] == t).sum()), n)
        hits = (target_adv[:, mask] == t).sum(1).tolist()
    results = []
    for i, (unfooled, different, same) in enumerate(counts):
        results.append(
            ClassAwareTransfer(
                n_total=len(y),
                n_source_correct=int((source_clean == y).sum()),
                n=n,
                unfooled=Proportion.of(unfooled, n),
                fooled=Proportion.of(different + same, n),
                different=Proportion.of(different, n),
                same=Proportion.of(same, n),
                target_class_hit=Proportion.of(hits[i], n) if target_classes is not None else None,
                source_target_class_hit=source_target_class_hit,
            )
        )
    return results[0] if single else results


@dataclass(frozen=True)
class PairDistance:
    """Dist(F1, F2) (eq. 4) over N images, with a 95% interval of that mean (normal
    approximation; None below two images) and how many images had a censored distance (the gap
    then a lower bound, see ``boundary``); beside it, the diagnostic mean over the images neither
    model leaves censored, with its own interval (None when there are none). What
    :func:`classaware.boundary.model_distance` returns.

    Arguments:
        dist (float): the paper's Dist, mean |d(F1, x) - d(F2, x)|, l2 pixel units of [0, 1] images.
        ci_low, ci_high (float or None): its 95% interval (floored at 0).
        n_images (int): N, the images averaged over.
        n_censored (int): images where either distance is censored (its gap a lower bound).
        dist_flipped (float or None): the same mean over the images neither model leaves censored.
        flipped_ci_low, flipped_ci_high (float or None): its 95% interval.
        n_flipped (int): how many such images.

    Shape:
        - every field is a Python number (no tensors).

    Examples::

        >>> d = PairDistance(0.5, 0.4, 0.6, 100, 2, 0.45, 0.35, 0.55, 98)
        >>> d.n_images - d.n_censored == d.n_flipped
        True
    """

    dist: float
    ci_low: float | None
    ci_high: float | None
    n_images: int
    n_censored: int
    dist_flipped: float | None
    flipped_ci_low: float | None
    flipped_ci_high: float | None
    n_flipped: int
