"""The library's boundary, kind by kind (issue 19): every public entry point that takes a model,
images or labels treats each kind of real-world input alike (``classaware.contracts``): the
models' modes, what a model returns, the labels' integer dtype, empty batches, the images'
floating dtype, and the label tensors of the class-aware metrics."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from importlib.metadata import version

import pytest
import torch
from helpers_repo import REPO
from hypothesis import given
from hypothesis import strategies as st
from models_for_tests import LinearClassifier, images
from torch import nn

import classaware
from classaware.attacks import fgm, n_targeted_pgd, pgd, random_target_classes
from classaware.boundary import (
    BoundarySearch,
    SearchSettings,
    boundary_distance,
    decision_plane,
    gradient_direction,
    model_distance,
    search_boundary,
)
from classaware.contracts import INTEGER_LABELS, eval_mode, narrowed
from classaware.metrics import class_aware_counts, class_aware_transfer
from classaware.models import predict
from classaware.training import accuracy

SHAPE = (3, 4, 4)
SCAN = dict(max_radius=2.0, step=0.1, tol=0.01)
SEARCH = SearchSettings(**SCAN)


def bn_net(seed: int = 0, dtype=torch.float32) -> nn.Sequential:
    """conv - BatchNorm - ReLU - linear, 10 classes, on (3, 4, 4) images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10))
    return net.to(dtype)


def entry_points(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Every public function that takes a model with images ``x`` and labels ``y`` (labels the
    model predicts, so that Dist has images to average over), called on them."""
    t = (y.long() + 1).remainder(10).to(y.dtype)
    v = torch.ones_like(x) / math.sqrt(math.prod(SHAPE))
    return {
        "fgm": lambda: fgm(model, x, y, eps=0.5),
        "fgm targeted": lambda: fgm(model, x, y, eps=0.5, target_classes=t),
        "pgd": lambda: pgd(model, x, y, eps=0.5, alpha=0.2, steps=2),
        "pgd targeted, l2 random start": lambda: pgd(model, x, y, 0.5, 0.2, 2, target_classes=t, random_start=True),
        "pgd linf, random start": lambda: pgd(model, x, y, 0.05, 0.01, 2, "linf", random_start=True),
        "n_targeted_pgd": lambda: n_targeted_pgd([model, model], x, [t, y], 0.5, 0.2, 2),
        "predict": lambda: predict(model, x, batch_size=3),
        "gradient_direction": lambda: gradient_direction(model, x, y),
        "boundary_distance": lambda: boundary_distance(model, x, y, v, **SCAN),
        "search_boundary": lambda: search_boundary(model, x, y, v, SEARCH, batch_size=3),
        "model_distance": lambda: model_distance(model, model, x, y, SEARCH),
        "decision_plane": lambda: decision_plane(model, [model], x[0], y[0], span=2),
        "accuracy": lambda: accuracy(model, (x * 255).round().to(torch.uint8), y),
    }


NAMES = list(entry_points(bn_net(), images(2, SHAPE), torch.zeros(2, dtype=torch.long)))


def _inputs(n: int = 5, seed: int = 0, model: nn.Module | None = None):
    x = images(n, SHAPE, seed)
    return x, predict(model or bn_net().eval(), x)


def _flags(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def _same(a, b) -> bool:
    """Equal results: tensors bit for bit, dataclasses field by field (tensors within), floats with nan == nan."""
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


# ----------------------------------------------------------------------------- 1. modes
@pytest.mark.parametrize("name", NAMES)
def test_a_frozen_batchnorm_in_a_training_model_stays_frozen(name):
    model = bn_net()
    x, y = _inputs()
    model.train()
    model[1].eval()  # frozen BatchNorm: the user fine-tunes around fixed statistics
    before, state = _flags(model), {k: t.clone() for k, t in model.state_dict().items()}
    entry_points(model, x, y)[name]()
    assert _flags(model) == before == [True, True, False, True, True, True]
    assert all(torch.equal(state[k], t) for k, t in model.state_dict().items())


@pytest.mark.parametrize("name", NAMES)
def test_the_module_inside_data_parallel_is_left_as_it_was(name):
    """nn.DataParallel without GPUs just calls its module; its train() sets the module's mode."""
    inner = bn_net().eval()
    wrapped = nn.DataParallel(inner)
    assert wrapped.training and not inner.training
    x, y = _inputs()
    entry_points(wrapped, x, y)[name]()
    assert wrapped.training and not any(m.training for m in inner.modules())
    state = {k: t.clone() for k, t in inner.state_dict().items()}
    with torch.no_grad():
        inner(x)  # the user's next forward pass leaves the running statistics alone
    assert all(torch.equal(state[k], t) for k, t in inner.state_dict().items())


def test_eval_mode_restores_every_flag_after_an_error():
    a, b = bn_net(), bn_net(1).eval()
    a[1].eval()
    b[4].train()
    before = (_flags(a), _flags(b))
    with pytest.raises(RuntimeError, match="inside"), eval_mode(a, b):
        assert not any(_flags(a) + _flags(b))
        raise RuntimeError("inside")
    assert (_flags(a), _flags(b)) == before


# ----------------------------------------------------------------------------- 2. what the model returns
class TupleModel(nn.Module):
    """Returns (logits, features), as many feature-extracting models do."""

    def __init__(self):
        super().__init__()
        self.net = bn_net().eval()

    def forward(self, x):
        return self.net(x), x.flatten(1)


class DictModel(TupleModel):
    def forward(self, x):
        return {"logits": self.net(x)}


class FlatModel(TupleModel):
    """Returns one score per image, shape (N,)."""

    def forward(self, x):
        return self.net(x)[:, 0]


class Logits(nn.Module):
    """The wrapper the error message describes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return out["logits"] if isinstance(out, dict) else out[0]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "model, returned, hint",
    [
        (TupleModel, r"a tuple of \(a torch.float32 tensor of shape \((\d+), 10\), a torch.float32 tensor of shape \(\1, 48\)\)", "out[0]"),
        (DictModel, r"a dict with keys \['logits'\]", "out['logits']"),
        (FlatModel, r"a torch.float32 tensor of shape \((\d+),\)", None),
    ],
)  # fmt: skip
def test_a_model_that_does_not_return_logits_is_refused_saying_what_came_back(name, model, returned, hint):
    x, y = _inputs()
    with pytest.raises(ValueError) as info:
        entry_points(model(), x, y)[name]()
    message = str(info.value)
    n = re.search(r"of shape \((\d+), num_classes\), for images of shape \(\1, 3, 4, 4\)", message)
    assert message.startswith("the model must return logits, a floating tensor of shape (") and n, message
    assert re.search(f"; it returned {returned}", message), message
    if hint:
        assert message.endswith(
            "; pass a module whose forward returns only the logits instead, e.g. an nn.Module holding the model "
            f"with `def forward(self, x): out = self.model(x); return {hint}`"
        ), message


@pytest.mark.parametrize("name", NAMES)
def test_the_wrapper_the_message_describes_works(name):
    x, y = _inputs()
    plain = entry_points(bn_net().eval(), x, y)[name]()
    for model in (TupleModel(), DictModel()):
        assert _same(entry_points(Logits(model), x, y)[name](), plain), name


# ----------------------------------------------------------------------------- 3. label dtypes
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", INTEGER_LABELS, ids=str)
def test_every_integer_label_dtype_gives_the_int64_result(name, dtype):
    model = bn_net().eval()
    x, y = _inputs(model=model)
    assert _same(entry_points(model, x, y.to(dtype))[name](), entry_points(model, x, y)[name]())


@pytest.mark.parametrize("dtype", INTEGER_LABELS, ids=str)
def test_every_integer_label_dtype_works_in_the_metrics_and_target_draws(dtype):
    y = torch.arange(12) % 10
    clean, adv = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2]), (y + 1) % 10
    targets = torch.stack([y, adv, (y + 2) % 10])
    t = (y + 3) % 10
    want = class_aware_transfer(y, clean, adv, targets, t)
    cast = [a.to(dtype) for a in (y, clean, adv, targets, t)]
    assert class_aware_transfer(*cast) == want
    assert class_aware_transfer(*cast[:3], cast[3][0], cast[4]) == want[0]
    assert torch.equal(class_aware_counts(*cast[:4]), class_aware_counts(y, clean, adv, targets))
    for exclude in (True, False):
        drawn = random_target_classes(y.to(dtype), 10, torch.Generator().manual_seed(1), exclude_true=exclude)
        assert torch.equal(drawn, random_target_classes(y, 10, torch.Generator().manual_seed(1), exclude_true=exclude))
        assert drawn.dtype == torch.int64


def label_takers(model: nn.Module, x: torch.Tensor, y) -> dict:
    """Every public function that takes labels, called with ``y`` as the labels, by the name its error gives them."""
    v, ok = torch.ones_like(x), torch.zeros(len(x), dtype=torch.long)
    return {
        "y": [
            lambda: fgm(model, x, y, eps=0.5),
            lambda: pgd(model, x, y, eps=0.5, alpha=0.2, steps=2),
            lambda: gradient_direction(model, x, y),
            lambda: boundary_distance(model, x, y, v, **SCAN),
            lambda: search_boundary(model, x, y, v, SEARCH),
            lambda: model_distance(model, model, x, y, SEARCH),
            lambda: accuracy(model, (x * 255).to(torch.uint8), y),
            lambda: random_target_classes(y, 10),
            lambda: class_aware_transfer(y, ok, ok, ok),
            lambda: class_aware_counts(y, ok, ok, ok),
        ],
        "target_classes": [
            lambda: fgm(model, x, ok, eps=0.5, target_classes=y),
            lambda: pgd(model, x, ok, eps=0.5, alpha=0.2, steps=2, target_classes=y),
            lambda: class_aware_transfer(ok, ok, ok, ok, y),
        ],
        "target_classes[1]": [lambda: n_targeted_pgd([model, model], x, [ok, y], 0.5, 0.2, 2)],
        "source_clean": [lambda: class_aware_transfer(ok, y, ok, ok), lambda: class_aware_counts(ok, y, ok, ok)],
        "source_adv": [lambda: class_aware_transfer(ok, ok, y, ok), lambda: class_aware_counts(ok, ok, y, ok)],
        "target_adv": [lambda: class_aware_transfer(ok, ok, ok, y), lambda: class_aware_counts(ok, ok, ok, y)],
    }


@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.ones(5, dtype=torch.bool), "{} must be an integer tensor of class labels (torch.int8, torch.int16, "
         "torch.int32, torch.int64, torch.uint8), got torch.bool"),
        (torch.ones(5, dtype=torch.float16), "{} must be an integer tensor of class labels, got torch.float16 (for a "
         "model's outputs, pass its predicted labels, e.g. logits.argmax(1) or classaware.models.predict)"),
        ([0, 1, 2, 3, 4], "{} must be an integer tensor of class labels, got list"),
    ],
    ids=["bool", "float16", "list"],
)  # fmt: skip
def test_labels_of_another_kind_are_refused_by_every_entry_point_naming_them(labels, message):
    x, _ = _inputs()
    for name, calls in label_takers(bn_net(), x, labels).items():
        for call in calls:
            with pytest.raises(ValueError) as info:
                call()
            assert str(info.value) == message.format(name)


# ----------------------------------------------------------------------------- 4. empty batches
class Counting(nn.Module):
    """Counts its forward passes."""

    def __init__(self):
        super().__init__()
        self.net, self.calls = bn_net().eval(), 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def test_the_issues_empty_batch_with_an_l2_random_start():
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 10))
    out = pgd(
        model, torch.rand(0, 3, 8, 8), torch.zeros(0, dtype=torch.long), eps=1, alpha=0.2, steps=1, random_start=True
    )
    assert out.shape == (0, 3, 8, 8) and out.dtype == torch.float32


EMPTY = {
    "predict": torch.zeros(0, dtype=torch.int64),
    "boundary_distance": torch.zeros(0),
    "search_boundary": BoundarySearch(torch.zeros(0), torch.zeros(0, dtype=torch.bool), SEARCH.max_radius),
}


@pytest.mark.parametrize("name", [n for n in NAMES if n != "decision_plane"])  # it takes one image
def test_an_empty_batch_gives_an_empty_result_without_calling_the_model(name):
    model = Counting()
    x, y = torch.rand(0, *SHAPE), torch.zeros(0, dtype=torch.long)
    call = entry_points(model, x, y)[name]
    if name == "model_distance":
        with pytest.raises(
            ValueError, match=r"^Dist needs at least one image both models classify correctly; none of the 0 of x is$"
        ):
            call()
    elif name == "accuracy":
        assert math.isnan(call())
    else:
        assert _same(call(), EMPTY.get(name, torch.zeros(0, *SHAPE)))
    assert model.calls == 0


def test_empty_label_sets_in_the_metrics_and_target_draws():
    e = torch.zeros(0, dtype=torch.int64)
    r = class_aware_transfer(e, e, e, e, e)
    assert (r.n_total, r.n, r.same.ratio, r.target_class_hit.ratio) == (0, 0, None, None)
    without_targets = dataclasses.replace(r, target_class_hit=None, source_target_class_hit=None)
    assert class_aware_transfer(e, e, e, torch.zeros(3, 0, dtype=torch.int64)) == [without_targets] * 3
    assert torch.equal(class_aware_counts(e, e, e, e), torch.zeros(1, 3, dtype=torch.int64))
    assert _same(random_target_classes(e, 10), e)


# ----------------------------------------------------------------------------- 5. image dtypes
FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _dist(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    d = (a.double() - b.double()).flatten(1)
    return d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)


@pytest.mark.parametrize("model_dtype", FLOATS, ids=str)
@pytest.mark.parametrize("x_dtype", FLOATS, ids=str)
def test_images_of_any_float_dtype_work_with_a_model_of_any_float_dtype(x_dtype, model_dtype):
    """The model computes in its dtype, the results come back in the images' (attacks), as
    int64 labels, or in the work dtype (directions, radii): the widest of float32 and both."""
    model = bn_net(dtype=model_dtype).eval()
    x = images(5, SHAPE, 3).to(x_dtype)
    y = predict(model, x)
    work = torch.promote_types(torch.promote_types(torch.float32, x_dtype), model_dtype)
    with torch.no_grad():
        assert torch.equal(y, model(x.to(model_dtype)).argmax(1))
    for name, call in entry_points(model, x, y).items():
        out = call()
        if name.startswith(("fgm", "pgd", "n_targeted")):
            assert out.dtype == x_dtype and out.shape == x.shape and 0 <= float(out.min()) <= float(out.max()) <= 1, (
                name
            )
        elif name in ("gradient_direction", "boundary_distance"):
            assert out.dtype == work, name
        elif name == "search_boundary":
            assert out.d.dtype == work
    assert torch.equal(predict(model, x.double()), predict(model, x.to(model_dtype)))  # the issue's case


def test_rounding_to_a_narrower_dtype_never_leaves_the_eps_ball():
    """FGSM moves every coordinate of x = 0.5 by exactly eps = 0.1 (in float32). 0.6 and 0.4 are
    not float16 or bfloat16 numbers: rounded to nearest, 0.6 becomes 0.6001 (float16), which is
    0.1001 from x; rounded toward x, 0.5996."""
    model = LinearClassifier.random(10, math.prod(SHAPE), seed=1)
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.full((4, *SHAPE), 0.5, dtype=dtype)
        y = predict(model, x)
        wide = fgm(model, x.float(), y, eps=0.1, norm="linf")
        assert float(_dist(wide.to(dtype), x, "linf").max()) > 0.1  # the naive cast leaves the ball
        out = fgm(model, x, y, eps=0.1, norm="linf")
        assert out.dtype == dtype and float(_dist(out, x, "linf").max()) <= 0.1
        ulp = torch.finfo(dtype).eps  # one step at [0.5, 1)
        assert float((out.double() - wide.double()).abs().max()) <= ulp / 2 + 1e-9


def test_narrow_images_that_require_grad_are_left_alone():
    model = bn_net().eval()
    x = images(3, SHAPE, 4).half().requires_grad_(True)
    y = predict(model, x)
    for out in (pgd(model, x, y, 0.5, 0.2, 2), fgm(model, x, y, 0.05, "linf")):
        assert out.dtype == torch.float16 and not out.requires_grad
    assert x.grad is None


@given(
    dtype=st.sampled_from([torch.float16, torch.bfloat16]),
    norm=st.sampled_from(["l2", "linf"]),
    eps=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
    random_start=st.booleans(),
)
def test_attacks_on_narrow_images_stay_in_the_eps_ball_in_the_returned_dtype(dtype, norm, eps, seed, random_start):
    model = bn_net(seed % 7).eval()
    x = images(4, SHAPE, seed).to(dtype)
    y = predict(model, x)
    t = (y + 1) % 10
    for out in (
        fgm(model, x, y, eps, norm),
        fgm(model, x, y, eps, norm, target_classes=t),
        pgd(model, x, y, eps, eps / 4, 3, norm, random_start=random_start, seed=seed),
        n_targeted_pgd([model, bn_net(8).eval()], x, [t, y], eps, eps / 4, 3, norm, random_start=random_start),
    ):
        assert out.dtype == dtype and 0 <= float(out.min()) and float(out.max()) <= 1
        # float32's own rounding of the work copy (x + delta per coordinate) is all that remains
        assert float(_dist(out, x, norm).max()) <= eps * (1 + 1e-6) + 1e-6


@given(
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32]),
    seed=st.integers(0, 2**16),
)
def test_narrowed_rounds_toward_the_original_image(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(64, generator=g, dtype=torch.float64).to(dtype)
    wide = (x.double() + (torch.rand(64, generator=g, dtype=torch.float64) - 0.5) * 0.1).clamp(0, 1)
    out = narrowed(wide, x)
    assert out.dtype == dtype
    assert ((out.double() - x.double()).abs() <= (wide - x.double()).abs()).all()
    assert ((out.double() - wide).abs() < torch.finfo(dtype).eps).all()  # at most one step from nearest
    assert 0 <= float(out.min()) and float(out.max()) <= 1


# ----------------------------------------------------------------------------- 6. the metrics' label tensors
Y = torch.arange(10)
LOGITS = torch.randn(10, 10, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "args, message",
    [
        ((Y, Y, LOGITS, Y), "source_adv must be an integer tensor of class labels, got torch.float32 (for a model's "
         "outputs, pass its predicted labels, e.g. logits.argmax(1) or classaware.models.predict)"),
        ((Y, Y, Y, LOGITS), "target_adv must be an integer tensor of class labels, got torch.float32 (for a model's "
         "outputs, pass its predicted labels, e.g. logits.argmax(1) or classaware.models.predict)"),
        ((Y, Y, Y, Y, Y[:7]), "target_classes must have shape (10,), one label per image, got (7,)"),
        ((Y, Y, Y, Y, Y[None]), "target_classes must have shape (10,), one label per image, got (1, 10)"),
        ((Y[None], Y, Y, Y), "y must have shape (N,), one label per image, got (1, 10)"),
        ((Y, Y[:9], Y, Y), "source_clean must have shape (10,), one label per image, got (9,)"),
        ((Y, Y, Y.long()[None].expand(2, 10), Y), "source_adv must have shape (10,), one label per image, got (2, 10)"),
        ((Y, Y, Y, Y[:9]), "target_adv must have shape (10,) or (M, 10): labels of M models, got (9,)"),
        ((Y, Y, Y, Y.expand(2, 3, 10)), "target_adv must have shape (10,) or (M, 10): labels of M models, got (2, 3, 10)"),
        ((Y, Y, Y - 1, Y), "source_adv must hold class labels in 0, found -1..8"),
        ((Y.tolist(), Y, Y, Y), "y must be an integer tensor of class labels, got list"),
    ],
)  # fmt: skip
def test_class_aware_transfer_checks_every_input_naming_it(args, message):
    with pytest.raises(ValueError) as info:
        class_aware_transfer(*args)
    assert str(info.value) == message
    if len(args) == 4:
        with pytest.raises(ValueError) as info:
            class_aware_counts(*args)
        assert str(info.value) == message


def test_labels_made_from_the_logits_give_the_right_ratios():
    """What the refusal's hint says to pass: F1 is right on images 0-4, then says y + 1; F2
    says y on 5-6 (un-fooled), y + 1 on 7 (same mistake), y + 2 on 8-9 (different)."""
    source_adv = torch.where(Y < 5, Y, (Y + 1) % 10)
    target = torch.cat([Y[:7], (Y[7:8] + 1) % 10, (Y[8:] + 2) % 10])
    r = class_aware_transfer(Y, Y, source_adv, nn.functional.one_hot(target, 10).float().argmax(1))
    assert (r.n, r.unfooled.count, r.same.count, r.different.count) == (5, 2, 1, 2)


# ----------------------------------------------------------------------------- 10. README's example, the public API
def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## As a library")
    (code,) = re.findall(r"```python\n(.*?)```", text[start : text.index("\n## ", start)], re.S)
    return code


def test_the_readmes_library_example_runs_as_written(capsys):
    exec(compile(_readme_example(), "README.md", "exec"), {"__name__": "readme_example"})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[2].startswith("PairDistance(dist="), lines
    n, unfooled, different, same = (float(v) for v in lines[0].split()[:4])
    assert n > 0 and unfooled + different + same == pytest.approx(1.0)


def test_the_readmes_library_example_uses_everything_it_defines_and_imports():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "F", "--stdin-filename", "readme_example.py", "-"],
        input=_readme_example(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_names_its_public_api_and_version():
    assert classaware.__version__ == version("classaware")
    assert {"fgm", "pgd", "n_targeted_pgd", "random_target_classes", "predict", "class_aware_transfer",
            "class_aware_counts", "gradient_direction", "boundary_distance", "search_boundary", "model_distance",
            "decision_plane"} <= set(classaware.__all__)  # fmt: skip
    assert all(getattr(classaware, name) is not None for name in classaware.__all__)
    assert classaware.pgd is pgd and classaware.model_distance is model_distance
