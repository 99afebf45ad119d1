"""Stage ``distance``: Dist(F1, F2) (section 3.1.3, eq. 4) for every source and target, over
``n_images`` test images drawn at random among those every compared model classifies right."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from ..batching import map_batches
from ..boundary import boundary_distance, distance_from_distances, gradient_direction
from ..checkpoint import load_refs
from ..config import Options, device_field, help_field
from ..data import balanced_subset, load_canonical, to_float
from ..models import pick_device, predict
from ..results import DistanceResults, ImageDistances, SearchSettings, SourceDistance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    sources: tuple[str, ...] = help_field(help="zoo references of the source models F1", nonempty=True)
    targets: tuple[str, ...] = help_field(help="zoo references of the target models F2", nonempty=True)
    out: Path = help_field(help="JSON file of Dist(F1, F2)", output="file")
    distances: Path = help_field(help="file of the per-image distances d(f, x)", output="file")
    n_images: int = help_field(5000, "images to average over (paper: 5,000)", ge=1)
    test_size: int = help_field(0, "draw them from a class-balanced subset of this many test images (0: all)", ge=0)
    selection_seed: int = help_field(0, "seed of the random choice of images", ge=0)
    max_radius: float = help_field(10.0, "largest l2 radius searched; images that never flip are counted", gt=0)
    step: float = help_field(0.02, "scan step of the bracketing search", gt=0)
    tol: float = help_field(1e-3, "bisection tolerance: d is over-estimated by at most tol", gt=0)
    batch_size: int = help_field(500, "images per batch", ge=1)
    data: Path = help_field(Path("data/cifar10.pt"), "canonical CIFAR-10 file")
    models_dir: Path = help_field(Path("models"), "folder of the zoo's checkpoints")
    device: str = device_field()

    def check(self) -> list[str]:
        if not self.tol <= self.step <= self.max_radius:
            return [f"need tol <= step <= max_radius, got {self.tol}, {self.step}, {self.max_radius}"]
        return []


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    refs = list(dict.fromkeys(cfg.sources + cfg.targets))
    models = {ref: m for ref, (m, _) in load_refs(cfg.models_dir, refs, device).items()}
    pool = balanced_subset(data.test_y, cfg.test_size)
    x_pool, y_pool = to_float(data.test_x[pool]), data.test_y[pool]
    correct = torch.stack([predict(m, x_pool) == y_pool for m in models.values()]).all(0)
    eligible = pool[correct]
    g = torch.Generator().manual_seed(cfg.selection_seed)
    chosen = eligible[torch.randperm(len(eligible), generator=g)[: cfg.n_images]].sort().values
    log.info(
        "%d of %d test images are right for all %d models; using %d", len(eligible), len(pool), len(refs), len(chosen)
    )
    if len(chosen) == 0:
        raise ValueError("no test image is classified correctly by every model: Dist is undefined")
    x, y = to_float(data.test_x[chosen]), data.test_y[chosen]

    search = SearchSettings(max_radius=cfg.max_radius, step=cfg.step, tol=cfg.tol)
    results, per_image = {}, {}
    for source in cfg.sources:
        v = map_batches(partial(gradient_direction, models[source]), x, y, batch_size=cfg.batch_size)
        d = {
            ref: map_batches(
                partial(boundary_distance, models[ref], **asdict(search)),
                x,
                y,
                v,
                batch_size=cfg.batch_size,
                desc=f"d({ref}, x) along {source}",
            )
            for ref in dict.fromkeys([source, *cfg.targets])
        }
        per_image[source] = d
        results[source] = SourceDistance(
            targets={t: distance_from_distances(d[source], d[t]) for t in cfg.targets if t != source},
            never_flipped={ref: int(torch.isinf(dist).sum()) for ref, dist in d.items()},
            mean_d={
                ref: dist[torch.isfinite(dist)].mean().item() if torch.isfinite(dist).any() else None
                for ref, dist in d.items()
            },
        )
    DistanceResults(
        dataset=data.dataset, n_images=len(chosen), n_eligible=len(eligible), search=search, sources=results
    ).save(cfg.out)
    ImageDistances(indices=chosen, distances=per_image, provenance=data.provenance).save(cfg.distances)
