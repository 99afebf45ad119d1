"""Decision-boundary distance (section 3.1.3, eq. 4) and decision planes (Fig. 4).

d(f, x) = min { r >= 0 : f(x + r v) != y },  v = grad_x L(x, y; F1) / ||grad_x L(x, y; F1)||_2

is found per image by a scan at ``step`` intervals up to ``max_radius`` (the settings of a
search are one :class:`SearchSettings`: its defaults and checks are the only ones, for the
library and the ``distance`` stage alike) (bracketing the first
flip in (r - step, r]), then bisection until the bracket is at most ``tol`` wide; d is the
bracket's upper end, so it over-estimates the true distance by at most ``tol``. Flips inside a
region narrower than ``step`` can be missed. Points are not clipped to [0, 1]: d measures the
model's decision boundary along a line, as Tramer et al. do.

Some images never flip within ``max_radius`` (along F1's gradient, a dissimilar F2 may stay
in class y far out). Eq. 4 averages over one set of N images for every pair, and those images
carry the largest gaps, so none is dropped. One censoring rule holds for every model compared
along the same directions (:func:`search_boundaries`): while more than ``max_censored`` (1%) of
some model's images are still unflipped, every model's unflipped images are searched further,
to twice the radius, at twice the step and tolerance (the same relative resolution, and the same
cost per doubling), at most ``doublings`` times, and never beyond the l2 diameter of the image
box [0, 1]^D, sqrt(D) (55.4 for CIFAR-10's 3 x 32 x 32): no image lies further than that from
x, so a label out there is the model's extrapolation, not a perturbation of any image, and the
last step stops at the diameter. Every model's search thus ends at the same radius R, and an
image a model still leaves unflipped is right-censored there: its d is set to R, a lower bound.
So

Dist(F1, F2) = 1/N sum_i |d(F1, x_i) - d(F2, x_i)|  (eq. 4)

over every image correctly classified by every compared model, where every gap is exact (within
``tol``) or, when one or both of its distances is censored at the common R, a lower bound of the
true gap (one censored: |R - d| <= |d_true - d|, since d_true >= R >= d; both: 0). Dist is then a
lower bound too, and each pair reports how many of its images had a censored distance and, beside
the paper's mean, the mean over the images neither model leaves censored
(``PairDistance.dist_flipped``: a different subset for each pair, biased towards small gaps, which
is why it is a diagnostic and not Dist).

The decision plane of image x is the grid of each model's labels at x + u d1 + v d2, with d1
the source's non-targeted gradient direction, d2 a random direction orthogonal to d1, both of
l2 norm ``unit`` (0.02 in the paper), and (u, v) integers in [-span, span].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .attacks import loss_gradient, unit_direction
from .batching import map_batches
from .contracts import as_labels, check_images, eval_mode, logits, model_device, num_classes, work_dtype
from .metrics import Z_95, PairDistance
from .models import predict
from .progress import progress
from .search import DEFAULT_SEARCH, SearchSettings

UNFOOLED, DIFFERENT, SAME, SOURCE_RIGHT = 0, 1, 2, 3
REGION_NAMES = ("un-fooled", "different mistake", "same mistake", "F1 not fooled")


def _labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Images and labels checked against the library's contract (:mod:`classaware.contracts`); y as int64."""
    check_images(x)
    return as_labels(y, len(x), num_classes(model, x) if len(x) else None)


def gradient_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """v = grad_x L(x, y; f) / ||.||_2 per image, shaped like x, on x's device, in the work dtype
    (float32, or x's or the model's dtype when wider; :func:`classaware.contracts.work_dtype`)."""
    y = _labels(model, x, y)
    dtype = work_dtype([model], x)
    if len(x) == 0:
        return torch.zeros_like(x, dtype=dtype)
    device = model_device(model, x.device)
    with eval_mode(model):
        g = loss_gradient([model], x.to(device, dtype), [y.to(device)])
    return unit_direction(g).to(x.device)


@torch.no_grad()
def _labels_along(model: nn.Module, x: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return logits(model, x + r.view(-1, 1, 1, 1) * v).argmax(1)


def _check_search(max_radius: float, step: float, tol: float, min_radius: float = 0.0) -> None:
    if not (0 < tol <= step <= max_radius - min_radius and min_radius >= 0 and math.isfinite(max_radius)):
        raise ValueError(
            f"need 0 < tol <= step <= max_radius - min_radius, min_radius >= 0 and a finite max_radius, "
            f"got tol={tol}, step={step}, min_radius={min_radius}, max_radius={max_radius}"
        )


def _check_directions(v: torch.Tensor, x: torch.Tensor) -> None:
    if not (isinstance(v, torch.Tensor) and v.is_floating_point() and v.shape == x.shape):
        got = f"{v.dtype} {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"v must be floating-point directions shaped like x {tuple(x.shape)}, got {got}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("v must be finite directions; it holds inf or nan")


@torch.no_grad()
def boundary_distance(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    max_radius: float = 10.0,
    step: float = 0.02,
    tol: float = 1e-3,
    min_radius: float = 0.0,
) -> torch.Tensor:
    """d(f, x) along unit directions ``v`` for a batch (see module docstring), scanning
    (min_radius, max_radius]: inf where f never leaves class y there, 0 where f(x) != y
    already (checked only from min_radius = 0; a larger one says the images are known not to
    flip below it). Radii come in the work dtype (float32, or x's or the model's dtype when
    wider), on x's device; ValueError for bad arguments (before any compute)."""
    _check_search(max_radius, step, tol, min_radius)
    y = _labels(model, x, y)
    _check_directions(v, x)
    dtype = work_dtype([model], x)
    if len(x) == 0:
        return torch.empty(0, dtype=dtype, device=x.device)
    device = model_device(model, x.device)
    x, y, v = x.to(device, dtype), y.to(device), v.to(device, dtype)
    with eval_mode(model):
        hi = torch.full((len(y),), math.inf, device=device, dtype=dtype)
        if min_radius == 0:
            hi[_labels_along(model, x, v, torch.zeros(len(y), device=device, dtype=dtype)) != y] = 0.0
        n_steps = math.ceil((max_radius - min_radius) / step - 1e-9)
        # ends early when every image has flipped: its last progress line says at which step
        for k in progress(range(1, n_steps + 1), f"boundary scan to radius {max_radius:g}", unit="step"):
            todo = torch.isinf(hi).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            r = min(min_radius + k * step, max_radius)
            radii = torch.full((len(todo),), r, device=device, dtype=dtype)
            flipped = _labels_along(model, x[todo], v[todo], radii) != y[todo]
            hi[todo[flipped]] = r
        # bisection on (hi - step, hi] for the images that flipped at a positive radius
        idx = (torch.isfinite(hi) & (hi > 0)).nonzero().squeeze(1)
        lo = (hi[idx] - step).clamp_min(min_radius)
        up = hi[idx]
        while len(idx) and float((up - lo).max()) > tol:
            mid = (lo + up) / 2
            if not (((up - lo) > tol) & (mid > lo) & (mid < up)).any():
                break  # float resolution reached: a tol below it cannot be met, stop rather than loop forever
            flipped = _labels_along(model, x[idx], v[idx], mid) != y[idx]
            up = torch.where(flipped, mid, up)
            lo = torch.where(flipped, lo, mid)
        hi[idx] = up
    return hi.to(x.device)


@dataclass(frozen=True)
class BoundarySearch:
    """d(f, x) for every image along its direction; where ``censored``, the last radius searched."""

    d: torch.Tensor
    censored: torch.Tensor  # bool
    radius: float  # the last radius searched


def image_box_diameter(x: torch.Tensor) -> float:
    """The l2 diameter of the box [0, 1]^D the images of ``x`` (N, C, H, W) live in: sqrt(D)."""
    return math.sqrt(x[0].numel()) if len(x) else math.inf


def search_boundaries(
    models: Mapping[str, nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    search: SearchSettings = DEFAULT_SEARCH,
    batch_size: int = 500,
    desc: str = "along v",
) -> dict[str, BoundarySearch]:
    """d(f, x) of every model of ``models`` ({name: model}) for every image along its direction,
    under one censoring rule for all (see the module docstring): each model is scanned to
    ``search.max_radius``; then, while more than ``search.max_censored`` of some model's images
    are unflipped, every model's unflipped images are searched to twice the radius (at most
    ``search.doublings`` times, never beyond the image box's diameter), so that every search ends
    at the same radius and every gap between two of them is exact or a lower bound.

    Shape: x (N, C, H, W) floating images in [0, 1]; y (N,) labels; v like x (unit directions).
    Returns {name: BoundarySearch} with d (N,) in the work dtype on x's device. ValueError for
    bad arguments or inputs (before any compute); an empty batch gives empty searches."""
    if not isinstance(search, SearchSettings):
        raise ValueError(f"search must be a SearchSettings, got {type(search).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(models) == 0:
        raise ValueError("models must hold at least one model to search")
    labels = {name: _labels(model, x, y) for name, model in models.items()}
    _check_directions(v, x)
    radius, step, tol = search.max_radius, search.step, search.tol
    if len(x) == 0:
        return {
            name: BoundarySearch(
                torch.empty(0, dtype=work_dtype([model], x), device=x.device),
                torch.zeros(0, dtype=torch.bool, device=x.device),
                radius,
            )
            for name, model in models.items()
        }
    d = {
        name: map_batches(
            partial(boundary_distance, model, max_radius=radius, step=step, tol=tol),
            x,
            labels[name],
            v,
            batch_size=batch_size,
            desc=f"d({name}, x) {desc}",
        )
        for name, model in models.items()
    }
    diameter = image_box_diameter(x)
    for _ in range(search.doublings):
        worst = max(float(torch.isinf(di).float().mean()) for di in d.values())
        if worst <= search.max_censored or radius >= diameter:
            break
        further = min(2 * radius, diameter)
        step, tol = step * further / radius, tol * further / radius
        for name, model in models.items():
            todo = torch.isinf(d[name]).nonzero().squeeze(1)
            if len(todo) == 0:
                continue
            scan = partial(boundary_distance, model, max_radius=further, step=step, tol=tol, min_radius=radius)
            d[name][todo] = map_batches(
                scan, x[todo], labels[name][todo], v[todo], batch_size=batch_size,
                desc=f"d({name}, x) {desc} beyond {radius:g}",
            )  # fmt: skip
        radius = further
    out = {}
    for name, di in d.items():
        censored = torch.isinf(di)
        out[name] = BoundarySearch(torch.where(censored, torch.full_like(di, radius), di), censored, radius)
    return out


def search_boundary(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    search: SearchSettings = DEFAULT_SEARCH,
    batch_size: int = 500,
    desc: str = "along v",
) -> BoundarySearch:
    """d(f, x) of one model for every image: :func:`search_boundaries` with that model alone
    (its censoring rule then concerns this model's images only). To compare models, search them
    together, so that their searches end at the same radius."""
    return search_boundaries({"f": model}, x, y, v, search, batch_size, desc)["f"]


def distance_from_distances(source: BoundarySearch, target: BoundarySearch) -> PairDistance:
    """Dist(F1, F2) (eq. 4) over every image, from the two searches along F1's directions, with
    a 95% interval (mean +- 1.96 sd / sqrt(N)); beside it, the same mean over the images neither
    model leaves censored, with its own interval. ValueError when the searches ended at other
    radii (a censored gap would then bound nothing: search the models together with
    :func:`search_boundaries`) or hold no image."""
    if source.radius != target.radius:
        raise ValueError(
            f"the searches ended at radii {source.radius:g} and {target.radius:g}: a censored gap is a lower bound "
            "only when both models were searched to the same radius (search them together: search_boundaries)"
        )
    gaps = (source.d - target.d).abs().double()
    if len(gaps) == 0:
        raise ValueError("Dist needs at least one image")
    flipped = ~source.censored & ~target.censored
    paper, only_flipped = _mean_interval(gaps), _mean_interval(gaps[flipped])
    return PairDistance(
        dist=paper[0],
        ci_low=paper[1],
        ci_high=paper[2],
        n_images=len(gaps),
        n_censored=int((source.censored | target.censored).sum()),
        dist_flipped=only_flipped[0],
        flipped_ci_low=only_flipped[1],
        flipped_ci_high=only_flipped[2],
        n_flipped=int(flipped.sum()),
    )


def _mean_interval(gaps: torch.Tensor) -> tuple[float | None, float | None, float | None]:
    """(mean, its 95% interval mean +- 1.96 sd / sqrt(n), floored at 0 since a distance is not
    negative); (None, None, None) for no gaps; no interval for one."""
    n = len(gaps)
    if n == 0:
        return None, None, None
    mean = gaps.mean().item()
    if n == 1:
        return mean, None, None
    half = Z_95 * gaps.std().item() / math.sqrt(n)
    return mean, max(0.0, mean - half), mean + half


def model_distance(
    f1: nn.Module,
    f2: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    search: SearchSettings = DEFAULT_SEARCH,
    batch_size: int = 500,
) -> PairDistance:
    """Dist(F1, F2) (eq. 4) over the images of ``x`` that both models classify correctly, along
    F1's gradient directions, both models' d searched together by :func:`search_boundaries`.
    A study comparing many models should restrict ``x`` to images every model gets right, as the
    paper does. ValueError for bad inputs or settings, and when no image of ``x`` is right for
    both models."""
    if not isinstance(search, SearchSettings):
        raise ValueError(f"search must be a SearchSettings, got {type(search).__name__}")
    y = _labels(f2, x, _labels(f1, x, y)).to(x.device)
    keep = (predict(f1, x) == y) & (predict(f2, x) == y)
    if not keep.any():
        raise ValueError(f"Dist needs at least one image both models classify correctly; none of the {len(x)} of x is")
    x, y = x[keep], y[keep]
    v = gradient_direction(f1, x, y)
    searches = search_boundaries({"F1": f1, "F2": f2}, x, y, v, search, batch_size)
    return distance_from_distances(searches["F1"], searches["F2"])


@dataclass(frozen=True)
class DecisionPlane:
    """Labels of each model on the grid x + u*d1 + v*d2 (u along columns, v along rows)."""

    coords: torch.Tensor  # (S,) integer grid coordinates, in units of ``unit``
    labels: torch.Tensor  # (M, S, S) predicted labels; [m, i, j] at u = coords[j], v = coords[i]
    true_label: int
    unit: float


@torch.no_grad()
def _plane_labels(models, x, d1, d2, coords, batch_size):
    u, v = torch.meshgrid(coords, coords, indexing="xy")  # u varies along columns
    points = x + u.reshape(-1, 1, 1, 1) * d1 + v.reshape(-1, 1, 1, 1) * d2
    out = []
    for m in models:
        labels = [logits(m, points[i : i + batch_size]).argmax(1).cpu() for i in range(0, len(points), batch_size)]
        out.append(torch.cat(labels).view(len(coords), len(coords)))
    return torch.stack(out)


def decision_plane(
    source: nn.Module,
    models: list[nn.Module],
    x: torch.Tensor,
    y: int,
    span: int = 50,
    unit: float = 0.02,
    seed: int = 0,
    batch_size: int = 1024,
) -> DecisionPlane:
    """The decision plane of one image ``x`` (C, H, W) with true label ``y`` (an int) (Fig. 4).
    ValueError for bad arguments (before any compute)."""
    if span < 1 or not (unit > 0 and math.isfinite(unit)) or batch_size < 1:
        raise ValueError(
            f"need span >= 1, a finite unit > 0 and batch_size >= 1, got span={span}, unit={unit}, batch_size={batch_size}"
        )
    if len(models) == 0:
        raise ValueError("models must hold at least one model whose labels to map")
    check_images(x, dims=3)
    if isinstance(y, torch.Tensor) and y.dim() == 0 and not (y.is_floating_point() or y.dtype == torch.bool):
        y = int(y)
    if not isinstance(y, int) or isinstance(y, bool):
        raise ValueError(f"y must be the image's class label as an int, got {y!r}")
    x = x.detach().cpu()
    d1 = gradient_direction(source, x[None], torch.tensor([y]))[0].cpu()
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(x.shape, generator=g)
    r = r - (r * d1).sum() * d1  # Gram-Schmidt: orthogonal to d1
    d2 = r / r.norm()
    coords = torch.arange(-span, span + 1, dtype=torch.float32)
    with eval_mode(*models):
        labels = _plane_labels(models, x, d1 * unit, d2 * unit, coords, batch_size)
    return DecisionPlane(coords, labels, int(y), unit)


def transfer_regions(source_labels: torch.Tensor, target_labels: torch.Tensor, y: int) -> torch.Tensor:
    """Per grid point, F2's class-aware case relative to F1 (Fig. 4, second row): SOURCE_RIGHT
    where F1 still predicts y, else UNFOOLED (F2 = y), SAME (F2 = F1's label) or DIFFERENT."""
    regions = torch.full_like(source_labels, DIFFERENT)
    regions[target_labels == y] = UNFOOLED
    regions[target_labels == source_labels] = SAME
    regions[source_labels == y] = SOURCE_RIGHT
    return regions
