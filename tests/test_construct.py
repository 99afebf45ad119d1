"""Section 4's stages on a tiny dataset and zoo: the non-robust set (`construct`), the grid
training on it (`train-grid`) and Tables 1-2 (`tables`)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from classaware.checkpoint import load_model, save_checkpoint
from classaware.data import Cifar10, Provenance, load_canonical, to_float
from classaware.metrics import Proportion, difference_interval
from classaware.models import build
from classaware.schema import ConstructMetrics, ControlRow, GridMetrics, NonRobustSet, Table1, Table2, Table2Row
from classaware.stages import construct, tables, train_grid
from classaware.training import Schedule, accuracy

N_PER_CLASS = 12


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A canonical file of 120 random training images and two small checkpoints."""
    root = tmp_path_factory.mktemp("project")
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(N_PER_CLASS)
    x = torch.randint(0, 256, (len(y), 3, 32, 32), generator=g, dtype=torch.uint8)
    Cifar10(x, y, x[:20].clone(), y[:20].clone(), Provenance("toy", "", "", "", "toy")).save(root / "data.pt")
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        save_checkpoint(
            root / "models" / name / "epoch_001.pt",
            build("vgg11_bn_w8"),
            {"arch": "vgg11_bn_w8", "init_seed": seed, "data_seed": 0, "epoch": 1},
        )
    return root


def run_construct(project, out_name: str, **overrides) -> tuple[NonRobustSet, ConstructMetrics]:
    args = dict(
        pair="a+b",
        out=project / f"{out_name}.pt",
        results=project / f"{out_name}.json",
        eps=0.5,
        alpha=0.1,
        steps=3,
        val_size=20,
        batch_size=64,
        data=project / "data.pt",
        models_dir=project / "models",
        device="cpu",
    )
    cfg = construct.Config(**{**args, **overrides})
    construct.run(cfg)
    return NonRobustSet.load(cfg.out), ConstructMetrics.load(cfg.results)


@pytest.fixture(scope="module")
def built(project):
    return run_construct(project, "set", probe_eps=(0.1,), probe_size=10)


def test_relabelled_sets_line_up_with_x_prime(built):
    s, _ = built
    n = len(s.indices)
    assert s.x.shape == (n, 3, 32, 32) and s.x.dtype == torch.float32  # lossless, not 8-bit
    assert s.y.shape == s.y1.shape == s.y2.shape == (n,)
    assert set(s.indices.tolist()).isdisjoint(s.val_indices.tolist())
    assert len(s.val_indices) == 20 and n == 10 * N_PER_CLASS - 20
    assert s.labels("y1") is s.y1 and s.labels("y2") is s.y2


def test_x_prime_stays_in_the_eps_ball_and_the_image_range(project, built):
    s, _ = built
    from classaware.data import load_canonical

    x = to_float(load_canonical(project / "data.pt").train_x[s.indices])
    assert torch.equal(s.y, load_canonical(project / "data.pt").train_y[s.indices])
    assert (s.x - x).flatten(1).norm(dim=1).max() <= s.eps + 1e-5
    assert s.x.min() >= 0 and s.x.max() <= 1


def test_target_classes_are_drawn_over_all_ten_including_the_true_one(built):
    s, _ = built
    for t in (s.y1, s.y2):
        assert set(t.tolist()) == set(range(10))
    assert (s.y1 == s.y).any() and (s.y1 == s.y2).any()


def test_table1_row_and_probes_are_proportions_of_the_set(built):
    s, m = built
    assert m.rates.both.n == len(s.y)
    assert m.rates.both.count <= min(m.rates.f1_hits_y1.count, m.rates.f2_hits_y2.count)
    assert m.probes["0.1"].n_images == 10 and m.probes["0.1"].rates.both.n == 10


@settings(max_examples=5)
@given(seed=st.integers(0, 2**16), eps=st.sampled_from([0.25, 1.0]))
def test_n_targeted_with_one_model_is_torchattacks_targeted_pgd_l2(seed, eps):
    """Eq. 5 with N = 1 through the stage's batched attack, against an independent
    implementation: torchattacks' targeted PGDL2 (no random start), with the paper's step."""
    import torchattacks

    torch.manual_seed(seed)
    model = build("vgg11_bn_w8").eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 3, 32, 32, generator=g)
    t = torch.randint(0, 10, (6,), generator=g)
    ours = construct.n_targeted_examples([model], x, [t], eps, 0.1, 4, "l2", batch_size=4, device=torch.device("cpu"))
    atk = torchattacks.PGDL2(model, eps=eps, alpha=0.1, steps=4, random_start=False)
    atk.set_mode_targeted_by_label(quiet=True)
    assert (ours - atk(x, t)).abs().max() < 1e-5


def test_bad_pair_and_budgets_are_refused_before_any_compute(project):
    with pytest.raises(ValueError, match="F1\\+F2"):
        construct.Config(pair="a", out=project / "x.pt", results=project / "x.json")
    with pytest.raises(ValueError, match="eps"):
        construct.Config(pair="a+b", out=project / "x.pt", results=project / "x.json", eps=-1.0)


def test_train_grid_selects_on_held_out_clean_images_and_tables_report_it(project, built):
    common = dict(
        arch="vgg11_bn_w8",
        schedule=Schedule(epochs=1, milestones=()),
        grid_lr=(0.01, 0.05),
        grid_batch_size=(32,),
        grid_augment=("none",),
        eval_size=20,
        data=project / "data.pt",
        device="cpu",
    )
    nonrobust_dir, train_dir = project / "metrics_nr", project / "metrics_train"
    (nonrobust_dir).mkdir()
    (nonrobust_dir / "a+b.json").write_text((project / "set.json").read_text())
    for labelling in ("y1", "y2"):
        for clean, folder in ((False, "a+b"), (True, "control")):
            train_grid.run(
                train_grid.Config(
                    labelling=labelling,
                    train_set=project / "set.pt",
                    clean=clean,
                    out=project / "nr" / folder / labelling,
                    results=train_dir / folder / f"{labelling}-vgg11_bn_w8.json",
                    **common,
                )
            )
    train_grid.run(
        train_grid.Config(
            labelling="y",
            val_size=20,
            out=project / "nr" / "base",
            results=train_dir / "baseline" / "vgg11_bn_w8.json",
            **common,
        )
    )
    m = GridMetrics.load(train_dir / "a+b" / "y1-vgg11_bn_w8.json")
    assert [c.cell for c in m.cells] == ["lr0.01-bs32-none", "lr0.05-bs32-none"]
    best = max(m.cells, key=lambda c: c.val_acc)
    assert m.selected == best.cell and m.test_acc == best.test_acc and m.n_val == 20
    assert all((project / "nr" / "a+b" / "y1" / c.cell / "epoch_001.pt").is_file() for c in m.cells)
    s = NonRobustSet.load(project / "set.pt")
    control = GridMetrics.load(train_dir / "control" / "y1-vgg11_bn_w8.json")
    assert (m.clean, control.clean) == (False, True) and m.labels_digest == control.labels_digest == s.labels_digest(
        "y1"
    )
    assert s.labels_digest("y1") != s.labels_digest("y2")
    # the control trained on the clean images X: its fit is its accuracy on (X, Y1), the set's on (X', Y1)
    control_model, _ = load_model(project / "nr" / "control" / "y1" / control.selected / "epoch_001.pt")
    data = load_canonical(project / "data.pt")
    clean_fit = accuracy(control_model, data.train_x[s.indices], s.y1)
    assert next(c.fit for c in control.cells if c.cell == control.selected) == clean_fit

    tables.run(
        tables.Config(
            pairs=("a+b",),
            archs=("vgg11_bn_w8",),
            construct_dir=nonrobust_dir,
            train_dir=train_dir,
            out_dir=project / "results",
            metrics_dir=project / "metrics",
        )
    )
    t2 = Table2.load(project / "results" / "table2.json")
    headline = json.loads((project / "metrics" / "table2" / "a+b-y1-vgg11_bn_w8.json").read_text())
    assert headline == {"test_acc": t2.rows[0].test_acc}  # few columns: the gain is in tables.md and S4.2
    gain = t2.rows[0].test_acc - t2.control(t2.rows[0]).test_acc
    assert f"| {gain * 100:+.1f} [" in (project / "results" / "tables.md").read_text()
    assert t2.rows[0].n_test == 20 and t2.control(t2.rows[0]).test_acc == control.test_acc
    assert sorted(str(p.relative_to(project / "metrics")) for p in (project / "metrics").rglob("*.json")) == [
        "table1/a+b.json", "table2/a+b-y1-vgg11_bn_w8.json", "table2/a+b-y2-vgg11_bn_w8.json",
        "table2/control-y1-vgg11_bn_w8.json", "table2/control-y2-vgg11_bn_w8.json", "table2/original-vgg11_bn_w8.json",
    ]  # each table in a folder of its own: `dvc metrics show metrics/tables/table1` fits 100 columns  # fmt: skip
    assert [(r.labelling, r.test_acc) for r in t2.rows] == [
        (labelling, GridMetrics.load(train_dir / "a+b" / f"{labelling}-vgg11_bn_w8.json").test_acc)
        for labelling in ("y1", "y2")
    ]
    assert t2.rows[0].paper == 51.3 and t2.baseline[0].paper == 88.0  # matched by position
    assert (
        Table1.load(project / "results" / "table1.json").rows[0].rates
        == ConstructMetrics.load(nonrobust_dir / "a+b.json").rates
    )
    assert "chance: 10%" in (project / "results" / "tables.md").read_text()

    # a control made from other images or labels than the set is refused, naming both
    other = train_dir / "control" / "y2-vgg11_bn_w8.json"
    (train_dir / "control" / "y1-vgg11_bn_w8.json").write_text(other.read_text())
    with pytest.raises(ValueError, match="the y1 set of a\\+b and its control .* label other images or labels"):
        tables.build_tables(tables.Config(pairs=("a+b",), archs=("vgg11_bn_w8",), construct_dir=nonrobust_dir,
                                          train_dir=train_dir, out_dir=project / "results", metrics_dir=project / "metrics"))  # fmt: skip


def test_train_grid_needs_a_set_for_non_robust_labellings(project):
    with pytest.raises(ValueError, match="train_set"):
        train_grid.Config(arch="vgg11_bn_w8", labelling="y1", out=project / "o", results=project / "m.json")
    with pytest.raises(ValueError, match="grid_augment must be one of standard, none; got 'mixup'"):
        train_grid.Config(
            arch="vgg11_bn_w8", labelling="y", out=project / "o", results=project / "m.json", grid_augment=("mixup",)
        )


def test_table2_sets_each_row_beside_its_control_with_the_gain_and_its_interval():
    rows = (
        Table2Row("a+b", "y1", "m", 0.30, 1000, None, 0.99, "c", None),
        Table2Row("a+b", "y2", "m", 0.12, 1000, None, 0.98, "c", None),
    )
    controls = (ControlRow("y1", "m", 0.13, 1000, 0.95, "c"), ControlRow("y2", "m", 0.13, 1000, 0.96, "c"))
    md = tables.markdown(Table1("d", ()), Table2("d", 0.1, rows, controls, ())).splitlines()
    # 0.30 - 0.13 = +17.0 points; Newcombe's interval from the two Wilson intervals over 1,000 images
    low, high = difference_interval(Proportion.of(300, 1000), Proportion.of(130, 1000))
    assert any(f"| y1 | m | 30.0 (fit 99.0) | 13.0 (fit 95.0) | +17.0 [{low * 100:+.1f}, {high * 100:+.1f}] |" in line
               for line in md)  # fmt: skip
    assert any("| y2 | m | 12.0 (fit 98.0) | 13.0 (fit 96.0) | -1.0 [" in line for line in md)
    with pytest.raises(ValueError, match="no control for labelling y2 and learner m"):
        tables.markdown(Table1("d", ()), Table2("d", 0.1, rows, controls[:1], ()))


def test_table2_with_several_learners_sets_each_beside_its_own_control():
    """The smoke pipeline trains one learner architecture; quick, cpu and paper train several,
    each with its own matched control per labelling."""
    rows = (
        Table2Row("a+b", "y1", "m", 0.30, 1000, None, 0.99, "c", None),
        Table2Row("a+b", "y1", "n", 0.25, 1000, None, 0.97, "c", None),
    )
    controls = (ControlRow("y1", "m", 0.13, 1000, 0.95, "c"), ControlRow("y1", "n", 0.20, 1000, 0.90, "c"))
    md = tables.markdown(Table1("d", ()), Table2("d", 0.1, rows, controls, ())).splitlines()
    assert any("| y1 | m | 30.0 (fit 99.0) | 13.0 (fit 95.0) | +17.0 [" in line for line in md)
    assert any("| y1 | n | 25.0 (fit 97.0) | 20.0 (fit 90.0) | +5.0 [" in line for line in md)
