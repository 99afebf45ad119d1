from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from classaware import cli, models, training
from classaware.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from classaware.files import load_tensors, save_json, save_tensors
from classaware.stages import train_grid
from classaware.training import SECTION4_SCHEDULE, Recipe, TrainMetrics, TrainSpec, augment, train

SMALL = Recipe(epochs=3, lr=0.05, milestones=(2,), batch_size=32)


def run(tiny, out, arch="resnet10_w8", init_seed=0, data_seed=0, recipe=SMALL, **kwargs):
    return train(TrainSpec(arch, init_seed, data_seed, recipe), *tiny, out, **kwargs)


def weights(path: Path) -> dict:
    return read_checkpoint(path)["state_dict"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- recipe
@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"epochs": -3, "milestones": ()}, "epochs must be >= 1, got -3"),
        ({"lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"lr": -0.1}, "lr must be > 0, got -0.1"),
        ({"gamma": 0.0}, "gamma must be > 0, got 0.0"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"momentum": -0.1}, "momentum must be >= 0"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ({"crop_padding": -1}, "crop_padding must be >= 0"),
        ({"milestones": (60, 40)}, "milestones must be increasing"),
        ({"milestones": (0,)}, "milestones"),
        ({"milestones": (100,)}, "milestones"),
        ({"epochs": 10, "milestones": (50,)}, "milestones"),
    ],
)
def test_recipe_rejects_bad_values(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        Recipe(**kwargs)


def test_recipe_milestones_become_a_tuple_of_ints():
    assert Recipe(epochs=10, milestones=[3, 7]).milestones == (3, 7)


def test_the_defaults_are_the_papers_schedules():
    sec3 = Recipe()  # section 3.2: lr 0.01, x0.1 at epoch 50 of 100
    assert (sec3.epochs, sec3.momentum, sec3.weight_decay) == (100, 0.9, 5e-4)
    assert [sec3.lr_at(e) for e in (0, 49)] == [0.01, 0.01]
    assert [sec3.lr_at(e) for e in (50, 99)] == pytest.approx([0.001, 0.001])
    sec4 = Recipe(**dataclasses.asdict(SECTION4_SCHEDULE), lr=0.1)  # section 4.2: x0.1 at 100 and 150 of 200
    assert sec4.epochs == 200 and (sec4.momentum, sec4.weight_decay) == (0.9, 5e-4)
    assert [sec4.lr_at(e) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert (
        train_grid.Config(arch="resnet18", labelling="y", out=Path("o"), results=Path("m.json")).schedule
        == SECTION4_SCHEDULE
    )


@given(
    st.integers(2, 30).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(1, n - 1)))), st.floats(0.01, 1.0)
)
def test_lr_at_counts_the_milestones_passed(n_and_milestones, gamma):
    epochs, milestones = n_and_milestones
    r = Recipe(epochs=epochs, lr=0.5, milestones=tuple(sorted(milestones)), gamma=gamma)
    for e in range(epochs):
        assert r.lr_at(e) == pytest.approx(0.5 * gamma ** sum(m <= e for m in milestones))


# ----------------------------------------------------------------------------- augmentation
@st.composite
def augment_cases(draw):
    b, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    padding = draw(st.integers(0, 4))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randint(1, 256, (b, 3, h, w), generator=g).float() / 255  # no zero pixel in the image
    shift = torch.randint(0, 2 * padding + 1, (b, 2), generator=g)
    flip = torch.rand(b, generator=g) < 0.5
    return x, shift, flip, padding


@given(augment_cases())
def test_augment_is_a_padded_crop_then_mirror(case):
    x, shift, flip, p = case
    out = augment(x, shift, flip, p)
    padded = F.pad(x, (p,) * 4)
    h, w = x.shape[2:]
    for i in range(len(x)):
        dy, dx = shift[i].tolist()
        want = padded[i, :, dy : dy + h, dx : dx + w]
        assert torch.equal(out[i], want.flip(2) if flip[i] else want)


@given(augment_cases())
def test_augment_pixels_are_padding_zeros_or_input_pixels(case):
    x, shift, flip, p = case
    out = augment(x, shift, flip, p)
    assert out.shape == x.shape
    for i in range(len(x)):
        values = set(x[i].flatten().tolist()) | {0.0}
        assert set(out[i].flatten().tolist()) <= values
        dy, dx = (shift[i] - p).abs().tolist()
        h, w = x.shape[2:]
        zeros = 3 * (h * w - max(h - dy, 0) * max(w - dx, 0))
        assert int((out[i] == 0).sum()) == zeros


@given(augment_cases())
def test_augment_without_padding_or_flip_is_the_identity(case):
    x, shift, flip, p = case
    no_flip = torch.zeros_like(flip)
    assert torch.equal(augment(x, torch.zeros_like(shift), no_flip, 0), x)
    assert torch.equal(augment(x, torch.full_like(shift, p), no_flip, p), x)  # centred crop


@given(augment_cases())
def test_augment_flip_is_an_exact_mirror(case):
    x, shift, _, p = case
    flipped = augment(x, torch.zeros_like(shift), torch.ones(len(x), dtype=torch.bool), 0)
    assert torch.equal(flipped, x.flip(3))
    assert torch.equal(flipped[..., 0], x[..., -1])


# ----------------------------------------------------------------------------- seeds
class _Built(Exception):
    pass


def initial_weights(arch: str, init_seed: int, data_seed: int) -> dict:
    """The weights train() starts from, caught as it builds the model (then it is stopped)."""
    caught = {}

    def spy(name):
        model = models.build(name)
        caught.update({k: v.clone() for k, v in model.state_dict().items()})
        raise _Built

    x, y = torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        mp.setattr(training, "build", spy)
        torch.manual_seed(data_seed)  # whatever the global RNG held before must not matter
        with pytest.raises(_Built):
            train(TrainSpec(arch, init_seed, data_seed, SMALL), x, y, x, y, Path(tmp) / "out")
    return caught


seeds = st.integers(0, 2**32 - 1)


@given(seeds, seeds, seeds)
def test_initial_weights_depend_on_init_seed_only(init_seed, data_a, data_b):
    assert same_weights(
        initial_weights("resnet10_w8", init_seed, data_a), initial_weights("resnet10_w8", init_seed, data_b)
    )


@given(seeds, seeds, seeds)
def test_different_init_seeds_give_different_initial_weights(a, b, data_seed):
    if a == b:
        b = a + 1
    assert not same_weights(initial_weights("resnet10_w8", a, data_seed), initial_weights("resnet10_w8", b, data_seed))


def test_epoch_seeds_differ_between_epochs_and_data_seeds():
    got = {training.epoch_seed(d, e) for d in range(3) for e in range(3)}
    assert len(got) == 9
    assert training.epoch_seed(7, 3) == training.epoch_seed(7, 3)


@pytest.mark.parametrize("arch", ["resnet10_w8", "vgg11_bn_w8"])
def test_same_seeds_train_bit_identical_weights(tiny, tmp_path, arch):
    recipe = Recipe(epochs=2, lr=0.05, milestones=(1,), batch_size=32)
    run(tiny, tmp_path / "a", arch, 1, 2, recipe)
    run(tiny, tmp_path / "b", arch, 1, 2, recipe)
    run(tiny, tmp_path / "c", arch, 1, 3, recipe)
    a, b, c = (weights(tmp_path / d / "epoch_002.pt") for d in "abc")
    assert same_weights(a, b)
    assert not same_weights(a, c)  # data order, augmentation and dropout follow data_seed


def test_training_changes_the_weights_and_logs_every_epoch(tiny, tmp_path):
    model = run(tiny, tmp_path / "out")
    records = read_checkpoint(tmp_path / "out" / "epoch_003.pt")["meta"]["history"]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["lr"] for r in records] == pytest.approx([0.05, 0.05, 0.005])
    assert all(0 <= r["train_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r["loss"] > 0 for r in records)
    assert not model.training
    start = initial_weights("resnet10_w8", 0, 0)
    assert not same_weights(start, weights(tmp_path / "out" / "epoch_003.pt"))


# ----------------------------------------------------------------------------- resume
class _Killed(Exception):
    pass


def kill_during_epoch(monkeypatch, epoch: int) -> None:
    """Make training die inside 1-based ``epoch``, as a kill would: after epoch - 1 finished."""
    calls = []
    real = training.train_epoch

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise _Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", dying)


@pytest.mark.parametrize("arch, killed_in", [("resnet10_w8", 2), ("resnet10_w8", 3), ("vgg11_bn_w8", 2)])
def test_resumed_training_writes_the_same_bytes_as_uninterrupted_training(tiny, tmp_path, monkeypatch, arch, killed_in):
    run(tiny, tmp_path / "whole", arch, save_epochs=(1, 2))
    out = tmp_path / "resumed"
    with monkeypatch.context() as m:
        kill_during_epoch(m, killed_in)
        with pytest.raises(_Killed):
            run(tiny, out, arch, save_epochs=(1, 2))
    partial = tmp_path / "resumed.partial"
    assert not out.exists() and (partial / "state.pt").is_file()
    run(tiny, out, arch, save_epochs=(1, 2))
    assert not partial.exists()
    assert sorted(p.name for p in out.iterdir()) == ["epoch_001.pt", "epoch_002.pt", "epoch_003.pt"]
    for name in ("epoch_001.pt", "epoch_002.pt", "epoch_003.pt"):  # so DVC hashes agree too
        assert (tmp_path / "whole" / name).read_bytes() == (out / name).read_bytes(), name


def test_a_partial_run_of_another_spec_is_discarded(tiny, tmp_path, monkeypatch):
    run(tiny, tmp_path / "fresh", data_seed=1)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        kill_during_epoch(m, 2)
        with pytest.raises(_Killed):
            run(tiny, out, data_seed=5)
    run(tiny, out, data_seed=1)
    assert sorted(p.name for p in out.iterdir()) == ["epoch_003.pt"]
    assert (tmp_path / "fresh" / "epoch_003.pt").read_bytes() == (out / "epoch_003.pt").read_bytes()


def test_a_finished_run_replaces_only_an_earlier_runs_checkpoints(tiny, tmp_path):
    out = tmp_path / "out"
    run(tiny, out, save_epochs=(1,))
    run(tiny, out, data_seed=1)
    assert sorted(p.name for p in out.iterdir()) == ["epoch_003.pt"]
    (out / "NOTES.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that are not classaware checkpoints \(NOTES.txt\)"):
        run(tiny, out)
    assert (out / "NOTES.txt").read_text() == "mine" and (out / "epoch_003.pt").is_file()


# ----------------------------------------------------------------------------- checkpoints
def test_save_epochs_write_checkpoints_with_metadata(tiny, tmp_path):
    out = tmp_path / "m"
    model = run(tiny, out, init_seed=4, data_seed=6, save_epochs=(1,), meta={"data": {"md5": "abc"}})
    assert sorted(p.name for p in out.iterdir()) == ["epoch_001.pt", "epoch_003.pt"]
    for epoch in (1, 3):
        meta = read_checkpoint(out / f"epoch_{epoch:03d}.pt", "resnet10_w8")["meta"]
        assert (meta["arch"], meta["init_seed"], meta["data_seed"], meta["epoch"]) == ("resnet10_w8", 4, 6, epoch)
        assert Recipe(**meta["recipe"]) == SMALL  # meta is stored as JSON: tuples come back as lists
        assert meta["data"] == {"md5": "abc"} and meta["n_train"] == 64
        assert [h["epoch"] for h in meta["history"]] == list(range(1, epoch + 1))
    loaded, meta = load_model(out / "epoch_003.pt", "resnet10_w8")
    assert not loaded.training
    assert same_weights(loaded.state_dict(), {k: v.cpu() for k, v in model.state_dict().items()})
    x = tiny[2].float() / 255
    assert torch.equal(models.predict(loaded, x), models.predict(model, x))
    with pytest.raises(CheckpointError, match="holds a 'resnet10_w8' model, expected 'vgg11_w8'"):
        read_checkpoint(out / "epoch_001.pt", "vgg11_w8")
    with pytest.raises(CheckpointError, match="expected 'vgg11_w8'"):
        load_model(out / "epoch_001.pt", "vgg11_w8")


def test_save_epochs_outside_the_run_are_refused_before_training(tiny, tmp_path):
    with pytest.raises(ValueError, match="save_epochs"):
        run(tiny, tmp_path / "x", save_epochs=(4,))
    with pytest.raises(ValueError, match="save_epochs"):
        run(tiny, tmp_path / "x", save_epochs=(0,))
    assert not any(tmp_path.iterdir())


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path):
    torch.manual_seed(0)
    good = tmp_path / "good.pt"
    save_checkpoint(good, models.build("resnet10_w8"), {"arch": "resnet10_w8"})
    blob = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "noise.pt").write_bytes(os.urandom(1000))
    save_tensors({"format": "classaware-cifar10/1"}, tmp_path / "data.pt")
    save_tensors({"format": "classaware-checkpoint/1", "meta": {}, "state_dict": {}}, tmp_path / "noarch.pt")
    for name, problem in [
        ("cut.pt", "corrupt"),
        ("noise.pt", "corrupt"),
        ("missing.pt", "does not exist"),
        ("data.pt", "not a classaware-checkpoint"),
        ("noarch.pt", "not a classaware-checkpoint"),
    ]:
        with pytest.raises(CheckpointError, match=f"{name}.*{problem}|{problem}.*{name}"):
            load_model(tmp_path / name)


def test_checkpoint_with_weights_of_another_model_is_refused(tmp_path):
    path = tmp_path / "mixed.pt"
    save_checkpoint(path, models.build("vgg11_w8"), {"arch": "resnet10_w8"})
    with pytest.raises(CheckpointError, match="do not fit a 'resnet10_w8' model"):
        load_model(path)
    with pytest.raises(ValueError, match="arch"):
        save_checkpoint(tmp_path / "x.pt", models.build("vgg11_w8"), {"epoch": 1})


# ----------------------------------------------------------------------------- artifacts
tensors = st.builds(
    lambda shape, dtype, seed: (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 50).to(dtype),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.uint8, torch.bool]),
    st.integers(0, 2**31 - 1),
)
artifacts = st.dictionaries(
    st.text(max_size=8),
    st.one_of(tensors, st.integers(), st.text(max_size=8), st.lists(tensors, max_size=2)),
    max_size=4,
)


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


@given(artifacts)
def test_save_tensors_writes_the_same_bytes_for_the_same_content(obj):
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.pt", Path(tmp) / "deeper" / "b.pt"
        save_tensors(obj, a)
        save_tensors(_clone(obj), b)
        assert a.read_bytes() == b.read_bytes()
        back = load_tensors(b)
    assert back.keys() == obj.keys()
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(back[k], v) and back[k].dtype == v.dtype
        elif not isinstance(v, list):
            assert back[k] == v


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "art.pt"
    save_tensors({"x": torch.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises((AttributeError, pickle.PicklingError)):  # a lambda cannot be pickled
        save_tensors({"x": torch.zeros(2), "bad": lambda: 0}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["art.pt"]
    with pytest.raises((AttributeError, pickle.PicklingError)):  # a lambda cannot be pickled
        save_tensors({"bad": lambda: 0}, tmp_path / "new.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["art.pt"]


@dataclasses.dataclass
class _Code:
    x: int = 1


def test_load_tensors_refuses_pickled_objects(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"obj": _Code()}, path)
    with pytest.raises(ValueError, match="code.pt"):
        load_tensors(path)


def test_save_json_is_sorted_and_stable(tmp_path):
    save_json({"b": 1, "a": [1.5, "x"]}, tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text() == '{\n  "a": [\n    1.5,\n    "x"\n  ],\n  "b": 1\n}\n'


# ----------------------------------------------------------------------------- real data
@pytest.mark.slow
@pytest.mark.smoke_run("serial")
def test_train_on_real_cifar10_beats_chance(prepared, tmp_path):
    """End to end through the CLI: resnet10_w8 on a 2,000-image class-balanced subset of the
    JPEG copy (as the smoke run's ``prepare`` stage made it, conftest.py), 6 epochs, evaluated on
    the full test set (about 0.39 here; chance is 0.10)."""
    t0 = time.perf_counter()
    metrics = tmp_path / "metrics.json"
    argv = [
        *"train --arch resnet10_w8 --init_seed 0 --data_seed 0 --out".split(),
        str(tmp_path / "m"),
        *"--data".split(),
        str(prepared),
        *"--epochs 6 --lr 0.05 --milestones 5 --batch_size 64 --train_size 2000 --results".split(),
        str(metrics),
        *"--device cpu".split(),
    ]
    assert cli.main(argv) == 0
    t1 = time.perf_counter()
    m = TrainMetrics.load(metrics)
    acc = m.test_acc["6"]
    print(
        f"\nreal-data resnet10_w8, 2000 train images, 6 epochs: test accuracy {acc:.4f} on 10000 images "
        f"({m.dataset}); train+eval {t1 - t0:.1f} s"
    )
    assert m.dataset == "CIFAR-10 (JPEG q75 copy)" and m.n_train == 2000
    assert acc > 0.30


def test_resume_states_are_written_every_few_epochs_and_at_checkpoints_and_resume_exactly(tiny, tmp_path, monkeypatch):
    assert training.state_epochs(25, (7, 25)) == {7, 10, 20}
    monkeypatch.setattr(training, "STATE_EVERY", 2)
    recipe = Recipe(epochs=4, lr=0.05, milestones=(2,), batch_size=32)
    run(tiny, tmp_path / "whole", recipe=recipe)
    written = []
    real_save = training.save_tensors
    monkeypatch.setattr(
        training, "save_tensors", lambda obj, path: (written.append(obj["epoch"]), real_save(obj, path))
    )
    with monkeypatch.context() as m:
        kill_during_epoch(m, 4)  # epochs 1-3 done; the state is the one after epoch 2
        with pytest.raises(_Killed):
            run(tiny, tmp_path / "resumed", recipe=recipe)
    assert written == [2]
    epochs = []
    real_epoch = training.train_epoch
    monkeypatch.setattr(training, "train_epoch", lambda *a, **k: (epochs.append(1), real_epoch(*a, **k))[1])
    run(tiny, tmp_path / "resumed", recipe=recipe)
    assert len(epochs) == 2 and written == [2]  # resumed after epoch 2; no state after the last epoch
    assert (tmp_path / "whole" / "epoch_004.pt").read_bytes() == (tmp_path / "resumed" / "epoch_004.pt").read_bytes()


# ----------------------------------------------------------------------------- a stale resume state is never resumed
FOUR = Recipe(epochs=4, lr=0.05, milestones=(3,), batch_size=32)


def _other_images(tiny):
    """The same number of images and labels, other ones: a subset drawn another way."""
    train_x, train_y, test_x, test_y = tiny
    return (train_x.flip(0), train_y.flip(0), test_x, test_y)


def _other_test_images(tiny):
    train_x, train_y, test_x, test_y = tiny
    return (train_x, train_y, test_x.flip(0), test_y.flip(0))


# what changes between the interrupted run and the rerun: (its keyword arguments, or the data, for the
# interrupted run and for the rerun), and the words the warning uses for it
STALE = {
    "the epochs saved (the issue's case)": ({"save_epochs": (3,)}, {"save_epochs": (2,)}, "save_epochs [3, 4] -> [2, 4]"),
    "bf16": ({"bf16": True}, {"bf16": False}, "bf16 True -> False"),
    "the training images": ({"data": _other_images}, {}, "data.train_x differs"),
    "the logged test images": ({"data": _other_test_images}, {}, "data.test_x differs"),
    "the meta stored in every checkpoint": ({"meta": {"train_size": 1}}, {"meta": {"train_size": 2}}, "meta.train_size 1 -> 2"),
    "the thread count": ({"threads": 2}, {}, "environment.threads 2 -> 1"),
    "the code": ({"code": "another version"}, {}, "code differs"),
}  # fmt: skip


def _train_with(tiny, out, kwargs: dict):
    """A 4-epoch training that saves epoch 3 (so a state is written after it) unless ``kwargs`` say otherwise."""
    kwargs = {"save_epochs": (3,), **kwargs}
    data = kwargs.pop("data", lambda t: t)(tiny)
    threads, code = kwargs.pop("threads", None), kwargs.pop("code", None)
    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        if code:
            with pytest.MonkeyPatch.context() as m:
                m.setattr(training, "code_digest", lambda: code)
                return train(TrainSpec("resnet10_w8", 0, 0, FOUR), *data, out, **kwargs)
        return train(TrainSpec("resnet10_w8", 0, 0, FOUR), *data, out, **kwargs)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("what", STALE)
def test_a_resume_state_made_with_other_settings_is_discarded_and_the_run_starts_over(
    what, tiny, tmp_path, monkeypatch, caplog
):
    """Issue 29 item 9 (detectron2#429): everything that shapes the checkpoints is in the resume
    identity; a run interrupted after its epoch-3 state, rerun with other settings, writes exactly
    what a fresh run with those settings writes, and says what differed."""
    first, second, words = STALE[what]
    _train_with(tiny, tmp_path / "fresh", second)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        kill_during_epoch(m, 4)  # epochs 1-3 done: the state after epoch 3 is written
        with pytest.raises(_Killed):
            _train_with(tiny, out, first)
    assert (tmp_path / "out.partial" / "state.pt").is_file()
    caplog.clear()
    _train_with(tiny, out, second)
    fresh = sorted(p.name for p in (tmp_path / "fresh").iterdir())
    assert sorted(p.name for p in out.iterdir()) == fresh
    for name in fresh:
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    assert any("starting over" in r.message and words in r.message for r in caplog.records), caplog.text


def test_the_same_settings_still_resume(tiny, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="classaware.training")
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        kill_during_epoch(m, 4)
        with pytest.raises(_Killed):
            _train_with(tiny, out, {"save_epochs": (3,), "meta": {"train_size": 1}})
    caplog.clear()
    _train_with(tiny, out, {"save_epochs": (3,), "meta": {"train_size": 1}})
    assert "resuming" in caplog.text and "starting over" not in caplog.text


def _canonical(path: Path, per_class: int) -> Path:
    """A canonical CIFAR-10 file of ``per_class`` random images per class and split, as `prepare` writes it."""
    from helpers_data import folder_images, write_image_folder

    archive = write_image_folder(path.with_suffix(".tar.gz"), folder_images(per_class, seed=3))
    assert cli.main(["prepare", "--archive", str(archive), "--out", str(path)]) == 0
    return path


STAGE_SIZES = {  # the train stage's options at a small size, and at the smoke profile's (profiles/smoke.yaml)
    "small": (30, "--epochs 4 --lr 0.05 --milestones 3 --batch_size 64 --train_size 200 --eval_size 50 --test_size 50"),
    "smoke": (200, "--epochs 4 --lr 0.05 --milestones 3 --batch_size 64 --train_size 2000 --eval_size 200 --test_size 500"),
}  # fmt: skip


@pytest.mark.parametrize("size", [pytest.param("small"), pytest.param("smoke", marks=pytest.mark.slow)])
def test_the_train_stage_interrupted_then_rerun_with_other_save_epochs_commits_the_new_ones(
    size, tmp_path, monkeypatch
):
    """The issue's case at the stage: `train` interrupted after its epoch-3 state with save_epochs
    [3], then run with save_epochs [2] (early_epoch 2): it used to publish epoch_003.pt and
    epoch_004.pt, so that the next stage found no epoch_002.pt."""
    per_class, options = STAGE_SIZES[size]
    data = _canonical(tmp_path / "cifar10.pt", per_class)
    argv = ["train", "--arch", "resnet10_w8", "--init_seed", "0", "--data_seed", "0", "--data", str(data),
            "--device", "cpu", *options.split()]  # fmt: skip
    models, results = tmp_path / "models" / "resnet10_w8", tmp_path / "results.json"
    with monkeypatch.context() as m:
        kill_during_epoch(m, 4)
        with pytest.raises(_Killed):
            cli.main([*argv, "--out", str(models), "--results", str(results), "--save_epochs", "3"])
    assert cli.main([*argv, "--out", str(models), "--results", str(results), "--save_epochs", "2"]) == 0
    assert sorted(p.name for p in models.iterdir()) == ["epoch_002.pt", "epoch_004.pt"]
    assert sorted(TrainMetrics.load(results).test_acc) == ["2", "4"]
    fresh = tmp_path / "fresh"
    assert cli.main([*argv, "--out", str(fresh), "--save_epochs", "2"]) == 0
    for name in ("epoch_002.pt", "epoch_004.pt"):
        assert (models / name).read_bytes() == (fresh / name).read_bytes(), name


def test_a_grid_cell_interrupted_then_rerun_with_other_logged_test_images_starts_over(tmp_path, monkeypatch):
    """train-grid resumes each cell through the same identity: its --eval_size (the test images
    each checkpoint's log holds) shapes the checkpoints, and changing it starts the cell over."""
    data = _canonical(tmp_path / "cifar10.pt", 30)
    argv = ["train-grid", "--arch", "resnet10_w8", "--labelling", "y", "--data", str(data), "--device", "cpu",
            *"--epochs 3 --milestones 2 --grid_lr 0.05 --grid_batch_size 64 --grid_augment none --train_size 200 "
             "--val_size 50 --test_size 50".split()]  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(training, "STATE_EVERY", 1)  # a state after every epoch: the one after epoch 2 is resumable
        kill_during_epoch(m, 3)
        with pytest.raises(_Killed):
            cli.main([*argv, "--eval_size", "50", "--out", str(tmp_path / "g"), "--results", str(tmp_path / "g.json")])
    assert (
        cli.main([*argv, "--eval_size", "40", "--out", str(tmp_path / "g"), "--results", str(tmp_path / "g.json")]) == 0
    )
    assert (
        cli.main([*argv, "--eval_size", "40", "--out", str(tmp_path / "f"), "--results", str(tmp_path / "f.json")]) == 0
    )
    (cell,) = (p.name for p in (tmp_path / "g").iterdir())
    assert (tmp_path / "g" / cell / "epoch_003.pt").read_bytes() == (
        tmp_path / "f" / cell / "epoch_003.pt"
    ).read_bytes()
