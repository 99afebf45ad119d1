"""Stage ``distance``: Dist(F1, F2) (section 3.1.3, eq. 4) for every source and its targets,
over ``n_images`` test images drawn at random among those every compared model classifies
right: one set of images for every pair (see ``boundary`` for the censoring rule)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..batching import map_batches
from ..boundary import BoundarySearch, distance_from_distances, gradient_direction, search_boundaries
from ..checkpoint import Comparison, load_refs
from ..config import Options, data_field, device_field, help_field, models_dir_field
from ..data import cifar10_labels, load_canonical, to_float
from ..draws import Draws
from ..environment import Environment
from ..metrics import PairDistance
from ..models import pick_device, right_for_all
from ..schema import DistanceResults, ImageDistances, SourceDistance
from ..search import DEFAULT_SEARCH, SearchSettings

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    compare: Comparison
    out: Path = help_field(help="JSON file of Dist(F1, F2)", output="file")
    distances: Path = help_field(help="file of the per-image distances d(f, x)", output="file")
    n_images: int = help_field(5000, "images to average over (paper: 5,000)", ge=1)
    test_size: int = help_field(0, "draw them from a class-balanced subset of this many test images (0: all)", ge=0)
    selection_seed: int = help_field(0, "seed of the random choice of images", ge=0)
    search: SearchSettings = DEFAULT_SEARCH  # its options sit beside these: --max_radius, --step ...
    batch_size: int = help_field(500, "images per batch", ge=1)
    data: Path = data_field()
    models_dir: Path = models_dir_field()
    device: str = device_field()
    draws: Draws = Draws()  # --seed_shift: every draw of the stage goes through it


def image_pool(cfg: Config, test_y: torch.Tensor) -> torch.Tensor:
    """Indices of the test images the compared images are drawn from (class-balanced, shifted by
    the replicate)."""
    return cfg.draws.subset(test_y, cfg.test_size)


def pair_distances(source: str, searches: dict, targets) -> dict[str, PairDistance]:
    """Dist(source, F2) of every target F2, from each model's boundary search (eq. 4)."""
    return {t: distance_from_distances(searches[source], searches[t]) for t in targets}


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    refs = cfg.compare.models
    models = {ref: m for ref, (m, _) in load_refs(cfg.models_dir, refs, device).items()}
    pool = image_pool(cfg, data.test_y)
    x_pool, y_pool = to_float(data.test_x[pool]), data.test_y[pool]
    eligible = pool[right_for_all(models.values(), x_pool, y_pool, cfg.batch_size)]
    g = cfg.draws.generator(cfg.selection_seed)
    chosen = eligible[torch.randperm(len(eligible), generator=g)[: cfg.n_images]].sort().values
    log.info(
        "%d of %d test images are right for all %d models; using %d", len(eligible), len(pool), len(refs), len(chosen)
    )
    if len(chosen) == 0:
        raise ValueError("no test image is classified correctly by every model: Dist is undefined")
    x, y = to_float(data.test_x[chosen]), data.test_y[chosen]

    results, per_image, censored = {}, {}, {}
    for source in cfg.compare.sources:
        v = map_batches(
            partial(gradient_direction, models[source]), x, y, batch_size=cfg.batch_size, desc=f"{source}'s gradients"
        )
        compared = {ref: models[ref] for ref in (source, *cfg.compare.targets_of(source))}
        searches = search_boundaries(compared, x, y, v, cfg.search, cfg.batch_size, desc=f"along {source}")
        radius = next(iter(searches.values())).radius
        log.info(
            "along %s: every search ended at radius %g; censored there: %s",
            source,
            radius,
            ", ".join(f"{ref} {int(s.censored.sum())}" for ref, s in searches.items()),
        )
        per_image[source] = {ref: s.d for ref, s in searches.items()}
        censored[source] = {ref: s.censored for ref, s in searches.items()}
        results[source] = SourceDistance(
            targets=pair_distances(source, searches, cfg.compare.targets_of(source)),
            censored={ref: int(s.censored.sum()) for ref, s in searches.items()},
            radius=radius,
            mean_d={ref: s.d.mean().item() for ref, s in searches.items()},
        )
    environment = Environment.current(device)
    DistanceResults(
        dataset=data.dataset,
        n_images=len(chosen),
        n_eligible=len(eligible),
        search=cfg.search,
        sources=results,
        environment=environment,
    ).save(cfg.out)
    ImageDistances(
        indices=chosen, distances=per_image, censored=censored, provenance=data.provenance, environment=environment
    ).save(cfg.distances)


# ----------------------------------------------------------------------------- its cost and its audit
WORK_BOUND = "Dist's scan counted at its bound"


def work(cfg: Config, upstream: Upstream) -> Counter:
    """Every compared model on the image pool, at most (which images all get right: each model sees
    only those the models before it got right); then per source, one
    gradient per image and, at most, every image scanned to the first radius and through every
    doubling, each ceil(max_radius / step) forwards and ceil(log2(step / tol)) bisections, for
    the source and each of its targets."""
    pool = len(image_pool(cfg, cifar10_labels("test")))
    n = min(cfg.n_images, pool)
    s = cfg.search
    scan = math.ceil(s.max_radius / s.step - 1e-9) + math.ceil(math.log2(s.step / s.tol))
    per_image = 1 + (1 + s.doublings) * scan
    units = Counter()
    for ref in cfg.compare.models:
        units["forward", upstream.arch(cfg.models_dir, ref)] += pool
    for source in cfg.compare.sources:
        units["grad", upstream.arch(cfg.models_dir, source)] += n
        for ref in dict.fromkeys([source, *cfg.compare.targets_of(source)]):
            units["forward", upstream.arch(cfg.models_dir, ref)] += n * per_image
    return units


def audit_distances(cfg: Config, ctx: AuditContext) -> int:
    """Dist of every pair, recomputed from the stored per-image distances, is the stored one."""
    stored, per_image = DistanceResults.load(cfg.out), ImageDistances.load(cfg.distances)
    n = 0
    for source, distances in per_image.distances.items():
        searches = {
            ref: BoundarySearch(d, per_image.censored[source][ref], stored.sources[source].radius)
            for ref, d in distances.items()
        }
        ours = pair_distances(source, searches, stored.sources[source].targets)
        for target, pair in stored.sources[source].targets.items():
            if ours[target] != pair:
                raise ctx.Mismatch(
                    f"{cfg.out}: Dist({source}, {target}) is {ours[target].dist} from {cfg.distances}, {pair.dist} stored"
                )
            n += 1
    return n


AUDIT = {"derived": audit_distances}
