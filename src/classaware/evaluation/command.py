"""``classaware evaluate``: the class-aware view of any transfer attack, from the command line.

Everything is checked before any attack runs (options, data, models, class counts, labels, the
attack's arguments): a bad input is one line on stderr and exit status 2, and files already in
``--out`` are left as they are (each output is replaced atomically, only once computed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import DEVICE_EXPECTED, DEVICE_PATTERN, Options, help_field
from ..search import SearchSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    source: tuple[str, ...] = help_field(
        help="source model F1 (tv:NAME[:WEIGHTS], timm:NAME[:random], zoo:PATH[@EPOCH], state:MODULE:FACTORY@PATH, "
        "script:PATH, py:MODULE:OBJECT); several: an ensemble",
        nonempty=True,
    )
    targets: tuple[str, ...] = help_field(help="target models F2, as --source", nonempty=True)
    data: str = help_field(help="images: cifar10:PATH[:SPLIT], folder:PATH, nips:PATH, tensor:PATH (or a bare path)")
    out: Path = help_field(
        help="folder for summary.csv, per_class.csv, pairs.csv, samples.npz, figures/, report, manifest", output="dir"
    )
    attack: tuple[str, ...] = help_field(
        (),
        "attacks, e.g. 'pgd(eps=1.0, alpha=0.2, steps=10)', 'torchattacks:MIFGSM(eps=8/255)', "
        "'torchattack:MIFGSM(eps=8/255)', 'py:MODULE:FUNCTION(...)', 'transferattack:MODULE:CLASS(...)'",
    )
    saved: str = help_field(
        "", "adversarial examples on disk instead: transferattack:DIR, tabench:DIR, torchattacks:FILE.pt"
    )
    eps: tuple[float, ...] = help_field((), "eps values to sweep (empty: the attack's own)", ge=0)
    norm: str = help_field(
        "", "l2 or linf: the eps-ball check of a saved set or callable (empty: none)", choices=("", "l2", "linf")
    )
    objective: tuple[str, ...] = help_field(
        ("untargeted",), "untargeted and/or targeted", choices=("untargeted", "targeted"), nonempty=True
    )
    targets_mode: str = help_field(
        "random", "target classes of the targeted objective", choices=("random", "file", "least_likely")
    )
    quantize: tuple[str, ...] = help_field(
        ("none",),
        "evaluate x' as is and/or as an 8-bit file holds it",
        choices=("none", "round", "floor"),
        nonempty=True,
    )
    n: int = help_field(0, "a class-balanced subset of this many images (0: all)", ge=0)
    seed: int = help_field(0, "seed of the subset and the random target classes", ge=0)
    batch_size: int = help_field(100, "images per batch", ge=1)
    device: str = help_field(
        "auto", "auto (CUDA when available), cpu, cuda or cuda:N", pattern=DEVICE_PATTERN, expected=DEVICE_EXPECTED
    )
    bf16: bool = help_field(False, "predict under bf16 autocast")
    ensemble: str = help_field(
        "logits",
        "an ensemble source predicts the argmax of the mean of its members' logits or probs",
        choices=("logits", "probs"),
    )
    image_size: int = help_field(0, "resize folder images to this square size on reading (0: no)", ge=0)
    cache: Path | None = help_field(
        None, "per-batch cache folder (default: OUT/cache): reruns resume, new targets reuse the attack"
    )
    dist: int = help_field(0, "measure Dist(F1, F2) on the first N images (0: no)", ge=0)
    compare_with: Path | None = help_field(
        None, "another evaluate's samples.npz on the same images: paired comparison (McNemar)"
    )
    figures: bool = help_field(True, "draw the figures")
    search: SearchSettings = SearchSettings()

    def check(self) -> list[str]:
        if bool(self.attack) == bool(self.saved):
            return ["give either --attack (attacks to run) or --saved (adversarial examples on disk)"]
        return []


def run(cfg: Config) -> None:
    from .api import evaluate
    from .result import Evaluation

    other = Evaluation.from_samples(cfg.compare_with) if cfg.compare_with else None
    ev = evaluate(
        list(cfg.source) if len(cfg.source) > 1 else cfg.source[0],
        list(cfg.targets),
        list(cfg.attack) or None,
        cfg.data,
        eps=list(cfg.eps) or None,
        objective=list(cfg.objective),
        targets_mode=cfg.targets_mode,
        quantize=list(cfg.quantize),
        saved=cfg.saved or None,
        norm=cfg.norm or None,
        n=cfg.n,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        device=cfg.device,
        bf16=cfg.bf16,
        ensemble_combine=cfg.ensemble,
        image_size=cfg.image_size or None,
        cache=cfg.cache or cfg.out / "cache",
        dist=cfg.dist,
        dist_search=cfg.search,
    )
    comparisons = ev.compare(other) if other is not None else None
    written = ev.save(cfg.out, comparisons, draw=cfg.figures)
    log.info("evaluate: %d files in %s; report: %s", len(written), cfg.out, cfg.out / "report.md")
