"""Two attacks on the same images, compared per target as paired binary outcomes.

Per image i, a_i = 1 when attack A's x' transfers to F2 (untargeted: F2(x') != y; targeted:
F2(x') = t) and b_i the same for attack B. Of the n images, ``both`` succeed for both,
``only_a`` for A alone, ``only_b`` for B alone, ``neither`` for neither.

* McNemar's exact test of "A and B succeed equally often": under the null, only_a ~
  Binomial(only_a + only_b, 1/2), two-sided p = min(1, 2 P[X <= min(only_a, only_b)]).
* The difference p_A - p_B = (only_a - only_b) / n with Newcombe's interval for paired
  proportions (method 10 of Newcombe, Statistics in Medicine 17:2635, 1998): from the Wilson
  intervals (l1, u1) of p_A and (l2, u2) of p_B and the phi coefficient of the 2 x 2 table
  phi = (both neither - only_a only_b) / sqrt((both+only_a)(only_b+neither)(both+only_b)(only_a+neither))
  (0 when a margin is empty),

      L = d - sqrt((p_A - l1)^2 - 2 phi (p_A - l1)(u2 - p_B) + (u2 - p_B)^2)
      U = d + sqrt((u1 - p_A)^2 - 2 phi (u1 - p_A)(p_B - l2) + (p_B - l2)^2)

  With phi = 0 it is the independent-samples interval :func:`classaware.metrics.difference_interval`.

Two populations are compared: every image (what the tools' success rates count), and the images
in D'_F1 of both attacks (the paper's denominator, where F1 is fooled by both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..metrics import Proportion, fooled_set
from .samples import AdversarialLabels, Samples


@dataclass(frozen=True)
class PairedComparison:
    """Attack A against attack B on one target over one population of images (see the module docstring)."""

    target: str
    attack_a: str
    attack_b: str
    population: str
    n: int
    both: int
    only_a: int
    only_b: int
    neither: int
    rate_a: float | None
    rate_b: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    mcnemar_p: float | None


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: min(1, 2 P[X <= min(b, c)]), X ~ Binomial(b + c, 1/2); 1 when b + c = 0."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_interval(both: int, only_a: int, only_b: int, neither: int) -> tuple[float, float] | None:
    """Newcombe's method-10 95% interval of p_A - p_B for paired data (module docstring); None for n = 0."""
    n = both + only_a + only_b + neither
    if n == 0:
        return None
    pa, pb = Proportion.of(both + only_a, n), Proportion.of(both + only_b, n)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    d = pa.ratio - pb.ratio
    da, ua = pa.ratio - pa.ci_low, pa.ci_high - pa.ratio
    db, ub = pb.ratio - pb.ci_low, pb.ci_high - pb.ratio
    low = d - math.sqrt(max(0.0, da**2 - 2 * phi * da * ub + ub**2))
    high = d + math.sqrt(max(0.0, ua**2 - 2 * phi * ua * db + db**2))
    return max(-1.0, low), min(1.0, high)


def success(s: AdversarialLabels, y: torch.Tensor, j: int) -> torch.Tensor:
    """Per image: does the set transfer to target j (untargeted F2(x') != y, targeted F2(x') = t)."""
    return s.target_adv[j] == s.t if s.t is not None else s.target_adv[j] != y


def compare_sets(
    samples_a: Samples, a: AdversarialLabels, samples_b: Samples, b: AdversarialLabels
) -> list[PairedComparison]:
    """A against B on every target they share, over every image and over D'_F1 of both; ValueError
    unless both evaluations hold the same images (same labels, same order)."""
    if not torch.equal(samples_a.y, samples_b.y):
        raise ValueError("a paired comparison needs the same images in the same order in both evaluations")
    out = []
    y = samples_a.y
    both_fooled = fooled_set(y, samples_a.source_clean, a.source_adv) & fooled_set(
        y, samples_b.source_clean, b.source_adv
    )
    for ja, name in enumerate(samples_a.targets):
        if name not in samples_b.targets:
            continue
        jb = samples_b.targets.index(name)
        sa, sb = success(a, y, ja), success(b, y, jb)
        for population, keep in (("all images", torch.ones_like(sa)), ("D'_F1 of both", both_fooled)):
            xa, xb = sa[keep], sb[keep]
            cells = [int((xa & xb).sum()), int((xa & ~xb).sum()), int((~xa & xb).sum()), int((~xa & ~xb).sum())]
            n = sum(cells)
            ci = paired_interval(*cells)
            out.append(PairedComparison(
                name, a.key.label(), b.key.label(), population, n, *cells,
                (cells[0] + cells[1]) / n if n else None, (cells[0] + cells[2]) / n if n else None,
                (cells[1] - cells[2]) / n if n else None, *(ci or (None, None)), mcnemar_exact(cells[1], cells[2]) if n else None,
            ))  # fmt: skip
    return out
