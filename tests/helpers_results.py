"""Hand-built results for the claim tests: every ratio, Dist and Table row set by hand.

``Study`` holds a complete section-3 result for two sources (a ResNet and a VGG), their early
versions, w:same and w:diff siblings, four attacks and three eps. Every cell starts from a
background value that differs by attack, eps, ratio and model, so a metric reading the wrong
one gets a different number; a test then sets the cells its claim reads and computes the
expected value by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from classaware.environment import Environment
from classaware.metrics import ClassAwareTransfer, PairDistance, Proportion
from classaware.schema import (
    AttackTransfer,
    BaselineRow,
    ControlRow,
    DistanceResults,
    ModelInfo,
    Probe,
    SourceDistance,
    SourceTransfer,
    Table1,
    Table1Rates,
    Table1Row,
    Table2,
    Table2Row,
    TransferResults,
    eps_key,
)
from classaware.search import SearchSettings

ATTACKS = {
    "fgm-untargeted": ("fgm", "untargeted"),
    "fgm-targeted": ("fgm", "targeted"),
    "pgd-untargeted": ("pgd", "untargeted"),
    "pgd-targeted": ("pgd", "targeted"),
}
EPS = (0.5, 1.0, 2.0)
ZOO = {  # member: (arch, init_seed, data_seed, epoch)
    "res": ("resnet10_w8", 0, 0, 5),
    "res@4": ("resnet10_w8", 0, 0, 4),
    "res_ws": ("resnet10_w8", 0, 1, 5),
    "res_wd": ("resnet10_w8", 1, 2, 5),
    "vgg": ("vgg11_bn_w8", 0, 0, 5),
    "vgg@4": ("vgg11_bn_w8", 0, 0, 4),
    "vgg_ws": ("vgg11_bn_w8", 0, 1, 5),
    "vgg_wd": ("vgg11_bn_w8", 1, 2, 5),
}
SOURCES = ("res", "vgg")
N = 1000  # |D'_F1| of every cell
N_RIGHT = 900  # the images of D'_F1 a target got right before the attack


def targets(source: str) -> list[str]:
    return [f"{source}@4", *(m for m in ZOO if "@" not in m and m != source)]


def _meta(member: str) -> dict:
    arch, init_seed, data_seed, epoch = ZOO[member]
    return {"arch": arch, "init_seed": init_seed, "data_seed": data_seed, "epoch": epoch}


def cell(different: int, same: int, n: int = N) -> ClassAwareTransfer:
    """A target's result on D'_F1 of ``n`` AEs: ``different`` and ``same`` mistakes, the rest un-fooled."""
    return ClassAwareTransfer(
        n_total=n, n_source_correct=n, n=n, unfooled=Proportion.of(n - different - same, n),
        fooled=Proportion.of(different + same, n), different=Proportion.of(different, n), same=Proportion.of(same, n),
    )  # fmt: skip


@dataclass
class Study:
    """(source, attack, eps, target) -> (different, same) counts out of N, the same over the images
    the target got right before the attack (``right``: out of N_RIGHT), and (source, target) ->
    Dist and Dist over the images that flip (``flipped``)."""

    counts: dict[tuple[str, str, float, str], tuple[int, int]] = field(default_factory=dict)
    right: dict[tuple[str, str, float, str], tuple[int, int]] = field(default_factory=dict)
    dist: dict[tuple[str, str], float] = field(default_factory=dict)
    flipped: dict[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self):
        for s, source in enumerate(SOURCES):
            for a, attack in enumerate(ATTACKS):
                for e, eps in enumerate(EPS):
                    for j, target in enumerate(targets(source)):
                        # background: rises with eps, differs by everything, same > different
                        self.counts[source, attack, eps, target] = (
                            40 + 7 * a + 3 * j + s,
                            400 + 50 * e + 11 * j + 5 * a,
                        )
                        # over the images the target got right: fewer different mistakes
                        self.right[source, attack, eps, target] = (
                            20 + 5 * a + 2 * j + s,
                            390 + 50 * e + 11 * j + 5 * a,
                        )
            for j, target in enumerate(targets(source)):
                self.dist[source, target] = 0.9 + 0.25 * j + 0.05 * s
                self.flipped[source, target] = 0.5 + 0.2 * j + 0.03 * s

    def transfer(self) -> TransferResults:
        sources = {}
        for source in SOURCES:
            models = (source, *targets(source))
            attacks = {
                name: AttackTransfer(
                    method,
                    objective,
                    {eps_key(e): {t: cell(*self.counts[source, name, e, t]) for t in targets(source)} for e in EPS},
                    {
                        eps_key(e): {t: cell(*self.right[source, name, e, t], N_RIGHT) for t in targets(source)}
                        for e in EPS
                    },
                )  # fmt: skip
                for name, (method, objective) in ATTACKS.items()
            }
            sources[source] = SourceTransfer(
                models=models,
                info={m: ModelInfo.of(_meta(m), _meta(source)) for m in models},
                clean_acc={m: 0.9 for m in models},
                n_images=N,
                attacks=attacks,
            )
        return TransferResults("hand-built", sources)

    def distance(self, width: float = 0.01) -> DistanceResults:
        """Dist with a 95% interval of +- ``width``."""
        sources = {}
        for source in SOURCES:
            pairs = {
                t: PairDistance(self.dist[source, t], self.dist[source, t] - width, self.dist[source, t] + width, 500, 20,
                                self.flipped[source, t], self.flipped[source, t] - width,
                                self.flipped[source, t] + width, 480)
                for t in targets(source)
            }  # fmt: skip
            models = [source, *targets(source)]
            sources[source] = SourceDistance(pairs, {m: 0 for m in models}, 10.0, {m: 1.0 for m in models})
        settings = SearchSettings()
        return DistanceResults("hand-built", 500, 600, settings, sources, Environment.current())


def rates(both: float, n: int = 1000) -> Table1Rates:
    p = Proportion.of(round(both * n), n)
    return Table1Rates(p, p, p)


def table1(both: list[float], probes: dict[str, list[float]] | None = None) -> Table1:
    """A Table 1 with one row per ``both`` rate (of 1,000 images) and probes {eps: rates}."""
    probes = probes or {}
    rows = tuple(
        Table1Row(f"p{i}", None, 1.0, 1000, rates(b), {e: Probe(1000, rates(r[i])) for e, r in probes.items()}, None)
        for i, b in enumerate(both)
    )
    return Table1("hand-built", rows)


def table2(
    rows: list[tuple[str, str, str, float]],
    n_test: int = 10000,
    papers: list[float | None] | None = None,
    controls: dict[tuple[str, str], float] | None = None,
) -> Table2:
    """A Table 2 from (pair, labelling, arch, test accuracy) rows and {(labelling, arch): control
    accuracy} (default 0.1 for every labelling and arch of the rows); no baseline rows."""
    papers = papers or [None] * len(rows)
    built = tuple(
        Table2Row(p, lab, arch, acc, n_test, None, 1.0, "c", ref)
        for (p, lab, arch, acc), ref in zip(rows, papers, strict=True)
    )
    controls = controls or {(lab, arch): 0.1 for _, lab, arch, _ in rows}
    made = tuple(ControlRow(lab, arch, acc, n_test, 1.0, "c") for (lab, arch), acc in controls.items())
    return Table2("hand-built", 0.1, built, made, ())


def baseline(rows: list[tuple[float, float | None]]) -> tuple[BaselineRow, ...]:
    return tuple(BaselineRow(f"arch{i}", acc, "c", ref) for i, (acc, ref) in enumerate(rows))


def correlated_study(n_targets: int, r: float, n: int = 1_000_000) -> tuple[TransferResults, DistanceResults]:
    """Two sources with ``n_targets`` targets each (the early version, w:same, w:diff and others),
    where in every case (source x attack, at eps 1) the same-mistake ratio has Pearson's r =
    ``r`` with Dist(F1, F2), up to the rounding of counts out of ``n``: same = 0.4 + 0.1 (r u +
    sqrt(1 - r^2) e), with u and e orthonormal, zero-mean directions, u along the Dists."""
    dist = [0.5 + 0.2 * j for j in range(n_targets)]
    mean = sum(dist) / n_targets
    u = [d - mean for d in dist]
    e = [math.cos(1.7 * j) for j in range(n_targets)]
    for basis in ([1.0] * n_targets, u):  # Gram-Schmidt: e orthogonal to the constant and to u
        scale = sum(a * b for a, b in zip(e, basis, strict=True)) / sum(b * b for b in basis)
        e = [a - scale * b for a, b in zip(e, basis, strict=True)]
    u, e = ([a / math.sqrt(sum(b * b for b in v)) for a in v] for v in (u, e))
    same = [0.4 + 0.1 * (r * a + math.sqrt(1 - r * r) * b) for a, b in zip(u, e, strict=True)]
    sources, distances = {}, {}
    for arch, family in (("resnet10_w8", "resnet"), ("vgg11_bn_w8", "vgg")):
        source = family
        names = [f"{source}@4", f"{source}_ws", f"{source}_wd", *(f"other{j}" for j in range(n_targets - 3))]
        relations = ["v:4", "w:same", "w:diff", *(["other"] * (n_targets - 3))]
        info = {source: ModelInfo(arch, family, 5, 0, 0, "source")}
        info |= {t: ModelInfo(arch if rel != "other" else "densenet_s", family if rel != "other" else "densenet",
                              4 if rel == "v:4" else 5, int(rel == "w:diff"), int(rel != "v:4"), rel)
                 for t, rel in zip(names, relations, strict=True)}  # fmt: skip
        by_target = {t: cell(round(0.05 * n), round(p * n), n) for t, p in zip(names, same, strict=True)}
        attacks = {
            name: AttackTransfer(m, o, {eps_key(1.0): by_target}, {eps_key(1.0): by_target})
            for name, (m, o) in ATTACKS.items()
        }
        sources[source] = SourceTransfer((source, *names), info, {m: 0.9 for m in info}, n, attacks)
        pairs = {t: PairDistance(d, d - 0.01, d + 0.01, 500, 0, d, d - 0.01, d + 0.01, 500)
                 for t, d in zip(names, dist, strict=True)}  # fmt: skip
        models = [source, *names]
        distances[source] = SourceDistance(pairs, dict.fromkeys(models, 0), 10.0, dict.fromkeys(models, 1.0))
    settings = SearchSettings()
    return TransferResults("hand-built", sources), DistanceResults(
        "hand-built", 500, 600, settings, distances, Environment.current()
    )


CONDITIONS = {"within": 0.05, "rule": "a test rule", "why": "a test", "chosen": "for the tests"}


def claims_file(claims: list[dict]) -> dict:
    """claims.yaml's content for ``claims``: the repository's shape, with a test rule, each claim
    reading the comparison unless it says otherwise."""
    return {"conditions": CONDITIONS, "claims": [{"reads": "comparison", **c} for c in claims]}
