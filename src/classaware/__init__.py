"""Class-aware transferability of adversarial examples (Waseda et al., ICASSP 2023), for any
PyTorch classifiers of images in [0, 1]: the attacks (eqs. 2, 3, 5), the class-aware ratios
(section 3.1.1), Dist(F1, F2) (eq. 4) and decision planes (Fig. 4), and :func:`evaluate`: the class-aware view of any transfer attack
between any models (:mod:`classaware.evaluation`). What the functions accept
is in :mod:`classaware.contracts`; README.md's "As a library" has a complete example.
"""

from importlib.metadata import PackageNotFoundError, version

from .attacks import fgm, n_targeted_pgd, pgd, random_target_classes
from .boundary import (
    BoundarySearch,
    DecisionPlane,
    SearchSettings,
    boundary_distance,
    decision_plane,
    gradient_direction,
    model_distance,
    search_boundaries,
    search_boundary,
)
from .contracts import eval_mode
from .evaluation.api import evaluate
from .evaluation.result import Evaluation
from .metrics import ClassAwareTransfer, PairDistance, Proportion, class_aware_counts, class_aware_transfer
from .models import predict

try:
    __version__ = version("classaware")
except PackageNotFoundError:  # run from a source tree that is not installed (PYTHONPATH=src)
    __version__ = "0+unknown"

__all__ = [
    "BoundarySearch",
    "ClassAwareTransfer",
    "DecisionPlane",
    "Evaluation",
    "PairDistance",
    "Proportion",
    "SearchSettings",
    "__version__",
    "boundary_distance",
    "class_aware_counts",
    "class_aware_transfer",
    "decision_plane",
    "eval_mode",
    "evaluate",
    "fgm",
    "gradient_direction",
    "model_distance",
    "n_targeted_pgd",
    "pgd",
    "predict",
    "random_target_classes",
    "search_boundaries",
    "search_boundary",
]
