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
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .attacks import unit_direction
from .batching import map_batches
from .contracts import (
    as_int,
    as_labels,
    as_model_list,
    as_model_mapping,
    as_number,
    check_images,
    check_model,
    eval_mode,
    logits,
    loss_gradient,
    model_device,
    num_classes,
    work_dtype,
)
from .metrics import Z_95, PairDistance
from .models import _predict
from .progress import progress
from .search import DEFAULT_SEARCH, SearchSettings

UNFOOLED, DIFFERENT, SAME, SOURCE_RIGHT = 0, 1, 2, 3
REGION_NAMES = ("un-fooled", "different mistake", "same mistake", "F1 not fooled")


def _labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Images, the model on one of them (the probe) and labels checked against the library's
    contract (:mod:`classaware.contracts`); y as int64."""
    check_images(x)
    return as_labels(y, len(x), num_classes(model, x) if len(x) else None)


def gradient_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """v = grad_x L(x, y; f) / ||.||_2 per image: the direction along which d(f, x) is measured
    (eq. 4, with f = F1). An image whose gradient is exactly zero gets v = 0.

    Works on the batch it is given (pass batches yourself for large sets: the ``distance`` stage
    uses :func:`classaware.batching.map_batches`); an image's direction can differ from the one it
    gets in another batch in the last bits, as the model's kernels may.

    Arguments:
        model (nn.Module): a classifier of images in [0, 1] returning (N, num_classes) logits.
        x (Tensor): the images; never written to.
        y (Tensor): their labels (the loss is CE(f(x), y)).

    Shape:
        - x: (N, C, H, W) floating images in [0, 1].
        - y: (N,) integer labels.
        - output: like x, of l2 norm 1 per image, on x's device, in the work dtype (float32, or
          x's or the model's dtype when wider; :func:`classaware.contracts.work_dtype`).

    Examples::

        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
        >>> v = gradient_direction(f, x, y)
        >>> v.shape, v.flatten(1).norm(dim=1).round(decimals=4).tolist()
        (torch.Size([4, 3, 8, 8]), [1.0, 1.0, 1.0, 1.0])
    """
    check_model(model)
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
    return logits(model, x + r.view(-1, 1, 1, 1) * v, owned=True).argmax(1)


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
    """d(f, x) along unit directions ``v`` for a batch (the module docstring has the scan and
    bisection), scanning (min_radius, max_radius]: inf where f never leaves class y there, 0 where
    f(x) != y already (checked only from min_radius = 0; a larger one says the images are known
    not to flip below it). Points x + r v are not clipped to [0, 1]. Works on the batch it is
    given; :func:`search_boundaries` batches and applies the censoring rule. ValueError for bad
    arguments (before any compute).

    Arguments:
        model (nn.Module): a classifier of images in [0, 1] returning (N, num_classes) logits.
        x (Tensor): the images; never written to.
        y (Tensor): their labels (a flip is f(x + r v) != y).
        v (Tensor): one direction per image (unit l2 norm for d to be a distance).
        max_radius (float): the largest radius scanned, l2, in pixel units of [0, 1] images.
            Default: 10.0.
        step (float): scan step, same units. Default: 0.02.
        tol (float): bisection tolerance: d over-estimates the first flip by at most ``tol``.
            Default: 1e-3.
        min_radius (float): the scan starts above this radius. Default: 0.0.

    Shape:
        - x: (N, C, H, W) floating images in [0, 1].
        - y: (N,) integer labels.
        - v: like x, floating and finite.
        - output: (N,) radii in the work dtype on x's device (inf: no flip up to max_radius).

    Examples::

        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x = torch.rand(4, 3, 8, 8)
        >>> y = predict(f, x)
        >>> v = gradient_direction(f, x, y)
        >>> d = boundary_distance(f, x, y, v, max_radius=5.0, step=0.05, tol=1e-3)
        >>> d.shape, bool(((d > 0) & (d <= 5.0) | d.isinf()).all())
        (torch.Size([4]), True)
    """
    check_model(model)
    max_radius, step = as_number(max_radius, "max_radius"), as_number(step, "step")
    tol, min_radius = as_number(tol, "tol"), as_number(min_radius, "min_radius")
    _check_search(max_radius, step, tol, min_radius)
    y = _labels(model, x, y)
    _check_directions(v, x)
    dtype = work_dtype([model], x)
    if len(x) == 0:
        return torch.empty(0, dtype=dtype, device=x.device)
    device, home = model_device(model, x.device), x.device
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
    return hi.to(home)


@dataclass(frozen=True)
class BoundarySearch:
    """The result of :func:`search_boundaries` for one model: d(f, x) of every image along its
    direction and which images the search left unflipped (censored).

    Arguments:
        d (Tensor): the distances, in pixel units of [0, 1] images (l2); where ``censored``,
            ``radius`` (a lower bound of the true distance).
        censored (Tensor): bool, True where the model never left the label within ``radius``.
        radius (float): the last radius searched (the same for every model searched together).

    Shape:
        - d: (N,) floating, in the work dtype, on the images' device.
        - censored: (N,) bool.

    Examples::

        >>> s = BoundarySearch(torch.tensor([0.3, 10.0]), torch.tensor([False, True]), 10.0)
        >>> s.d[~s.censored].tolist(), int(s.censored.sum())
        ([0.30000001192092896], 1)
    """

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
    """d(f, x) of every model of ``models`` for every image along its direction, under one
    censoring rule for all (the module docstring has it): each model is scanned to
    ``search.max_radius``; then, while more than ``search.max_censored`` of some model's images
    are unflipped, every model's unflipped images are searched to twice the radius (at most
    ``search.doublings`` times, never beyond the image box's diameter), so that every search ends
    at the same radius and every gap between two of them is exact or a lower bound. ValueError
    for bad arguments or inputs (before any compute); an empty batch gives empty searches.

    Arguments:
        models (Mapping[str, nn.Module]): {name: model}, the models compared along ``v``.
        x (Tensor): the images; never written to.
        y (Tensor): their labels.
        v (Tensor): one unit direction per image (F1's gradient directions for Dist).
        search (SearchSettings): radius, step, tolerance and censoring rule. Default:
            ``SearchSettings()`` (radius 10, step 0.02, tol 1e-3, 1%, 3 doublings).
        batch_size (int): images per forward pass (bounds the memory). Default: 500.
        desc (str): names the search in its progress lines. Default: ``"along v"``.

    Shape:
        - x: (N, C, H, W) floating images in [0, 1].
        - y: (N,) integer labels.
        - v: like x.
        - output: {name: BoundarySearch} with d and censored of shape (N,), d in the work dtype
          on x's device.

    Examples::

        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> g = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x = torch.rand(4, 3, 8, 8)
        >>> y = predict(f, x)
        >>> v = gradient_direction(f, x, y)
        >>> s = search_boundaries({"f": f, "g": g}, x, y, v, SearchSettings(max_radius=2.0, doublings=1))
        >>> s["f"].d.shape, s["f"].radius == s["g"].radius
        (torch.Size([4]), True)
    """
    models = as_model_mapping(models)
    if not isinstance(search, SearchSettings):
        raise ValueError(f"search must be a SearchSettings, got {type(search).__name__}")
    batch_size = as_int(batch_size, "batch_size", 1)
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
    together, so that their searches end at the same radius.

    Arguments:
        model (nn.Module): a classifier of images in [0, 1] returning (N, num_classes) logits.
        x, y, v, search, batch_size, desc: as for :func:`search_boundaries`.

    Shape:
        - x: (N, C, H, W); y: (N,); v: like x.
        - output: a BoundarySearch with d and censored of shape (N,).

    Examples::

        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x = torch.rand(4, 3, 8, 8)
        >>> y = predict(f, x)
        >>> s = search_boundary(f, x, y, gradient_direction(f, x, y), SearchSettings(max_radius=2.0))
        >>> s.d.shape, s.censored.dtype
        (torch.Size([4]), torch.bool)
    """
    check_model(model)
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
    both models.

    Cost: one gradient of F1 per image, then per model and image about max_radius / step +
    log2(step / tol) forward passes (505 at the defaults), and as many again per doubling of the
    radius while more than ``search.max_censored`` of the images are unflipped. Memory: every
    forward and backward pass takes at most ``batch_size`` images.

    Arguments:
        f1 (nn.Module): the source F1, whose gradient directions Dist measures along.
        f2 (nn.Module): the target F2.
        x (Tensor): the images; never written to.
        y (Tensor): their true labels.
        search (SearchSettings): the search (:class:`SearchSettings`). Default: ``SearchSettings()``.
        batch_size (int): images per forward or backward pass. Default: 500.

    Shape:
        - x: (N, C, H, W) floating images in [0, 1].
        - y: (N,) integer labels.
        - output: a PairDistance (Python numbers, distances in l2 pixel units of [0, 1] images).

    Examples::

        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x = torch.rand(8, 3, 8, 8)
        >>> model_distance(f, f, x, predict(f, x), SearchSettings(max_radius=2.0)).dist
        0.0
    """
    check_model(f1, "f1")
    check_model(f2, "f2")
    if not isinstance(search, SearchSettings):
        raise ValueError(f"search must be a SearchSettings, got {type(search).__name__}")
    batch_size = as_int(batch_size, "batch_size", 1)
    y = _labels(f2, x, _labels(f1, x, y)).to(x.device)
    keep = (_predict(f1, x, batch_size) == y) & (_predict(f2, x, batch_size) == y)
    if not keep.any():
        raise ValueError(f"Dist needs at least one image both models classify correctly; none of the {len(x)} of x is")
    x, y = x[keep], y[keep]
    v = map_batches(partial(gradient_direction, f1), x, y, batch_size=batch_size, desc="F1's gradients")
    searches = search_boundaries({"F1": f1, "F2": f2}, x, y, v, search, batch_size)
    return distance_from_distances(searches["F1"], searches["F2"])


@dataclass(frozen=True)
class DecisionPlane:
    """Labels of each model on the grid x + u d1 + v d2 (Fig. 4): u along columns, v along rows,
    d1 the source's gradient direction and d2 a random direction orthogonal to it, both of l2
    norm ``unit``.

    Arguments:
        coords (Tensor): the integer grid coordinates -span..span, in units of ``unit``.
        labels (Tensor): each model's predicted labels; ``labels[m, i, j]`` is at u = coords[j],
            v = coords[i], so the image itself is at the centre ``[m, span, span]``.
        true_label (int): the image's label y.
        unit (float): the grid step, l2 pixel units of [0, 1] images.

    Shape:
        - coords: (S,) float32, S = 2 span + 1.
        - labels: (M, S, S) int64 on the CPU, M the models mapped.

    Examples::

        >>> p = DecisionPlane(torch.arange(-1.0, 2.0), torch.zeros(1, 3, 3, dtype=torch.long), 0, 0.02)
        >>> int(p.labels[0, 1, 1]) == p.true_label
        True
    """

    coords: torch.Tensor  # (S,) integer grid coordinates, in units of ``unit``
    labels: torch.Tensor  # (M, S, S) predicted labels; [m, i, j] at u = coords[j], v = coords[i]
    true_label: int
    unit: float


@torch.no_grad()
def _plane_labels(models, x, d1, d2, coords, batch_size):
    """Each model's labels on the grid, built batch by batch: point k = i S + j is at
    u = coords[k % S], v = coords[k // S] (u along columns), as a meshgrid with indexing "xy"."""
    s = len(coords)
    labels = [[] for _ in models]
    for start in range(0, s * s, batch_size):
        k = torch.arange(start, min(start + batch_size, s * s))
        u, v = coords[k % s], coords[k // s]
        points = x + u.reshape(-1, 1, 1, 1) * d1 + v.reshape(-1, 1, 1, 1) * d2
        for i, m in enumerate(models):
            labels[i].append(logits(m, points).argmax(1).cpu())
    return torch.stack([torch.cat(each).view(s, s) for each in labels])


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
    """The decision plane of one image (Fig. 4): each model's label at x + u d1 + v d2 for
    integers u, v in [-span, span], d1 the source's non-targeted gradient direction (of
    CE(source(x), y)) and d2 a random direction orthogonal to it, both of l2 norm ``unit``.
    Points are not clipped to [0, 1]. ValueError for bad arguments (before any compute).

    Arguments:
        source (nn.Module): F1, whose gradient gives d1.
        models (list of nn.Module): the models whose labels are mapped (the source among them,
            usually first).
        x (Tensor): the image; never written to.
        y (int): its label (an int, a NumPy integer or a 0-d integer tensor).
        span (int): the grid runs over -span..span in both directions. Default: 50 (the paper's).
        unit (float): the grid step, l2 pixel units of [0, 1] images. Default: 0.02 (the paper's).
        seed (int): seed of d2's draw (a private CPU generator). Default: 0.
        batch_size (int): grid points per forward pass (bounds the memory: the grid is built batch
            by batch, never whole). Default: 1024.

    Shape:
        - x: (C, H, W) floating, in [0, 1].
        - output: a DecisionPlane with labels of shape (len(models), 2 span + 1, 2 span + 1).

    Examples::

        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> x = torch.rand(3, 8, 8)
        >>> y = int(predict(f, x[None])[0])
        >>> plane = decision_plane(f, [f], x, y, span=3)
        >>> plane.labels.shape, int(plane.labels[0, 3, 3]) == y
        (torch.Size([1, 7, 7]), True)
    """
    check_model(source, "source")
    models = as_model_list(models)
    span, seed, batch_size = as_int(span, "span"), as_int(seed, "seed"), as_int(batch_size, "batch_size")
    unit = as_number(unit, "unit")
    if span < 1 or not (unit > 0 and math.isfinite(unit)) or batch_size < 1:
        raise ValueError(
            f"need span >= 1, a finite unit > 0 and batch_size >= 1, got span={span}, unit={unit}, batch_size={batch_size}"
        )
    if len(models) == 0:
        raise ValueError("models must hold at least one model whose labels to map")
    check_images(x, dims=3)
    if isinstance(y, torch.Tensor) and y.dim() == 0 and not (y.is_floating_point() or y.dtype == torch.bool):
        y = int(y)
    if not isinstance(y, numbers.Integral) or isinstance(y, bool):
        raise ValueError(f"y must be the image's class label as an int, got {y!r}")
    y = int(y)
    for model in models:
        if model is not source:  # the source is probed by gradient_direction below
            num_classes(model, x[None], "x")
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
