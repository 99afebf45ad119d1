"""The ``figures`` stage on small synthetic results made by the real stage functions: PNGs that
open, CSVs equal to the analysis functions' numbers, byte-identical reruns, a clear error for
an eps that was not attacked."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text
from models_for_tests import LinearClassifier
from PIL import Image

from classaware import plots
from classaware.analysis import correlations, eps_curves, fig3_rows
from classaware.boundary import (
    REGION_NAMES,
    BoundarySearch,
    SearchSettings,
    decision_plane,
    distance_from_distances,
    transfer_regions,
)
from classaware.data import CLASSES, Provenance
from classaware.environment import Environment
from classaware.schema import (
    RATIOS,
    DecisionPlanes,
    DistanceResults,
    ModelCondition,
    ModelInfo,
    PredictionTable,
    SetPredictions,
    SourceDistance,
    TransferResults,
    ZooConditions,
)
from classaware.stages import figures, report
from classaware.stages.transfer import source_transfer

DATASET = "CIFAR-10 (JPEG q75 copy)"
PROVENANCE = Provenance("cifar10-jpeg.tar.gz", "", "", "image-folder", DATASET)
ENVIRONMENT = Environment.current()
EPS = (0.5, 1.0, 2.0)
ZOO = {
    "res_a": {"arch": "resnet10_w8", "init_seed": 0, "data_seed": 0, "epoch": 5},
    "res_a@3": {"arch": "resnet10_w8", "init_seed": 0, "data_seed": 0, "epoch": 3},
    "res_a_wsame": {"arch": "resnet10_w8", "init_seed": 0, "data_seed": 1, "epoch": 5},
    "res_a_wdiff": {"arch": "resnet10_w8", "init_seed": 1, "data_seed": 2, "epoch": 5},
    "vgg_a": {"arch": "vgg11_bn_w8", "init_seed": 0, "data_seed": 0, "epoch": 5},
    "vgg_a_wsame": {"arch": "vgg11_bn_w8", "init_seed": 0, "data_seed": 1, "epoch": 5},
}
SOURCES = ("res_a", "vgg_a")
# the cpu profile's zoo (profiles/cpu.yaml): four models of five architectures, 20 targets per
# source, the early version at epoch 12; the figures must stay readable at this size too
CPU_ARCHS = ("resnet10_w8", "resnet18_w6", "vgg11_bn_w5", "vgg13_bn_w6", "densenet_xs_k14")
CPU_ZOO = {
    f"{arch}{suffix}": {"arch": arch, "init_seed": init, "data_seed": data, "epoch": 15}
    for arch in CPU_ARCHS
    for suffix, init, data in (("", 0, 0), ("_wsame", 0, 1), ("_wsame2", 0, 3), ("_wdiff", 1, 2))
} | {f"{s}@12": {"arch": s, "init_seed": 0, "data_seed": 0, "epoch": 12} for s in ("resnet10_w8", "vgg11_bn_w5")}
CPU_SOURCES = ("resnet10_w8", "vgg11_bn_w5")


def _targets(source: str, zoo: dict) -> tuple[str, ...]:
    """The source's targets: its own early version, then every other model but other early versions."""
    return (*(m for m in zoo if m.startswith(f"{source}@")), *(m for m in zoo if m != source and "@" not in m))


def prediction_table(source: str, seed: int, n: int = 120, zoo: dict | None = None) -> PredictionTable:
    """A ``predict`` table: targets copy the source's mistake more often the later they come.
    FGM-untargeted fools nobody at the smallest eps (an empty D'_F1)."""
    zoo = ZOO if zoo is None else zoo
    g = torch.Generator().manual_seed(seed)
    models = (source, *((m for m in ZOO if m != source) if zoo is ZOO else _targets(source, zoo)))
    y = torch.randint(0, 10, (n,), generator=g)

    def wrong():
        return (y + torch.randint(1, 10, (n,), generator=g)) % 10

    def mix(p, a, b):
        return torch.where(torch.rand(n, generator=g) < p, a, b)

    step = 0.15 if zoo is ZOO else 0.75 / len(models)  # the last target copies up to 0.9 of the mistakes
    sets = {}
    for method in ("fgm", "pgd"):
        for objective in ("untargeted", "targeted"):
            target_classes = wrong() if objective == "targeted" else None
            labels = []
            for k in range(len(EPS)):
                p_fool = 0.0 if (method, objective, k) == ("fgm", "untargeted", 0) else 0.4 + 0.25 * k
                src = mix(p_fool, wrong() if target_classes is None else target_classes, y)
                labels.append(
                    torch.stack([src] + [mix(step * j, src, mix(0.5, y, wrong())) for j in range(1, len(models))])
                )
            sets[f"{method}-{objective}"] = SetPredictions(method, objective, EPS, target_classes, torch.stack(labels))
    return PredictionTable(
        source=source,
        models=models,
        info={m: ModelInfo.of(zoo[m], zoo[source]) for m in models},
        indices=torch.arange(n),
        y=y,
        clean=torch.stack([mix(0.9, y, wrong()) for _ in models]),
        sets=sets,
        provenance=PROVENANCE,
        environment=ENVIRONMENT,
    )


def distance_results(n: int = 12, zoo: dict | None = None, sources_: tuple[str, ...] = SOURCES) -> DistanceResults:
    """A ``distance`` result; along res_a's directions vgg_a_wsame never flips (censored at 10)."""
    zoo = ZOO if zoo is None else zoo
    g = torch.Generator().manual_seed(1)
    sources = {}
    for source in sources_:
        d_source = 0.5 + 2 * torch.rand(n, generator=g)
        searches = {source: BoundarySearch(d_source, torch.zeros(n, dtype=torch.bool), 10.0)}
        targets = (m for m in ZOO if m != source) if zoo is ZOO else _targets(source, zoo)
        for j, target in enumerate(targets):
            d_target = (d_source + 0.2 * (j + 1) * torch.randn(n, generator=g)).abs()
            searches[target] = BoundarySearch(d_target, torch.zeros(n, dtype=torch.bool), 10.0)
            if (source, target) == ("res_a", "vgg_a_wsame"):
                searches[target] = BoundarySearch(torch.full((n,), 10.0), torch.ones(n, dtype=torch.bool), 10.0)
        sources[source] = SourceDistance(
            targets={t: distance_from_distances(searches[source], s) for t, s in searches.items() if t != source},
            censored={m: int(s.censored.sum()) for m, s in searches.items()},
            radius=10.0,
            mean_d={m: s.d.mean().item() for m, s in searches.items()},
        )
    settings = SearchSettings(max_radius=5.0, step=0.02, tol=1e-3, max_censored=0.01, doublings=1)
    return DistanceResults(DATASET, n, 3 * n, settings, sources, ENVIRONMENT)


def decision_planes() -> DecisionPlanes:
    """A ``plane`` result from the real decision_plane on three linear models."""
    base = LinearClassifier.random(10, 3 * 32 * 32, seed=0)
    near = LinearClassifier(
        base.weight.detach() + 0.3 * LinearClassifier.random(10, 3 * 32 * 32, seed=2).weight.detach(),
        base.bias.detach(),
    )
    models = [base, near, LinearClassifier.random(10, 3 * 32 * 32, seed=1)]
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))
    y = int(base(x[None]).argmax())
    plane = decision_plane(models[0], models, x, y, span=6, unit=0.05, seed=0)
    return DecisionPlanes(
        source="res_a",
        models=("res_a", "res_a_wsame", "vgg_a"),
        index=7,
        true_label=y,
        classes=CLASSES,
        coords=plane.coords,
        labels=plane.labels,
        unit=plane.unit,
        image=(255 * x).to(torch.uint8),
        all_right=True,
        provenance=PROVENANCE,
        environment=ENVIRONMENT,
    )


def transfer_results() -> TransferResults:
    return TransferResults(DATASET, {s: source_transfer(prediction_table(s, seed)) for seed, s in enumerate(SOURCES)})


def cpu_sized_results() -> tuple[TransferResults, DistanceResults]:
    """Results of the cpu profile's size: 2 sources, 20 targets each, 4 eps."""
    tables = {s: prediction_table(s, seed, n=400, zoo=CPU_ZOO) for seed, s in enumerate(CPU_SOURCES)}
    transfer = TransferResults(DATASET, {s: source_transfer(t) for s, t in tables.items()})
    return transfer, distance_results(n=40, zoo=CPU_ZOO, sources_=CPU_SOURCES)


def zoo_conditions(outside: tuple[str, ...] = ()) -> ZooConditions:
    """A ``conditions`` result for ZOO: every model 90% accurate and within the rule, but ``outside``."""
    models = {m: ModelCondition(spec["arch"], 0.7 if m in outside else 0.9, 500, 0.2 if m in outside else 0.0,
                                m not in outside) for m, spec in ZOO.items()}  # fmt: skip
    return ZooConditions(DATASET, "a test rule", 0.05, {"resnet10_w8": 0.9, "vgg11_bn_w8": 0.9}, "resnet10_w8", models)


def write_inputs(folder: Path) -> dict[str, Path]:
    """transfer.json, distance.json, plane.pt and conditions.json in ``folder``, in the stages' formats."""
    paths = {"transfer": folder / "transfer.json", "distance": folder / "distance.json", "plane": folder / "plane.pt",
             "conditions": folder / "conditions.json"}  # fmt: skip
    transfer_results().save(paths["transfer"])
    distance_results().save(paths["distance"])
    decision_planes().save(paths["plane"])
    zoo_conditions().save(paths["conditions"])
    return paths


def run_figures(inputs: dict[str, Path], out_dir: Path, eps: float = 1.0) -> Path:
    figures.run(
        figures.Config(figure_eps=eps, out_dir=out_dir, **{k: inputs[k] for k in ("transfer", "distance", "plane")})
    )
    return out_dir


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return write_inputs(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def out(inputs, tmp_path_factory) -> Path:
    return run_figures(inputs, tmp_path_factory.mktemp("figures"))


@pytest.fixture(scope="module")
def results(inputs) -> tuple[TransferResults, DistanceResults]:
    return TransferResults.load(inputs["transfer"]), DistanceResults.load(inputs["distance"])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def same_value(cell: str, value) -> bool:
    """A CSV cell against the analysis value it was written from (None <-> empty)."""
    if value is None or cell == "":
        return value is None and cell == ""
    return float(cell) == value if isinstance(value, (int, float)) else cell == str(value)


def test_records_round_trip_through_their_files(inputs, results):
    transfer, distance = results
    assert transfer == transfer_results() and distance == distance_results()
    plane = DecisionPlanes.load(inputs["plane"])
    assert torch.equal(plane.labels, decision_planes().labels) and plane.provenance == PROVENANCE


def test_pngs_are_valid_images(out):
    for name in ("fig3.png", "fig4.png", "fig5.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG"
            im.verify()
        with Image.open(out / name) as im:
            assert im.width >= 800 and im.height >= 600


def test_fig3_csv_equals_transfer_rows_sorted_by_dist(out, results):
    transfer, distance = results
    rows = read_csv(out / "fig3.csv")
    expected = [
        (s, a, dataclasses.asdict(r))
        for s in transfer.sources
        for a in transfer.attack_names(s)
        for r in fig3_rows(transfer, distance, s, a, 1.0)
    ]
    assert len(rows) == len(expected) == 2 * 4 * 5
    for row, (source, attack, r) in zip(rows, expected, strict=True):
        assert (row["source"], row["attack"], row["target"], row["relation"]) == (
            source,
            attack,
            r["target"],
            r["relation"],
        )
        assert float(row["eps"]) == 1.0
        for column in [
            "n",
            "dist",
            "dist_ci_low",
            "dist_ci_high",
            "dist_censored",
            "target_class_hit",
            *(f"{k}{s}" for k in RATIOS for s in ("", "_ci_low", "_ci_high")),
        ]:
            assert same_value(row[column], r[column]), (source, attack, r["target"], column)
    for source in SOURCES:
        for attack in transfer.attack_names(source):
            dists = [float(row["dist"]) for row in rows if (row["source"], row["attack"]) == (source, attack)]
            assert dists == sorted(dists, reverse=True)  # the most similar F2 on the right
    # the pair whose target never flips comes first, every image censored
    assert rows[0]["target"] == "vgg_a_wsame" and float(rows[0]["dist_censored"]) == 1.0


def test_fig5_csv_equals_eps_curves(out, results):
    transfer, _ = results
    rows = read_csv(out / "fig5.csv")
    expected = [
        (s, a, t, i, c)
        for s in transfer.sources
        for a in transfer.attack_names(s)
        for t, c in eps_curves(transfer, s, a).items()
        for i in range(len(c.eps))
    ]
    assert len(rows) == len(expected) == 2 * 4 * 5 * len(EPS)
    for row, (source, attack, target, i, c) in zip(rows, expected, strict=True):
        assert (row["source"], row["attack"], row["target"]) == (source, attack, target)
        assert row["relation"] == transfer.info(source, target).relation
        assert row["group"] == figures.group(transfer, source, target)  # its line's colour, in DVC's plot too
        assert float(row["eps"]) == c.eps[i]
        assert all(same_value(row[k], getattr(c, k)[i]) for k in RATIOS)
        result = transfer.result(source, attack, c.eps[i], target)
        for kind in ("same", "different"):  # each point's 95% Wilson interval, drawn in Fig. 5
            p = getattr(result, kind)
            assert same_value(row[f"{kind}_ci_low"], p.ci_low) and same_value(row[f"{kind}_ci_high"], p.ci_high)
    assert any(row["same"] == "" for row in rows)  # the empty D'_F1 is kept, as empty cells


def test_fig5_groups_each_target_by_its_relation_to_the_source(results):
    transfer, _ = results
    groups = {t: figures.group(transfer, "res_a", t) for t in transfer.targets("res_a")}
    assert groups == {"res_a@3": "early version", "res_a_wsame": "w:same", "res_a_wdiff": "w:diff",
                      "vgg_a": "other family", "vgg_a_wsame": "other family"}  # fmt: skip


@pytest.fixture(scope="module")
def drawn(inputs, tmp_path_factory) -> dict[str, Figure]:
    """The matplotlib figures the stage draws, by file name, as they are saved."""
    found = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", lambda fig, path: found.setdefault(Path(path).name, fig))
        run_figures(inputs, tmp_path_factory.mktemp("drawn"))
    return found


def _texts(fig: Figure) -> list:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


@pytest.fixture(scope="module")
def drawn_cpu(tmp_path_factory) -> dict[str, Figure]:
    """Figs. 3 and 5 of results the size of the cpu profile's (20 targets per source), as saved."""
    folder = tmp_path_factory.mktemp("cpu_sized")
    transfer, distance = cpu_sized_results()
    transfer.save(folder / "transfer.json")
    distance.save(folder / "distance.json")
    decision_planes().save(folder / "plane.pt")
    found = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", lambda fig, path: found.setdefault(Path(path).name, fig))
        figures.run(figures.Config(transfer=folder / "transfer.json", distance=folder / "distance.json",
                                   plane=folder / "plane.pt", out_dir=folder / "figures"))  # fmt: skip
    return found


def _smallest_text_shown(fig: Figure) -> float:
    """The figure's smallest text in points as the report shows it: at most CONTENT_WIDTH_PX
    wide (CSS px, 96 per inch), never enlarged."""
    scale = min(1.0, report.CONTENT_WIDTH_PX / (fig.get_figwidth() * plots.DPI))  # displayed px per image px
    return min(t.get_fontsize() for t in _texts(fig)) * plots.DPI / 96 * scale


@pytest.mark.parametrize("size", ["small", "cpu"])
@pytest.mark.parametrize("name", ["fig3.png", "fig4.png", "fig5.png"])
def test_figures_keep_8_pt_text_at_the_reports_width(drawn, drawn_cpu, name, size):
    """Shrunk to the report's width, the smallest text of every figure is still 8 pt, with 6
    targets per source and with the cpu profile's 20 (Fig. 3 was once shrunk to 4 px text)."""
    fig = (drawn if size == "small" else drawn_cpu)[name]
    assert _smallest_text_shown(fig) >= 8, (name, size, fig.get_figwidth())


@pytest.mark.parametrize("n_models", [6, 7])
def test_fig4_of_many_models_keeps_8_pt_text_at_the_reports_width_and_its_titles_apart(inputs, n_models, monkeypatch):
    """The paper's Fig. 4 has 6 models; more get narrower panels, not smaller text."""
    data = figures.fig4_data(DecisionPlanes.load(inputs["plane"]))
    names = [f"resnet10_w8_wdiff_{i}" for i in range(n_models)]  # as long as the zoo's names
    many = dataclasses.replace(data, models=names, labels=[data.labels[i % 3] for i in range(n_models)],
                               regions={m: data.regions["vgg_a"] for m in names[1:]})  # fmt: skip
    found = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: found.setdefault("fig", fig))
    plots.fig4(many, "unused.png")
    fig = found["fig"]
    scale = min(1.0, report.CONTENT_WIDTH_PX / (fig.get_figwidth() * plots.DPI))
    assert min(t.get_fontsize() for t in _texts(fig)) * plots.DPI / 96 * scale >= 8
    assert _collisions(fig) == []


def _collisions(fig: Figure) -> list:
    """Pairs of tick labels of one axis, or of panel titles, that overlap once drawn."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    groups = [
        [
            (t.get_text(), t.get_window_extent(renderer))
            for t in axis.get_ticklabels()
            if t.get_visible() and t.get_text()
        ]
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
    ]
    groups.append([(ax.get_title(), ax.title.get_window_extent(renderer)) for ax in fig.axes if ax.get_title()])
    return [(a, b) for group in groups for (a, box_a), (b, box_b) in itertools.combinations(group, 2)
            if box_a.overlaps(box_b)]  # fmt: skip


@pytest.mark.parametrize("size", ["small", "cpu"])
@pytest.mark.parametrize("name", ["fig3.png", "fig4.png", "fig5.png"])
def test_tick_labels_and_titles_do_not_collide(drawn, drawn_cpu, name, size):
    assert _collisions((drawn if size == "small" else drawn_cpu)[name]) == []


@pytest.mark.parametrize("size", ["small", "cpu"])
def test_fig3_names_each_target_once_unturned_and_gives_each_attacks_count_once(drawn, drawn_cpu, results, size):
    """Fig. 3's target names are horizontal tick labels of the first panel of each source, and
    |D'_F1| (the same for every F2 of an attack) is in the attack's title, not above every bar."""
    fig = (drawn if size == "small" else drawn_cpu)["fig3.png"]
    labelled = [ax for ax in fig.axes if any(t.get_text() for t in ax.get_yticklabels())]
    assert len(labelled) == 2  # one per source
    for ax in labelled:
        assert all(t.get_rotation() == 0 for t in ax.get_xticklabels() + ax.get_yticklabels())
        assert len(ax.get_yticklabels()) == (5 if size == "small" else 20)
    titles = [ax.get_title() for ax in fig.axes if "|D'_F1|" in ax.get_title()]
    assert len(titles) == 2 * 4
    counts = [t for t in _texts(fig) if t.get_text().strip().isdigit() and t not in
              {label for ax in fig.axes for label in ax.get_xticklabels() + ax.get_yticklabels()}]  # fmt: skip
    assert counts == []
    if size == "small":
        transfer, _ = results
        n = transfer.result("res_a", "pgd-untargeted", 1.0, "res_a_wsame").n
        assert any(t == f"pgd-untargeted\n|D'_F1| = {n}" for t in titles)


def test_fig5_points_sit_within_5_percent_of_their_eps(drawn_cpu):
    """Fig. 5's lines are nudged apart so that their intervals show, but no point lies nearer
    another eps's grid line than its own: within +-5%, where the eps are a factor 2 apart."""
    fig = drawn_cpu["fig5.png"]
    for ax in fig.axes:
        ticks = ax.get_xticks()
        for line in ax.get_lines():
            for x in line.get_xdata():
                nearest = min(ticks, key=lambda t: abs(np.log(x / t)))
                assert abs(x / nearest - 1) <= plots.NUDGE + 1e-9


def test_fig4s_four_regions_have_four_distinct_colours():
    colours = [to_rgb(plots.REGION_COLOURS[k]) for k in range(len(REGION_NAMES))]
    gaps = [sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5 for a, b in itertools.combinations(colours, 2)]
    assert min(gaps) > 0.2  # in RGB on [0, 1]; the old cream and light grey were 0.11 apart


def test_correlations_csv_equals_analysis(out, results):
    transfer, distance = results
    rows = read_csv(out / "correlations.csv")
    expected = correlations(transfer, distance, 1.0)
    assert [(r["source"], r["attack"]) for r in rows] == [(c.source, c.attack) for c in expected]
    for row, c in zip(rows, expected, strict=True):
        assert int(row["n_targets"]) == c.n_targets
        for name in figures.CORRELATIONS:
            r = getattr(c, name)
            assert same_value(row[f"r_{name}"], r.r)
            assert same_value(row[f"r_{name}_ci_low"], r.ci_low) and same_value(row[f"r_{name}_ci_high"], r.ci_high)


def test_fig4_json_holds_the_planes_and_regions(out, inputs):
    plane = DecisionPlanes.load(inputs["plane"])
    data = json.loads((out / "fig4.json").read_text())
    assert data["models"] == list(plane.models) and data["labels"] == plane.labels.tolist()
    assert data["coords"] == plane.coords.tolist() and data["unit"] == pytest.approx(0.05)
    assert (data["true_label"], data["image_index"], data["dataset"]) == (plane.true_label, 7, DATASET)
    assert set(data["regions"]) == {"res_a_wsame", "vgg_a"}
    for i, model in enumerate(plane.models[1:], 1):
        assert data["regions"][model] == transfer_regions(plane.labels[0], plane.labels[i], plane.true_label).tolist()
    assert len({k for grid in data["labels"] for row in grid for k in row}) > 1  # the plane is not one flat class


def test_outputs_are_byte_identical_across_runs(out, inputs, tmp_path):
    again = run_figures(inputs, tmp_path / "again")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert names == ["correlations.csv", "fig3.csv", "fig3.png", "fig4.json", "fig4.png", "fig5.csv", "fig5.png"]
    for name in names:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_figure_eps_not_attacked_is_a_clear_error(inputs, tmp_path):
    with pytest.raises(ValueError, match=r"figure_eps 0.7 .*attacked: 0.5, 1, 2"):
        run_figures(inputs, tmp_path / "figs", eps=0.7)
    assert not (tmp_path / "figs").exists()


def test_results_on_different_datasets_are_refused(inputs, tmp_path):
    dataclasses.replace(distance_results(), dataset="CIFAR-10 (official)").save(tmp_path / "distance.json")
    with pytest.raises(ValueError, match="CIFAR-10 \\(official\\)"):
        run_figures({**inputs, "distance": tmp_path / "distance.json"}, tmp_path / "figs")
