"""Every model the library is handed is checked, in any context (issue 29, items 1-7), kind by
kind: every public function that takes a model (``ENTRY_POINTS``) is called on each kind of model
and context, and either gives the result it gives a plain model, or refuses with a ValueError
that names the problem and how to fix it.

1. the caller's autograd context: ``torch.no_grad()``, ``torch.inference_mode()``, and inference
   tensors passed outside it;
2. models that write into their input;
3. models with no gradient path to their input;
4. models whose logits (or gradients) are not finite;
5. one-logit binary classifiers;
6. ``torch.export`` programs' modules;
7. memory bounded by ``batch_size``;
and the kinds that still failed after the last hunt: images whose channel count the model does
not take, options of another kind (a float or a tensor where an int belongs), plain callables in
place of models, and a model where a list or mapping of models belongs.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from helpers_library import SCAN, SEARCH, SHAPE
from helpers_library import D as DIM
from hypothesis import given
from hypothesis import strategies as st
from models_for_tests import ConstantModel, images
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from classaware import (
    SearchSettings,
    boundary_distance,
    decision_plane,
    eval_mode,
    fgm,
    gradient_direction,
    model_distance,
    n_targeted_pgd,
    pgd,
    predict,
    random_target_classes,
    search_boundaries,
    search_boundary,
)
from classaware.models import Normalized, build, right_for_all


def net(seed: int = 0, channels: int = 3, num_classes: int = 10) -> nn.Sequential:
    """The issue's f: conv - ReLU - linear, in eval mode, on (channels, 4, 4) images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        f = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, num_classes))
    return f.eval()


def bn_net(seed: int = 0) -> nn.Sequential:
    """conv - BatchNorm - ReLU - Dropout - linear: its output depends on the mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        f = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(64, 10),
        )
    with torch.no_grad():  # running statistics that are not the identity
        f[1].running_mean.uniform_(-0.2, 0.2, generator=torch.Generator().manual_seed(seed))
        f[1].running_var.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(seed + 1))
    return f.eval()


def _inputs(model: nn.Module | None = None, n: int = 6, seed: int = 0):
    x = images(n, SHAPE, seed)
    return x, predict(model if model is not None else net(), x)


def entry_points(
    model, x: torch.Tensor, y: torch.Tensor, other: nn.Module | None = None
) -> dict[str, Callable[[], object]]:
    """Every public function that takes a model, called on ``model`` with images ``x`` and labels
    ``y`` (labels the model predicts, so that Dist has images to average over); where a function
    takes several models, ``other`` (default ``net(1)``) is the second."""
    other = net(1) if other is None else other
    t = (y.long() + 1).remainder(10) if y.numel() else y
    v = torch.ones_like(x) / math.sqrt(DIM)

    def under_eval_mode():
        with eval_mode(model):
            return None

    return {
        "fgm": lambda: fgm(model, x, y, eps=0.5),
        "fgm targeted linf": lambda: fgm(model, x, y, eps=0.05, norm="linf", target_classes=t),
        "pgd": lambda: pgd(model, x, y, eps=0.5, alpha=0.2, steps=2),
        "pgd linf random start": lambda: pgd(model, x, y, 0.05, 0.02, 2, "linf", random_start=True, seed=3),
        "n_targeted_pgd": lambda: n_targeted_pgd([model, other], x, [t, y], eps=0.5, alpha=0.2, steps=2),
        "predict": lambda: predict(model, x, batch_size=4),
        "right_for_all": lambda: right_for_all([model], x, y, batch_size=4),
        "gradient_direction": lambda: gradient_direction(model, x, y),
        "boundary_distance": lambda: boundary_distance(model, x, y, v, **SCAN),
        "search_boundary": lambda: search_boundary(model, x, y, v, SEARCH, batch_size=4),
        "search_boundaries": lambda: search_boundaries({"f": model, "g": other}, x, y, v, SEARCH, batch_size=4),
        "model_distance": lambda: model_distance(model, model, x, y, SEARCH, batch_size=4),
        "decision_plane": lambda: decision_plane(model, [model], x[0], int(y[0]), span=2, batch_size=10),
        "decision_plane, a target": lambda: decision_plane(other, [model], x[0], int(y[0]), span=2),
        "eval_mode": under_eval_mode,
    }


NAMES = list(entry_points(net(), *_inputs()))
GRADIENT_NAMES = [  # the functions that take a gradient of the model
    "fgm", "fgm targeted linf", "pgd", "pgd linf random start", "n_targeted_pgd", "gradient_direction",
    "model_distance", "decision_plane",
]  # fmt: skip


def _same(a, b) -> bool:
    """Equal results: tensors bit for bit, dataclasses field by field, dicts key by key."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


# ----------------------------------------------------------------------------- 1. the caller's autograd context
CONTEXTS = {
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
    "enable_grad inside no_grad": lambda: torch.enable_grad(),
    "set_grad_enabled(False)": lambda: torch.set_grad_enabled(False),
}


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("name", NAMES)
def test_every_function_works_and_gives_the_same_result_in_any_autograd_context(name, context):
    model = net()
    x, y = _inputs(model)
    plain = entry_points(model, x, y)[name]()
    call = entry_points(model, x, y)[name]
    with CONTEXTS[context]():
        inside = call()
    assert _same(inside, plain), name
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


@pytest.mark.parametrize("name", NAMES)
def test_inference_tensors_made_earlier_work_outside_inference_mode(name):
    """Images and labels loaded under ``torch.inference_mode()`` are inference tensors: autograd
    cannot record them, so the library works on copies of them."""
    model = net()
    x, y = _inputs(model)
    plain = entry_points(model, x, y)[name]()
    with torch.inference_mode():
        xi, yi = x.clone(), y.clone()
    assert xi.is_inference()
    assert _same(entry_points(model, xi, yi)[name](), plain), name


def test_a_model_loaded_under_inference_mode_is_refused_by_the_gradient_functions_saying_why():
    with torch.inference_mode():
        model = net()
    x = images(6, SHAPE, 0)
    y = predict(model, x)  # inference needs no gradient: it works
    for name in GRADIENT_NAMES:
        with pytest.raises(ValueError, match=r"parameters or buffers that are inference tensors") as info:
            entry_points(model, x, y)[name]()
        assert "load it outside torch.inference_mode()" in str(info.value), name


# ----------------------------------------------------------------------------- 2. models that write into their input
class WritesInput(nn.Module):
    """Normalises its input in place, as some user code does."""

    def __init__(self, how: str = "sub div"):
        super().__init__()
        self.net, self.how = net(), how

    def forward(self, x):
        if self.how == "sub div":
            x.sub_(0.5).div_(0.25)
        elif self.how == "index":
            x[:, 0] = 0.0
        elif self.how == "clamp":
            x.clamp_(0.2, 0.8)
        elif self.how == "relu_":
            x = nn.functional.relu(x.sub_(0.3), inplace=True)
        return self.net(x)


class Plain(nn.Module):
    """The same model without the write: (x - .5) / .25 out of place, etc."""

    def __init__(self, how: str = "sub div"):
        super().__init__()
        self.net, self.how = net(), how

    def forward(self, x):
        if self.how == "sub div":
            x = (x - 0.5) / 0.25
        elif self.how == "index":
            x = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:]], 1)
        elif self.how == "clamp":
            x = x.clamp(0.2, 0.8)
        elif self.how == "relu_":
            x = nn.functional.relu(x - 0.3)
        return self.net(x)


HOWS = ["sub div", "index", "clamp", "relu_"]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("name", NAMES)
def test_a_model_writing_into_its_input_never_changes_the_callers_tensors(name, how):
    model = WritesInput(how)
    x, y = _inputs(Plain(how))
    x_before, y_before = x.clone(), y.clone()
    result = entry_points(model, x, y)[name]()
    assert torch.equal(x, x_before) and torch.equal(y, y_before), name
    if how in ("sub div", "index"):  # the write does not change the function: the results are those of Plain
        assert _same(result, entry_points(Plain(how), x, y)[name]()), name


# ----------------------------------------------------------------------------- 3. no gradient path to the input
class Detaching(nn.Module):
    def __init__(self, how: str):
        super().__init__()
        self.net, self.how = net(), how
        if how == "frozen, detached":
            self.net.requires_grad_(False)

    def forward(self, x):
        if self.how in ("detach", "frozen, detached"):
            return self.net(x.detach())
        if self.how == "no_grad inside":
            with torch.no_grad():
                return self.net(x)
        if self.how == "through numpy":
            return self.net(torch.from_numpy(x.detach().cpu().numpy()))
        if self.how == ".data":
            return self.net(x.data)
        raise AssertionError(self.how)


NO_PATH = ["detach", "frozen, detached", "no_grad inside", "through numpy", ".data"]
NO_PATH_MESSAGE = (
    r"^(model|models\[0\]|source)'s logits do not depend on its input in autograd's graph \(its forward detaches "
    r"the images, runs under torch.no_grad\(\) or goes through NumPy\): an attack or a gradient direction needs "
    r"the gradient of the loss with respect to the images$"
)


@pytest.mark.parametrize("how", NO_PATH)
@pytest.mark.parametrize("name", GRADIENT_NAMES)
def test_a_model_without_a_gradient_path_to_its_input_is_refused_by_every_gradient_function(name, how):
    model = Detaching(how)
    x, y = _inputs(model)
    with pytest.raises(ValueError, match=NO_PATH_MESSAGE):
        entry_points(model, x, y)[name]()


def test_a_model_that_never_reads_its_input_is_refused_too():
    x, y = _inputs(ConstantModel())
    for name in GRADIENT_NAMES:
        with pytest.raises(ValueError, match=NO_PATH_MESSAGE):
            entry_points(ConstantModel(), x, y)[name]()


def test_one_detached_model_among_several_is_named():
    x, y = _inputs()
    with pytest.raises(ValueError, match=r"^models\[1\]'s logits do not depend on its input"):
        n_targeted_pgd([net(), Detaching("detach"), net(1)], x, [y, y, y], 0.5, 0.2, 1)


def test_the_functions_that_take_no_gradient_accept_such_models():
    model = Detaching("frozen, detached")
    x, y = _inputs(model)
    for name in set(NAMES) - set(GRADIENT_NAMES) - {"decision_plane, a target"}:
        entry_points(model, x, y)[name]()
    entry_points(model, x, y)["decision_plane, a target"]()  # a target is only predicted


def test_frozen_parameters_with_a_path_to_the_input_are_fine():
    """Freezing the weights (the usual way to evaluate) keeps the path to the input."""
    model = net().requires_grad_(False)
    x, y = _inputs(model)
    for name in NAMES:
        assert _same(entry_points(model, x, y)[name](), entry_points(net(), x, y)[name]()), name
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- 4. logits and gradients that are not finite
class NotFinite(nn.Module):
    def __init__(self, how: str):
        super().__init__()
        self.net, self.how = net(), how
        with torch.no_grad():
            if how == "nan weight":
                self.net[3].weight[0, 0] = math.nan
            elif how == "inf bias":
                self.net[3].bias[2] = math.inf
            elif how == "-inf bias":
                self.net[3].bias[2] = -math.inf

    def forward(self, x):
        out = self.net(x)
        if self.how == "nan for one image":
            out = torch.cat([out[:1] * math.nan, out[1:]]) if len(out) > 1 else out
        if self.how == "nan gradient":  # finite logits: sqrt(0) = 0, but its gradient is inf * 0 = nan
            out = out + torch.sqrt((x - x).flatten(1).sum(1, keepdim=True))
        return out


NOT_FINITE = ["nan weight", "inf bias", "-inf bias", "nan for one image"]


@pytest.mark.parametrize("how", NOT_FINITE)
@pytest.mark.parametrize("name", [n for n in NAMES if n != "eval_mode"])
def test_logits_that_are_not_finite_are_refused_by_every_function(name, how):
    model = NotFinite(how)
    x, y = _inputs(net())
    with pytest.raises(ValueError, match=r"^(the model|models\[\d\])'s logits must be finite; for images of shape \(\d+, 3, 4, 4\) "
                                         r"they hold (nan|inf|-inf)"):  # fmt: skip
        entry_points(model, x, y)[name]()


@pytest.mark.parametrize("name", GRADIENT_NAMES)
def test_a_gradient_that_is_not_finite_is_refused(name):
    model = NotFinite("nan gradient")
    x, y = _inputs(model)
    with pytest.raises(ValueError, match=r"gradient of the loss with respect to the images holds nan or inf"):
        entry_points(model, x, y)[name]()


# ----------------------------------------------------------------------------- 5. one logit
ONE_LOGIT = (
    r"^the model returns one logit per image \(shape \(\d+, 1\)\): the library needs one logit per class\. "
    r"For a binary classifier whose logit z scores class 1, return two logits, "
    r"torch.cat\(\[torch.zeros_like\(z\), z\], 1\) \(softmax of \[0, z\] is \[1 - sigmoid\(z\), sigmoid\(z\)\]\)$"
)


class TwoLogits(nn.Module):
    """The wrapper the message describes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        z = self.model(x)
        return torch.cat([torch.zeros_like(z), z], 1)


@pytest.mark.parametrize("labels", ["0/1", "all zero", "all one"])
@pytest.mark.parametrize("name", [n for n in NAMES if n != "eval_mode"])
def test_a_one_logit_binary_classifier_is_refused_saying_how_to_wrap_it(name, labels):
    model = net(num_classes=1)
    x = images(6, SHAPE, 0)
    y = {"0/1": torch.tensor([0, 1, 0, 1, 1, 0]), "all zero": torch.zeros(6), "all one": torch.ones(6)}[labels].long()
    with pytest.raises(ValueError, match=ONE_LOGIT):
        entry_points(model, x, y)[name]()


def test_the_two_logit_wrapper_attacks_the_binary_classifier():
    single = net(num_classes=1)
    model = TwoLogits(single)
    x = images(32, SHAPE, 1)
    with torch.no_grad():
        y = (single(x)[:, 0] > 0).long()  # the binary classifier's own decisions
    assert torch.equal(predict(model, x), y)
    x_adv = pgd(model, x, y, eps=2.0, alpha=0.5, steps=10)
    with torch.no_grad():
        assert float(((single(x_adv)[:, 0] > 0).long() == y).float().mean()) < 0.5  # most decisions flipped


def test_zero_logits_are_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(DIM, 0))
    x = images(3, SHAPE, 0)
    with pytest.raises(ValueError, match=r"returns no logit per image \(shape \(\d+, 0\)\)"):
        predict(model, x)


def test_a_model_returning_probabilities_gets_a_warning_and_log_probabilities_none():
    """AutoAttack's check_range_output: a final softmax gives vanishing gradients, silently."""
    x, y = _inputs()
    for call in (lambda m: predict(m, x), lambda m: pgd(m, x, y, 0.5, 0.2, 1)):
        with pytest.warns(UserWarning, match=r"the model's outputs look like probabilities"):
            call(nn.Sequential(net(), nn.Softmax(1)))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            call(nn.Sequential(net(), nn.LogSoftmax(1)))


# ----------------------------------------------------------------------------- 6. torch.export
def exported(model: nn.Module, x: torch.Tensor, dynamic: bool = True) -> nn.Module:
    batch = ({0: torch.export.Dim.AUTO},) if dynamic else None
    return torch.export.export(model, (x,), dynamic_shapes=batch).module()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", NAMES)
def test_every_function_runs_on_an_exported_model_and_gives_the_eager_models_result(name):
    eager = bn_net()
    x, y = _inputs(eager)
    model = exported(eager, x)
    with pytest.raises(NotImplementedError):
        model.eval()  # what torch.export's module does (pytorch#151726)
    assert _same(entry_points(model, x, y)[name](), entry_points(eager, x, y)[name]()), name


@pytest.mark.filterwarnings("ignore")
def test_an_exported_model_inside_a_users_module_runs_and_keeps_the_modes():
    eager = bn_net()
    x, y = _inputs(eager)
    wrapper = Normalized(exported(eager, x), mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0))
    reference = Normalized(eager, mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0))
    flags = [m.training for m in wrapper.modules()]
    for name in NAMES:
        assert _same(entry_points(wrapper, x, y)[name](), entry_points(reference, x, y)[name]()), name
        assert [m.training for m in wrapper.modules()] == flags


@pytest.mark.filterwarnings("ignore")
def test_a_model_exported_in_training_mode_is_refused_saying_how_to_export_it():
    eager = bn_net().train()
    x, _ = _inputs(bn_net())
    model = exported(eager, x)
    for name in NAMES:
        with pytest.raises(ValueError, match=r"was exported in training mode \(its graph runs aten\.\w+\.\w+ with "
                                             r"(training|train)=True\): export it after model.eval\(\)"):  # fmt: skip
            entry_points(model, x, predict(bn_net(), x))[name]()


@pytest.mark.filterwarnings("ignore")
def test_an_exported_model_with_a_fixed_batch_size_is_refused_saying_how_to_export_it():
    eager = net()
    x, y = _inputs(eager)
    model = exported(eager, x[:4], dynamic=False)
    with pytest.raises(ValueError, match=r"dynamic_shapes=\(\{0: torch.export.Dim.AUTO\},\)"):
        pgd(model, x, y, 0.5, 0.2, 1)


@pytest.mark.filterwarnings("ignore")
def test_an_exported_model_given_images_of_other_channels_is_refused_naming_them():
    """The exported graph's guard fails before any convolution runs: the channels come from the
    graph's first convolution."""
    x, y = _inputs()
    model = exported(net(), x)
    with pytest.raises(ValueError, match=r"^x holds images of 1 channel, but the model takes 3 \(the input channels"):
        predict(model, x[:, :1].contiguous())


def test_a_traced_model_failing_before_its_first_convolution_is_refused_naming_the_channels():
    """A torch.fx-traced graph calls its convolutions as modules: they give the channel count."""
    x, y = _inputs()
    model = torch.fx.symbolic_trace(Normalized(net()))
    with pytest.raises(ValueError, match=r"^x holds images of 4 channels, but the model takes 3 \(the input channels"):
        predict(model, torch.cat([x, x[:, :1]], 1))


def test_decision_plane_takes_its_label_as_any_integer_and_refuses_a_float():
    model = net()
    x, y = _inputs(model)
    plane = decision_plane(model, [model], x[0], np.int64(int(y[0])), span=1)
    assert plane.true_label == int(y[0]) and type(plane.true_label) is int
    assert torch.equal(plane.labels, decision_plane(model, [model], x[0], y[0], span=1).labels)
    with pytest.raises(ValueError, match=r"^y must be the image's class label as an int, got 3.0$"):
        decision_plane(model, [model], x[0], 3.0, span=1)


def test_an_exported_program_itself_is_refused_naming_its_module():
    x, y = _inputs()
    program = torch.export.export(net(), (x,))
    with pytest.raises(ValueError, match=r"^model is a torch.export.ExportedProgram: pass model.module\(\)"):
        pgd(program, x, y, 0.5, 0.2, 1)


# ----------------------------------------------------------------------------- 7. memory bounded by batch_size
class Recording(nn.Module):
    """Records the batch size of every forward pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.model(x)


class LargestTensor(TorchDispatchMode):
    """The largest tensor any operation creates (forward and backward passes alike)."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


BATCHED = {
    "predict": lambda m, x, y, b: predict(m, x, batch_size=b),
    "right_for_all": lambda m, x, y, b: right_for_all([m, m], x, y, batch_size=b),
    "search_boundary": lambda m, x, y, b: search_boundary(m, x, y, gradient_direction(m, x[:1], y[:1]).expand_as(x),
                                                          SearchSettings(max_radius=0.5, step=0.25, tol=0.1), b),
    "model_distance": lambda m, x, y, b: model_distance(m, m, x, y, SearchSettings(max_radius=0.5, step=0.25, tol=0.1),
                                                        batch_size=b),
    "decision_plane": lambda m, x, y, b: decision_plane(m, [m, m], x[0], int(y[0]), span=6, batch_size=b),
}  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 5])
@pytest.mark.parametrize("name", BATCHED)
def test_no_model_ever_sees_more_than_batch_size_images(name, batch_size):
    model = Recording(net())
    x, y = _inputs(net(), n=12)
    BATCHED[name](model, x, y, batch_size)
    assert model.sizes and max(model.sizes) <= batch_size, (name, max(model.sizes))


def wide() -> nn.Sequential:
    """Per image, activations (32 x 4 x 4) far larger than any weight (32 x 10): what a batch costs shows."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        f = nn.Sequential(nn.Conv2d(3, 32, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    return f.eval()


@pytest.mark.parametrize("name", BATCHED)
def test_no_tensor_grows_with_the_number_of_images_beyond_the_images_themselves(name):
    """The largest tensor made during a call (activations, gradients, grid points) holds at most
    batch_size images' worth, or is a copy of the images: x itself, one image for a plane."""
    model, batch_size = wide(), 4
    with LargestTensor() as one:  # what one image costs, forward and backward
        gradient_direction(model, *_inputs(model, n=1))
    x, y = _inputs(model, n=40)
    with LargestTensor() as call:
        BATCHED[name](model, x, y, batch_size)
    images_given = x[0].numel() if name == "decision_plane" else x.numel()
    assert call.numel <= max(images_given, batch_size * one.numel), (name, call.numel)


# ----------------------------------------------------------------------------- channels the model does not take
def _with_channels(x: torch.Tensor, c: int) -> torch.Tensor:
    return x[:, :1].expand(-1, c, -1, -1).contiguous() if c != x.shape[1] else x


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("name", [n for n in NAMES if n != "eval_mode"])
def test_images_with_other_channels_than_a_zoo_model_takes_are_refused(name, channels):
    """A zoo model's normalisation broadcasts a 1-channel image to 3 channels: it would run."""
    model = build("resnet10_w8").eval()
    x = images(4, (channels, 32, 32), 0)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"images of {channels} channel{'s' if channels > 1 else ''}, but the model "
                                         r"takes 3 \(the input channels of its first convolution\)"):  # fmt: skip
        entry_points_32(model, x, y)[name]()


def entry_points_32(model, x, y):
    """``entry_points`` on 32 x 32 images."""
    points = entry_points(model, x, y)
    v = torch.ones_like(x) / math.sqrt(x[0].numel())
    points["boundary_distance"] = lambda: boundary_distance(model, x, y, v, **SCAN)
    points["search_boundary"] = lambda: search_boundary(model, x, y, v, SEARCH)
    points["search_boundaries"] = lambda: search_boundaries({"f": model}, x, y, v, SEARCH)
    points["n_targeted_pgd"] = lambda: n_targeted_pgd([model], x, [y], 0.5, 0.2, 1)
    points["decision_plane, a target"] = lambda: decision_plane(model, [model], x[0], 0, span=1)
    return points


@pytest.mark.parametrize("name", [n for n in NAMES if n != "eval_mode"])
def test_images_with_other_channels_than_a_models_first_convolution_are_refused(name):
    model = net(channels=1)
    x, y = _inputs(net())
    with pytest.raises(ValueError, match=r"images of 3 channels, but the model takes 1 \(the input channels of its "
                                         r"first convolution\)"):  # fmt: skip
        entry_points(model, x, y)[name]()


class Grey(nn.Module):
    """Takes one-channel images and repeats them for a 3-channel network, declaring in_channels."""

    in_channels = 1

    def __init__(self, seed: int = 0):
        super().__init__()
        self.net = net(seed)

    def forward(self, x):
        return self.net(x.expand(-1, 3, -1, -1))


def test_a_model_declaring_in_channels_is_checked_against_that():
    model = Grey()
    x3, _ = _inputs()
    x = x3[:, :1].contiguous()
    y = predict(model, x)
    for name in NAMES:
        entry_points(model, x, y, other=Grey(1))[name]()
    with pytest.raises(ValueError, match=r"images of 3 channels, but the model takes 1 \(its in_channels\)"):
        predict(model, x3)


def test_a_model_that_fails_on_the_images_is_refused_naming_their_shape():
    model = nn.Sequential(nn.Flatten(), nn.Linear(DIM, 10))  # no convolution: takes 48 values per image
    x = images(3, (1, 4, 4), 0)
    with pytest.raises(ValueError, match=r"^the model fails on images of shape \(1, 1, 4, 4\): RuntimeError: "):
        predict(model, x)


# ----------------------------------------------------------------------------- options of another kind
INT_OPTIONS = [
    ("steps", 2.0, lambda m, x, y, v: pgd(m, x, y, 0.5, 0.2, steps=v)),
    ("steps", torch.tensor(2), lambda m, x, y, v: n_targeted_pgd([m], x, [y], 0.5, 0.2, steps=v)),
    ("seed", 1.5, lambda m, x, y, v: pgd(m, x, y, 0.5, 0.2, 1, random_start=True, seed=v)),
    ("batch_size", torch.tensor(4), lambda m, x, y, v: predict(m, x, batch_size=v)),
    ("batch_size", 4.0, lambda m, x, y, v: right_for_all([m], x, y, batch_size=v)),
    ("batch_size", torch.tensor(4), lambda m, x, y, v: search_boundary(m, x, y, torch.ones_like(x) / 7, SEARCH, v)),
    ("batch_size", 4.0, lambda m, x, y, v: search_boundaries({"f": m}, x, y, torch.ones_like(x) / 7, SEARCH, v)),
    ("batch_size", torch.tensor(4), lambda m, x, y, v: model_distance(m, m, x, y, SEARCH, batch_size=v)),
    ("batch_size", 4.0, lambda m, x, y, v: decision_plane(m, [m], x[0], int(y[0]), span=2, batch_size=v)),
    ("span", 2.0, lambda m, x, y, v: decision_plane(m, [m], x[0], int(y[0]), span=v)),
    ("seed", torch.tensor(1), lambda m, x, y, v: decision_plane(m, [m], x[0], int(y[0]), span=2, seed=v)),
    ("num_classes", 10.0, lambda m, x, y, v: random_target_classes(y, num_classes=v)),
    ("steps", True, lambda m, x, y, v: pgd(m, x, y, 0.5, 0.2, steps=v)),
    ("span", "2", lambda m, x, y, v: decision_plane(m, [m], x[0], int(y[0]), span=v)),
]  # fmt: skip
FLOAT_OPTIONS = [
    ("eps", torch.tensor(0.5), lambda m, x, y, v: fgm(m, x, y, eps=v)),
    ("eps", torch.tensor([0.5, 0.1]), lambda m, x, y, v: pgd(m, x, y, eps=v, alpha=0.1, steps=1)),
    ("alpha", True, lambda m, x, y, v: pgd(m, x, y, eps=0.5, alpha=v, steps=1)),
    ("eps", "0.5", lambda m, x, y, v: n_targeted_pgd([m], x, [y], eps=v, alpha=0.1, steps=1)),
    ("max_radius", torch.tensor(2.0), lambda m, x, y, v: boundary_distance(m, x, y, torch.ones_like(x) / 7, v)),
    ("tol", None, lambda m, x, y, v: boundary_distance(m, x, y, torch.ones_like(x) / 7, tol=v)),
    ("unit", torch.tensor(0.02), lambda m, x, y, v: decision_plane(m, [m], x[0], int(y[0]), span=2, unit=v)),
]  # fmt: skip


def _described(value) -> str:
    return re.escape(f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else repr(value))


@pytest.mark.parametrize("option, value, call", INT_OPTIONS, ids=[f"{o}={v!r}" for o, v, _ in INT_OPTIONS])
def test_an_int_option_of_another_kind_is_refused_naming_it(option, value, call):
    x, y = _inputs()
    with pytest.raises(ValueError, match=rf"^{option} must be an integer, got {_described(value)}"):
        call(net(), x, y, value)


@pytest.mark.parametrize("option, value, call", FLOAT_OPTIONS, ids=[f"{o}={v!r}" for o, v, _ in FLOAT_OPTIONS])
def test_a_number_option_of_another_kind_is_refused_naming_it(option, value, call):
    x, y = _inputs()
    with pytest.raises(ValueError, match=rf"^{option} must be a number, got {_described(value)}"):
        call(net(), x, y, value)


def test_a_tensor_option_is_refused_saying_how_to_pass_its_number():
    x, y = _inputs()
    with pytest.raises(ValueError, match=r"pass a Python number, e.g. batch_size.item\(\)$"):
        predict(net(), x, batch_size=torch.tensor(4))


def test_numpy_numbers_are_python_numbers():
    model = net()
    x, y = _inputs(model)
    assert torch.equal(predict(model, x, batch_size=np.int64(4)), predict(model, x, batch_size=4))
    assert torch.equal(pgd(model, x, y, np.float32(0.5), np.float64(0.2), np.int32(2)), pgd(model, x, y, 0.5, 0.2, 2))


def test_bool_options_must_be_bools():
    x, y = _inputs()
    with pytest.raises(ValueError, match=r"^random_start must be True or False, got 'yes'$"):
        pgd(net(), x, y, 0.5, 0.2, 1, random_start="yes")
    with pytest.raises(ValueError, match=r"^exclude_true must be True or False, got 0$"):
        random_target_classes(y, 10, exclude_true=0)


# ----------------------------------------------------------------------------- plain callables, and lists of models
def _callables():
    f = net()

    def function(x):
        return f(x)

    return {
        "lambda": lambda x: f(x),
        "function": function,
        "bound forward": f.forward,
        "partial": functools.partial(f),
    }


CALLABLE_MESSAGE = (
    r"^(model|models\[\d\]|source|f1|eval_mode's models\[0\]|models\['f'\]) must be an nn.Module, got a "
    r"(function|method|functools.partial): the library puts a model in eval mode and reads its device and dtype, "
    r"which a plain callable does not have; wrap it in an nn.Module whose forward calls it and which holds the "
    r"modules it uses \(classaware.contracts says how\)$"
)


@pytest.mark.parametrize("kind", ["lambda", "function", "bound forward", "partial"])
@pytest.mark.parametrize("name", NAMES)
def test_a_plain_callable_is_refused_by_every_function_saying_how_to_wrap_it(name, kind):
    model = _callables()[kind]
    x, y = _inputs()
    with pytest.raises(ValueError, match=CALLABLE_MESSAGE):
        entry_points(model, x, y)[name]()


@pytest.mark.parametrize("name", NAMES)
def test_something_else_where_a_model_belongs_is_refused(name):
    x, y = _inputs()
    with pytest.raises(ValueError, match=r"must be an nn.Module classifier of images in \[0, 1\], got (a|an) "
                                         r"(str|OrderedDict)"):  # fmt: skip
        entry_points("resnet10_w8" if name != "predict" else net().state_dict(), x, y)[name]()


def test_a_model_where_a_list_or_mapping_of_models_belongs_is_refused():
    f = net()
    x, y = _inputs(f)
    with pytest.raises(ValueError, match=r"^models must be a list or tuple of models, got a Sequential"):
        n_targeted_pgd(f, x, [y], 0.5, 0.2, 1)
    with pytest.raises(ValueError, match=r"^models must be a list or tuple of models, got a Sequential"):
        decision_plane(f, f, x[0], int(y[0]), span=1)
    with pytest.raises(ValueError, match=r"^models must be a mapping \{name: model\}, got a list"):
        search_boundaries([f], x, y, torch.ones_like(x), SEARCH)
    with pytest.raises(ValueError, match=r"^models must be a list or tuple of models, got a Sequential"):
        right_for_all(f, x, y)


@given(data=st.data())
def test_every_refusal_happens_before_the_model_changes_or_the_images_move(data):
    """Whatever is refused, the caller's images and model are as they were and every mode is back."""
    model = bn_net()
    model.train()
    model[1].eval()
    flags = [m.training for m in model.modules()]
    x, y = _inputs(bn_net())
    x_before = x.clone()
    bad = data.draw(st.sampled_from(["labels", "images"]))
    takers = [n for n in NAMES if n not in ("eval_mode", "predict" if bad == "labels" else "eval_mode")]
    name = data.draw(st.sampled_from(takers))
    with pytest.raises(ValueError):
        if bad == "labels":
            entry_points(model, x, y + 10)[name]()
        else:
            entry_points(model, x * 2, y)[name]()
    assert [m.training for m in model.modules()] == flags and torch.equal(x, x_before)
