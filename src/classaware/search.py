"""The settings of Dist's boundary search (section 3.1.3): one home for their defaults and
checks, used by the library (:func:`classaware.boundary.search_boundary`), the ``distance``
stage's options (flattened to ``--max_radius``, ``--step`` ...) and its results record alike.
It is a module of its own, below both, so that the records every stage imports do not make every
stage depend on the search's code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .config import Options, help_field


@dataclass(frozen=True)
class SearchSettings(Options):
    """How d(f, x) is searched (section 3.1.3; :mod:`classaware.boundary` has the rule). Validated on
    construction: ValueError names the setting that is out of range.

    Arguments:
        max_radius (float): l2 radius (pixel units of [0, 1] images) searched first. Default: 10.0.
        step (float): scan step within ``max_radius``. Default: 0.02 (Fig. 4's unit).
        tol (float): bisection tolerance: d over-estimates by at most ``tol`` within
            ``max_radius``. Default: 1e-3.
        max_censored (float): search further while more than this fraction of the images is
            unflipped. Default: 0.01.
        doublings (int): at most this many doublings of the radius. Default: 3.

    Shape:
        - every field is a Python number (ints are Python ints, numbers Python floats or ints:
          a bool or a tensor is refused).

    Examples::

        >>> SearchSettings(max_radius=5.0, doublings=0).step
        0.02
    """

    WHAT: ClassVar[str] = "search"
    max_radius: float = help_field(10.0, "l2 radius searched first for every image", gt=0)
    step: float = help_field(0.02, "scan step of the bracketing search (within max_radius)", gt=0)
    tol: float = help_field(1e-3, "bisection tolerance: d is over-estimated by at most tol (within max_radius)", gt=0)
    max_censored: float = help_field(
        0.01, "search further while more than this fraction of images is unflipped", ge=0, le=1
    )
    doublings: int = help_field(3, "at most this many doublings of the search radius", ge=0)

    def check(self) -> list[str]:
        if not (self.tol <= self.step <= self.max_radius):
            return [f"need tol <= step <= max_radius, got {self.tol}, {self.step}, {self.max_radius}"]
        return []


DEFAULT_SEARCH = SearchSettings()  # the library's default (frozen: one instance serves every call)
