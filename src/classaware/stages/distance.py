"""Stage ``distance``: Dist(F1, F2) (section 3.1.3, eq. 4) for every source and its targets,
over ``n_images`` test images drawn at random among those every compared model classifies
right: one set of images for every pair (see ``boundary`` for the censoring rule)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from ..batching import map_batches
from ..boundary import distance_from_distances, gradient_direction, search_boundary
from ..checkpoint import Comparison, load_refs
from ..config import Options, device_field, help_field, seed_shift_field, shifted
from ..data import balanced_subset, load_canonical, to_float
from ..environment import Environment
from ..models import pick_device, predict
from ..results import DistanceResults, ImageDistances, SearchSettings, SourceDistance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    compare: Comparison
    out: Path = help_field(help="JSON file of Dist(F1, F2)", output="file")
    distances: Path = help_field(help="file of the per-image distances d(f, x)", output="file")
    n_images: int = help_field(5000, "images to average over (paper: 5,000)", ge=1)
    test_size: int = help_field(0, "draw them from a class-balanced subset of this many test images (0: all)", ge=0)
    selection_seed: int = help_field(0, "seed of the random choice of images", ge=0)
    max_radius: float = help_field(10.0, "l2 radius searched first for every image", gt=0)
    step: float = help_field(0.02, "scan step of the bracketing search (within max_radius)", gt=0)
    tol: float = help_field(1e-3, "bisection tolerance: d is over-estimated by at most tol (within max_radius)", gt=0)
    max_censored: float = help_field(
        0.01, "search further while more than this fraction of images is unflipped", ge=0, le=1
    )
    doublings: int = help_field(3, "at most this many doublings of the search radius", ge=0)
    batch_size: int = help_field(500, "images per batch", ge=1)
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    models_dir: Path = help_field(Path("models"), "folder of the zoo's checkpoints")
    device: str = device_field()
    seed_shift: int = seed_shift_field()

    def check(self) -> list[str]:
        if not self.tol <= self.step <= self.max_radius:
            return [f"need tol <= step <= max_radius, got {self.tol}, {self.step}, {self.max_radius}"]
        return []


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    refs = cfg.compare.models
    models = {ref: m for ref, (m, _) in load_refs(cfg.models_dir, refs, device).items()}
    pool = balanced_subset(data.test_y, cfg.test_size, cfg.seed_shift)
    x_pool, y_pool = to_float(data.test_x[pool]), data.test_y[pool]
    correct = torch.stack([predict(m, x_pool) == y_pool for m in models.values()]).all(0)
    eligible = pool[correct]
    g = torch.Generator().manual_seed(shifted(cfg.selection_seed, cfg.seed_shift))
    chosen = eligible[torch.randperm(len(eligible), generator=g)[: cfg.n_images]].sort().values
    log.info(
        "%d of %d test images are right for all %d models; using %d", len(eligible), len(pool), len(refs), len(chosen)
    )
    if len(chosen) == 0:
        raise ValueError("no test image is classified correctly by every model: Dist is undefined")
    x, y = to_float(data.test_x[chosen]), data.test_y[chosen]

    settings = SearchSettings(cfg.max_radius, cfg.step, cfg.tol, cfg.max_censored, cfg.doublings)
    results, per_image, censored = {}, {}, {}
    for source in cfg.compare.sources:
        v = map_batches(
            partial(gradient_direction, models[source]), x, y, batch_size=cfg.batch_size, desc=f"{source}'s gradients"
        )
        searches = {}
        for ref in (source, *cfg.compare.targets_of(source)):
            searches[ref] = search_boundary(
                models[ref], x, y, v, **asdict(settings), batch_size=cfg.batch_size, desc=f"d({ref}, x) along {source}"
            )
            log.info(
                "d(%s, x) along %s: %d of %d censored at radius %g",
                ref,
                source,
                int(searches[ref].censored.sum()),
                len(y),
                searches[ref].radius,
            )
        per_image[source] = {ref: s.d for ref, s in searches.items()}
        censored[source] = {ref: s.censored for ref, s in searches.items()}
        results[source] = SourceDistance(
            targets={
                t: distance_from_distances(searches[source], searches[t], cfg.max_radius)
                for t in cfg.compare.targets_of(source)
            },
            censored={ref: int(s.censored.sum()) for ref, s in searches.items()},
            radius={ref: s.radius for ref, s in searches.items()},
            mean_d={ref: s.d.mean().item() for ref, s in searches.items()},
        )
    environment = Environment.current(device)
    DistanceResults(
        dataset=data.dataset,
        n_images=len(chosen),
        n_eligible=len(eligible),
        search=settings,
        sources=results,
        environment=environment,
    ).save(cfg.out)
    ImageDistances(
        indices=chosen, distances=per_image, censored=censored, provenance=data.provenance, environment=environment
    ).save(cfg.distances)
