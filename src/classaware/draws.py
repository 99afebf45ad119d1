"""The one door of a replicate's randomness.

Replicate i of the pipeline (``classaware replicate``; ``seed_shift: i`` in params.yaml) must
differ from replicate 0 in every random draw of every stage, and in nothing else. So a stage
draws through its options' :class:`Draws` alone (``cfg.draws``; the ``--seed_shift`` option):
every seed it hands the library (initial weights, data order, target classes, the direction of
a decision plane), every generator, and every choice of images. ``tests/test_draws.py`` reads
every stage module and fails when one draws past it: a random primitive called directly, or a
seed option read anywhere but as the argument of a ``cfg.draws`` method.

Replicate 0 keeps every seed and selection as given. Replicate i > 0 replaces each seed by one
drawn from (seed, i) with NumPy's ``SeedSequence``, so replicates are independent of each other
while equal seeds stay equal (w:same models still share their initial weights), and takes the
images of each class in an order shuffled by i (:func:`classaware.data.balanced_subset`), the
same order in every stage, so that the stages of one replicate agree on which images they use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .config import Options, help_field
from .data import balanced_split, balanced_subset


def shifted(seed: int, shift: int) -> int:
    """The seed of replicate ``shift``: ``seed`` itself for replicate 0, else a seed drawn from
    (seed, shift) by NumPy's SeedSequence."""
    if shift == 0:
        return seed
    return int(np.random.SeedSequence([seed, shift]).generate_state(1)[0])


@dataclass(frozen=True)
class Draws(Options):
    """Every random draw of one stage, for replicate ``seed_shift`` (see the module docstring).

    Arguments:
        seed_shift (int): the replicate index, >= 0. Default: 0 (every seed as given).

    Examples::

        >>> Draws().seed(7), Draws(seed_shift=1).seed(7) != 7
        (7, True)
    """

    WHAT: ClassVar[str] = "replicate"
    seed_shift: int = help_field(
        0, "replicate index: shifts every seed and image selection of the stage (0: as given)", ge=0
    )

    def seed(self, base: int) -> int:
        """The replicate's seed for option value ``base`` (an int >= 0)."""
        return shifted(base, self.seed_shift)

    def generator(self, base: int) -> torch.Generator:
        """A CPU generator seeded with :meth:`seed` of ``base``."""
        return torch.Generator().manual_seed(self.seed(base))

    def subset(self, labels: torch.Tensor, n: int) -> torch.Tensor:
        """Sorted indices of a class-balanced subset of ``n`` of the images labelled ``labels``
        (n <= 0: all), as :func:`classaware.data.balanced_subset` takes them for this replicate."""
        return balanced_subset(labels, n, self.seed_shift)

    def split(self, labels: torch.Tensor, n_first: int, n_second: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two disjoint class-balanced sets of sorted indices, as
        :func:`classaware.data.balanced_split` takes them for this replicate."""
        return balanced_split(labels, n_first, n_second, self.seed_shift)
