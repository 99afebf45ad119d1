"""Stage ``plane``: decision planes of one test image for a source and the models beside it
(Fig. 4): the first test image of ``image_class`` that every shown model classifies right
(or, failing that, that the source classifies right; ``all_right`` in the output says which)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..boundary import decision_plane
from ..checkpoint import load_refs
from ..config import Options, data_field, device_field, help_field, models_dir_field
from ..data import CLASSES, cifar10_labels, load_canonical, to_float
from ..draws import Draws
from ..environment import Environment
from ..models import pick_device, predict
from ..schema import DecisionPlanes

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import Upstream


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    source: str = help_field(help="zoo reference of the source model F1 (gives the direction d1)")
    models: tuple[str, ...] = help_field(help="zoo references of the models shown beside the source", nonempty=True)
    out: Path = help_field(help="file for the planes", output="file")
    image_class: str = help_field("bird", f"class of the image, one of: {', '.join(CLASSES)}", choices=CLASSES)
    image_rank: int = help_field(0, "take the k-th eligible image of that class (0: the first)", ge=0)
    span: int = help_field(50, "grid coordinates run over -span..span", ge=1)
    unit: float = help_field(0.02, "l2 length of one grid unit (paper: 0.02)", gt=0)
    seed: int = help_field(0, "seed of the random orthogonal direction d2", ge=0)
    data: Path = data_field()
    models_dir: Path = models_dir_field()
    device: str = device_field()
    draws: Draws = Draws()  # --seed_shift: every draw of the stage goes through it


def shown(cfg: Config) -> list[str]:
    """The models of the planes: the source first, then the others, each once."""
    return list(dict.fromkeys([cfg.source, *cfg.models]))


def candidates(cfg: Config, test_y: torch.Tensor) -> torch.Tensor:
    """Indices of the test images of ``image_class``, among which the image is chosen."""
    return (test_y == CLASSES.index(cfg.image_class)).nonzero().squeeze(1)


def run(cfg: Config) -> None:
    device = pick_device(cfg.device)
    data = load_canonical(cfg.data)
    refs = shown(cfg)
    models = [m for m, _ in load_refs(cfg.models_dir, refs, device).values()]
    label = CLASSES.index(cfg.image_class)
    pool = candidates(cfg, data.test_y)
    x = to_float(data.test_x[pool])
    right = torch.stack([predict(m, x) == label for m in models])
    eligible = pool[right.all(0)]
    all_right = len(eligible) > cfg.image_rank
    if not all_right:  # weak (e.g. smoke-sized) models: settle for an image the source gets right
        eligible = pool[right[0]]
        log.warning(
            "fewer than %d %s test images are right for every model; taking one right for the source",
            cfg.image_rank + 1,
            cfg.image_class,
        )
    if len(eligible) <= cfg.image_rank:
        raise ValueError(f"only {len(eligible)} {cfg.image_class} test images are right for the source {cfg.source}")
    index = int(eligible[cfg.image_rank])
    plane = decision_plane(
        models[0], models, to_float(data.test_x[index]), label, cfg.span, cfg.unit, cfg.draws.seed(cfg.seed)
    )
    log.info("decision planes of test image %d (%s) for %d models", index, cfg.image_class, len(models))
    DecisionPlanes(
        source=cfg.source,
        models=tuple(refs),
        index=index,
        true_label=label,
        classes=CLASSES,
        coords=plane.coords,
        labels=plane.labels,
        unit=plane.unit,
        image=data.test_x[index].clone(),
        all_right=all_right,
        provenance=data.provenance,
        environment=Environment.current(device),
    ).save(cfg.out)


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> Counter:
    """Every shown model on the candidate images and on the (2 span + 1)^2 points of its plane;
    one gradient of the source (the direction d1)."""
    per_model = len(candidates(cfg, cifar10_labels("test"))) + (2 * cfg.span + 1) ** 2
    units = Counter()
    for ref in shown(cfg):
        units["forward", upstream.arch(cfg.models_dir, ref)] += per_model
    units["grad", upstream.arch(cfg.models_dir, cfg.source)] += 1
    return units


AUDIT: dict = {}  # the planes are a picture of the checked checkpoints; dvc status pins the file
