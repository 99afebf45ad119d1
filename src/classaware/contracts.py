"""What the library's public functions accept, checked once at their door, and how they treat
the models they are given. Each check raises ValueError naming the argument and the problem.

Images: a floating tensor of shape (N, C, H, W) with values in [0, 1] (normalisation lives
inside the model). A tensor outside that contract would not fail loudly further in: an attack
on pixels outside [0, 1] returns examples far outside its eps-ball after clipping, and uint8
images fed as 0-255 floats give other labels. Values a hair outside [0, 1] (1 + 1e-7 after a
round trip through a normalisation) are refused too, with a hint to clamp them. Any floating
dtype is accepted, whatever the model's: each function computes in the widest of float32, the
images' dtype and the model's dtype (:func:`work_dtype`), hands the model its input in the
model's own dtype and on its device (:func:`logits`), and returns images in the caller's dtype
and on the caller's device. Images returned in a narrower dtype than the work dtype (float16 or
bfloat16 images, say) are rounded toward the original image, coordinate by coordinate
(:func:`narrowed`), so rounding never enlarges |x'_i - x_i|. Directions and radii
(``boundary``) are returned in the work dtype. The caller's tensors are never written to.

Labels: a 1-D integer tensor (any of int8, int16, int32, int64, uint8) of length N with values
in 0..num_classes-1; they are used as int64 inside (:func:`as_labels`).

Options: numbers are Python (or NumPy) numbers. An option that counts (``steps``,
``batch_size``, ``span``, ``seed``, ``num_classes``) takes an integer: a float such as 2.0, a bool
or a tensor is refused (:func:`as_int`); an option that measures (``eps``, ``alpha``, ``unit``,
radii) takes an int or a float, not a bool or a tensor (:func:`as_number`); flags
(``random_start``, ``exclude_true``) take True or False. A tensor is refused rather than read, since its number may sit on a GPU, and a tensor of
several numbers (a per-image eps, say) has no meaning here: pass ``t.item()``.

Models: an ``nn.Module`` (:func:`check_model`). A plain callable (a function, a lambda, a bound
``forward``) is refused: the library puts each model in eval mode and reads its device and
dtype, which a function does not have, and a function's own modules would silently stay in
training mode. Wrap it, holding the modules it uses::

    class Wrapped(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net  # a submodule: eval_mode reaches it

        def forward(self, x):
            return my_function(self.net, x)

A model maps images to logits, a floating tensor of shape (N, num_classes) with num_classes >= 2,
finite, checked on every forward pass (:func:`logits`). A model that returns anything else (a
tuple of logits and features, a dict) is refused with what came back and how to wrap it; a
one-logit binary classifier, (N, 1), with how to give it two logits; logits holding nan or inf,
saying so (they would otherwise give class 0, or a silent no-op attack); outputs that look like
probabilities (in [0, 1], summing to 1: a final softmax) give a warning. Each call first runs the
model once on one image (:func:`num_classes`, the probe), which also checks the images' channel
count against what the model takes: the model's ``in_channels`` attribute when it declares one,
else the input channels of the first convolution it runs (seen with a dispatch mode, so it works
for functional convolutions and exported graphs alike). A zoo model's normalisation would
otherwise broadcast a one-channel image to three channels and run; a model that changes the
channel count on purpose before its first convolution (repeats a grey channel, say) declares
``in_channels``. A model that fails on one image is refused naming the images' shape. Not
checked: a model whose output is random in eval mode (a randomized defence), which the attacks
and Dist treat as deterministic.

Gradients (attacks, gradient directions, the source of a decision plane) are taken with respect
to the input only, under ``torch.enable_grad()`` and outside inference mode whatever the caller's
context, so every function works inside ``torch.no_grad()`` and ``torch.inference_mode()``, and
on inference tensors (copied first). A model whose logits do not depend on its input in
autograd's graph is refused: precisely, when a model's logits do not require grad, or when no
gradient reaches the copy of the images handed to it (its forward detaches the images, runs
under ``torch.no_grad()``, goes through NumPy, or never reads them). A model whose gradient is
present but zero (a flat loss, a dead ReLU, saturated logits, a model that rounds its input) is
accepted: the image stays put. A caller's ``torch.autocast`` region applies inside (the model
then computes in the autocast dtype; the attack's own arithmetic stays in the work dtype). A gradient holding
nan or inf is refused, and so is a model whose parameters are inference tensors (loaded under
``torch.inference_mode()``), which autograd cannot differentiate through.

Modes: every function runs its models in eval mode and gives each submodule its own training
flag back afterwards (:func:`eval_mode`), so a frozen BatchNorm inside a training model stays
frozen and the module inside an ``nn.DataParallel`` keeps its mode. A ``torch.export`` module
(``ExportedProgram.module()``) raises on ``train()`` and ``eval()`` (pytorch#151726): its graph
runs the mode it was exported in, so it is used as it is when exported in eval mode, and refused
when its graph runs a training-mode operation (batch norm or dropout with ``training=True``).

Models that write into their input: each gets its own copy of it (a model normalising in place, with
``x.sub_(mean)``, changes that copy only).

Memory: a function that takes ``batch_size`` never hands a model more than ``batch_size`` images
(or grid points) at once, so its activations and gradients are bounded by it; beyond that it
holds a few copies of the images themselves and one number per image. The others (the attacks,
``gradient_direction``, ``boundary_distance``) work on the batch they are given.

Cost: one reduction over the images per call, one forward pass of one image per model and call
(the probe), and, per forward pass, a finiteness check of the logits (one host sync).
"""

from __future__ import annotations

import functools
import numbers
import re
import types
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils._python_dispatch import TorchDispatchMode

INTEGER_LABELS = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


# ----------------------------------------------------------------------------- options
def _described(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)


def _tensor_hint(value, name: str) -> str:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return f": pass a Python number, e.g. {name}.item()"
    return ""


def as_int(value, name: str, minimum: int | None = None) -> int:
    """``value`` as a Python int after checking it is an integer (a Python or NumPy integer, not
    a bool, a float or a tensor) and at least ``minimum``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {_described(value)}{_tensor_hint(value, name)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_number(value, name: str) -> float:
    """``value`` as a Python number after checking it is a real number (a Python or NumPy int or
    float, not a bool or a tensor); ValueError naming ``name`` otherwise. Python ints and floats
    come back as they are."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {_described(value)}{_tensor_hint(value, name)}")
    return value if type(value) in (int, float) else float(value)


def as_bool(value, name: str) -> bool:
    """``value`` after checking it is True or False; ValueError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


# ----------------------------------------------------------------------------- images and labels
def check_images(x: torch.Tensor, name: str = "x", dims: int = 4) -> None:
    """``x`` is a floating tensor of ``dims`` dimensions ((N, C, H, W) by default), finite, in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of images, got {type(x).__name__}")
    if not x.is_floating_point():
        hint = " (convert uint8 images with classaware.data.to_float, i.e. x / 255)" if x.dtype == torch.uint8 else ""
        raise ValueError(f"{name} must hold floating-point images in [0, 1], got dtype {x.dtype}{hint}")
    if x.dim() != dims:
        shape = "(N, C, H, W)" if dims == 4 else "(C, H, W)"
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if x.numel():
        low, high = x.amin(), x.amax()  # both nan when x holds a nan
        if not bool((low >= 0) & (high <= 1)):
            lo, hi = low.item(), high.item()
            hint = ""
            if -1e-3 <= lo and hi <= 1 + 1e-3:  # also false for nan
                hint = " (values this close to [0, 1] are usually rounding: clamp them with x.clamp(0, 1))"
            raise ValueError(f"{name} must lie in [0, 1] and be finite; found values in [{lo:g}, {hi:g}]{hint}")


def _label_dtype_problem(y, name: str) -> str | None:
    if not isinstance(y, torch.Tensor):
        return f"{name} must be an integer tensor of class labels, got {type(y).__name__}"
    if y.is_floating_point():
        return (
            f"{name} must be an integer tensor of class labels, got {y.dtype} "
            "(for a model's outputs, pass its predicted labels, e.g. logits.argmax(1) or classaware.models.predict)"
        )
    if y.dtype not in INTEGER_LABELS:
        return (
            f"{name} must be an integer tensor of class labels ({', '.join(map(str, INTEGER_LABELS))}), got {y.dtype}"
        )
    return None


def as_labels(y: torch.Tensor, n: int | None, num_classes: int | None = None, name: str = "y") -> torch.Tensor:
    """``y`` as int64 after checking it is a 1-D integer tensor of ``n`` labels (any length when
    ``n`` is None) in 0..num_classes-1 (when ``num_classes`` is given); ValueError naming ``name`` otherwise."""
    problem = _label_dtype_problem(y, name)
    if problem:
        raise ValueError(problem)
    if y.dim() != 1 or (n is not None and len(y) != n):
        shape = "(N,)" if n is None else f"({n},)"
        raise ValueError(f"{name} must have shape {shape}, one label per image, got {tuple(y.shape)}")
    n = len(y)
    if n and (int(y.min()) < 0 or (num_classes is not None and int(y.max()) >= num_classes)):
        top = "" if num_classes is None else f"..{num_classes - 1}"
        raise ValueError(f"{name} must hold class labels in 0{top}, found {int(y.min())}..{int(y.max())}")
    return y.long()


def as_label_rows(y: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """``y`` of shape (n,) or (M, n), integer, as int64 of shape (M, n)."""
    problem = _label_dtype_problem(y, name)
    if problem:
        raise ValueError(problem)
    if y.dim() not in (1, 2) or y.shape[-1] != n:
        raise ValueError(f"{name} must have shape ({n},) or (M, {n}): labels of M models, got {tuple(y.shape)}")
    return (y[None] if y.dim() == 1 else y).long()


# ----------------------------------------------------------------------------- models
def _article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _callable_kind(f) -> str:
    if isinstance(f, functools.partial):
        return "a functools.partial"
    if isinstance(f, types.MethodType | types.BuiltinMethodType):
        return "a method"
    if isinstance(f, types.FunctionType | types.BuiltinFunctionType):
        return "a function"
    return f"a callable {type(f).__name__}"


def check_model(model, name: str = "model") -> None:
    """``model`` is an ``nn.Module``; ValueError naming ``name`` and saying how to make one otherwise."""
    if isinstance(model, nn.Module):
        return
    if isinstance(model, torch.export.ExportedProgram):
        raise ValueError(f"{name} is a torch.export.ExportedProgram: pass {name}.module(), the nn.Module that runs it")
    if callable(model):
        raise ValueError(
            f"{name} must be an nn.Module, got {_callable_kind(model)}: the library puts a model in eval mode and "
            "reads its device and dtype, which a plain callable does not have; wrap it in an nn.Module whose forward "
            "calls it and which holds the modules it uses (classaware.contracts says how)"
        )
    raise ValueError(
        f"{name} must be an nn.Module classifier of images in [0, 1], got {_article(type(model).__name__)}"
    )


def as_model_list(models, name: str = "models") -> list[nn.Module]:
    """``models`` (a list, a tuple, an ``nn.ModuleList`` or another iterable of models that is not
    itself a model) as a list, each checked by :func:`check_model`."""
    is_one_model = isinstance(models, nn.Module) and not isinstance(models, nn.ModuleList)
    if is_one_model or isinstance(models, str | bytes | Mapping | torch.Tensor) or not isinstance(models, Iterable):
        hint = ": pass [model] for one model" if is_one_model else ""
        raise ValueError(f"{name} must be a list or tuple of models, got {_article(type(models).__name__)}{hint}")
    models = list(models)
    for i, model in enumerate(models):
        check_model(model, f"{name}[{i}]")
    return models


def as_model_mapping(models, name: str = "models") -> dict[str, nn.Module]:
    """``models`` ({name: model}) as a dict, each model checked by :func:`check_model`."""
    if not isinstance(models, Mapping):
        raise ValueError(f"{name} must be a mapping {{name: model}}, got {_article(type(models).__name__)}")
    for key, model in models.items():
        check_model(model, f"{name}[{key!r}]")
    return dict(models)


def model_device(model: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the model's parameters, else of its buffers, else ``fallback`` (a model
    without either runs wherever its input is)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device(fallback)


def model_dtype(model: nn.Module, fallback: torch.dtype) -> torch.dtype:
    """The dtype of the model's first floating parameter, else floating buffer, else ``fallback``
    (a model without either gets its input in the dtype it came in)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return fallback


def work_dtype(models, x: torch.Tensor) -> torch.dtype:
    """The dtype the library computes in for ``models`` on images ``x``: the widest of float32,
    x's dtype and every model's dtype (float16 and bfloat16 promote to float32)."""
    dtype = torch.promote_types(torch.float32, x.dtype)
    for model in models:
        dtype = torch.promote_types(dtype, model_dtype(model, x.dtype))
    return dtype


def narrowed(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x_adv`` (computed in a dtype at least as wide as x's) in x's dtype and on x's device,
    each coordinate that rounding would move away from x moved one step back toward it, so
    |result_i - x_i| <= |x_adv_i - x_i| and values stay in [0, 1]. Same dtype: just moved."""
    x, out = x.detach(), x_adv.to(x.dtype)
    if out.dtype != x_adv.dtype:
        x_wide = x.to(x_adv.device, x_adv.dtype)  # exact: x_adv's dtype holds every value of x's
        past = (out.to(x_adv.dtype) - x_wide).abs() > (x_adv - x_wide).abs()
        out = torch.where(past, torch.nextafter(out, x.to(out.device)), out)
    return out.to(x.device)


# ----------------------------------------------------------------------------- modes
def _training_operation(module: nn.Module) -> str | None:
    """For a graph module (what ``torch.export`` gives), the first operation of its graph that
    runs in training mode (an ATen operation whose ``training`` or ``train`` argument is True),
    as ``'aten.batch_norm.default with training=True'``; None for any other module."""
    if not isinstance(module, fx.GraphModule):
        return None
    for node in module.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None:
            continue
        for i, argument in enumerate(schema.arguments):
            if argument.name in ("training", "train"):
                value = node.args[i] if i < len(node.args) else node.kwargs.get(argument.name)
                if value is True:
                    return f"{node.target} with {argument.name}=True"
    return None


def _enter_eval(model: nn.Module) -> None:
    for module in model.modules():
        operation = _training_operation(module)
        if operation:
            raise ValueError(
                f"the model was exported in training mode (its graph runs {operation}): export it after "
                "model.eval(), since an exported graph keeps the mode it was exported in and its train() and eval() "
                "raise (pytorch#151726)"
            )
    try:
        model.eval()
    except NotImplementedError:  # a torch.export module inside, whose eval() raises: its mode is its graph's
        for module in model.modules():
            module.training = False


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Every module of ``models`` in eval mode inside the block; afterwards each module and
    submodule has its own training flag back, also after an error.

    Restored parent first, so a submodule's flag (a frozen BatchNorm in a training model, the
    module an ``nn.DataParallel`` wraps) wins over the ``train()`` of the module that holds it.
    A ``torch.export`` module, whose ``train()`` and ``eval()`` raise, runs the mode it was
    exported in: it is used as it is when that is eval mode, and refused when its graph runs
    batch norm or dropout in training mode.

    Arguments:
        *models (nn.Module): the models to run in eval mode. A plain callable is refused.

    Shape:
        - nothing: the models' inputs and outputs are the caller's business.

    Examples::

        >>> f = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5)).train()
        >>> _ = f[1].eval()  # a frozen BatchNorm in a model being trained
        >>> with eval_mode(f):
        ...     print([m.training for m in f.modules()])
        [False, False, False, False]
        >>> [m.training for m in f.modules()]
        [True, True, False, True]
    """
    for i, model in enumerate(models):
        check_model(model, f"models[{i}]")
    saved = [(m, m.training) for model in models for m in model.modules()]
    try:
        for model in models:
            _enter_eval(model)
        yield
    finally:
        for m, mode in saved:
            try:
                m.train(mode)
            except NotImplementedError:  # a torch.export module (or one holding it): its flag is only a flag
                m.training = mode


# ----------------------------------------------------------------------------- forward passes
def _describe(out) -> str:
    if isinstance(out, torch.Tensor):
        return f"a {out.dtype} tensor of shape {tuple(out.shape)}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of ({', '.join(_describe(o) for o in out)})"
    if isinstance(out, dict):
        return f"a {type(out).__name__} with keys {list(out)}"
    return f"a {type(out).__name__}"


def model_input(model: nn.Module, x: torch.Tensor, owned: bool = False) -> torch.Tensor:
    """``x`` in the model's dtype and on its device, in a tensor of its own: a copy unless the
    conversion made one or the caller hands ``x`` over (``owned``: nobody reads it afterwards),
    so that a model writing into its input (``x.sub_(mean)``) never writes into another's tensor."""
    out = x.to(model_device(model, x.device), model_dtype(model, x.dtype))
    return out.clone() if out is x and not owned else out


def check_logits(out, x: torch.Tensor) -> torch.Tensor:
    """``out`` after checking it is logits for images ``x``: a floating tensor of shape
    (len(x), num_classes), num_classes >= 2; ValueError saying what came back otherwise."""
    if isinstance(out, torch.Tensor) and out.is_floating_point() and out.dim() == 2 and len(out) == len(x):
        if out.shape[1] >= 2:
            return out
        if out.shape[1] == 1:
            raise ValueError(
                f"the model returns one logit per image (shape {tuple(out.shape)}): the library needs one logit per "
                "class. For a binary classifier whose logit z scores class 1, return two logits, "
                "torch.cat([torch.zeros_like(z), z], 1) (softmax of [0, z] is [1 - sigmoid(z), sigmoid(z)])"
            )
        raise ValueError(f"the model returns no logit per image (shape {tuple(out.shape)}): it needs num_classes >= 2")
    hint = ""
    if isinstance(out, (tuple, list, dict)):
        first = "out['logits']" if isinstance(out, dict) else "out[0]"
        hint = (
            "; pass a module whose forward returns only the logits instead, e.g. an nn.Module holding "
            f"the model with `def forward(self, x): out = self.model(x); return {first}`"
        )
    raise ValueError(
        f"the model must return logits, a floating tensor of shape ({len(x)}, num_classes), "
        f"for images of shape {tuple(x.shape)}; it returned {_describe(out)}{hint}"
    )


def _not_finite(out: torch.Tensor, x: torch.Tensor, whose: str = "the model's") -> ValueError:
    kind = "nan" if bool(out.isnan().any()) else "inf" if bool((out == torch.inf).any()) else "-inf"
    return ValueError(
        f"{whose} logits must be finite; for images of shape {tuple(x.shape)} they hold {kind} (a weight that is nan "
        "or inf, or a computation that overflows in the model's dtype, gives such logits)"
    )


def logits(model: nn.Module, x: torch.Tensor, owned: bool = False) -> torch.Tensor:
    """``model(x)``, x given in the model's dtype and on its device in a tensor of its own
    (:func:`model_input`), checked to be finite logits (:func:`check_logits`)."""
    out = check_logits(model(model_input(model, x, owned)), x)
    if not bool(torch.isfinite(out).all()):
        raise _not_finite(out, x)
    return out


class _FirstConvolution(TorchDispatchMode):
    """Records the input channels of the first convolution run while it is active."""

    def __init__(self):
        super().__init__()
        self.channels: int | None = None

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch (2.4 on) wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this says
        # False; the first call then imports torch._dynamo, about 1.7 s of every process that probes a
        # model (each pipeline stage). The probe runs the model eagerly, so there is nothing to disable.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.channels is None and func.overloadpacket in (torch.ops.aten.convolution, torch.ops.aten._convolution):
            weight = args[1]
            transposed = args[6] if len(args) > 6 else kwargs.get("transposed", False)
            groups = args[8] if len(args) > 8 else kwargs.get("groups", 1)
            self.channels = int(weight.shape[0]) if transposed else int(weight.shape[1]) * int(groups)
        return func(*args, **kwargs)


_CONVOLUTION_NODES = {  # ATen convolutions in a graph, and where their groups and transposed arguments sit
    torch.ops.aten.conv1d: (6, None),
    torch.ops.aten.conv2d: (6, None),
    torch.ops.aten.conv3d: (6, None),
    torch.ops.aten.convolution: (8, 6),
    torch.ops.aten._convolution: (8, 6),
}


def _graph_convolution(graph_module: fx.GraphModule) -> int | None:
    """The input channels of the first convolution of an exported graph, from its weight."""
    for node in graph_module.graph.nodes:
        packet = getattr(node.target, "overloadpacket", None)
        if node.op != "call_function" or packet not in _CONVOLUTION_NODES:
            continue
        groups_at, transposed_at = _CONVOLUTION_NODES[packet]
        weight = node.args[1] if len(node.args) > 1 else None
        if getattr(weight, "op", None) != "get_attr":
            return None
        w = functools.reduce(getattr, weight.target.split("."), graph_module)
        groups = node.args[groups_at] if len(node.args) > groups_at else 1
        transposed = transposed_at is not None and len(node.args) > transposed_at and node.args[transposed_at]
        return int(w.shape[0]) if transposed else int(w.shape[1]) * int(groups)
    return None


def _first_convolution_module(model: nn.Module) -> int | None:
    """The input channels of the model's first convolution module (in the order its modules are
    registered), or of the first convolution of an exported graph: what it takes when it fails
    before running one (a normalisation that cannot broadcast 4 channels against 3 means, an
    exported graph's guard on the channel count)."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
        if isinstance(module, fx.GraphModule):
            channels = _graph_convolution(module)  # None for a traced graph that calls convolution modules
            if channels is not None:
                return channels
    return None


def _declared_channels(model: nn.Module) -> int | None:
    channels = getattr(model, "in_channels", None)
    return channels if isinstance(channels, int) and not isinstance(channels, bool) else None


def _channel_problem(x: torch.Tensor, name: str, takes: int | None, why: str) -> ValueError | None:
    c = x.shape[1]
    if takes is None or takes == c:
        return None
    return ValueError(
        f"{name} holds images of {c} channel{'s' if c != 1 else ''}, but the model takes {takes} ({why}); "
        "a model that changes the channel count on purpose before its first convolution declares in_channels"
    )


@torch.no_grad()
def num_classes(model: nn.Module, x: torch.Tensor, name: str = "x") -> int:
    """How many logits ``model`` gives, from one forward pass (eval mode) of the first image of
    ``x``: the probe every call makes. It checks what the module docstring says: the channel
    count of ``x`` (named ``name``) against the model's ``in_channels`` or its first convolution's
    input channels, that the model runs on the image, and that it returns finite logits for >= 2
    classes."""
    one = x[:1]
    declared = _declared_channels(model)
    problem = _channel_problem(one, name, declared, "its in_channels")
    if problem:
        raise problem
    first = _FirstConvolution()
    with eval_mode(model):
        try:
            with first:
                out = model(model_input(model, one))
        except (torch.OutOfMemoryError, KeyboardInterrupt):
            raise
        except Exception as error:
            takes = first.channels if first.channels is not None else _first_convolution_module(model)
            problem = _channel_problem(one, name, takes, "the input channels of its first convolution")
            if problem:
                raise problem from error
            hint = ""
            if re.search(r"(size\(\)|shape)\[0\]", str(error)) and any(
                isinstance(m, fx.GraphModule) for m in model.modules()
            ):
                hint = (
                    " (an exported model takes other batch sizes than its example's only if exported with a dynamic "
                    "batch dimension: torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},)))"
                )
            raise ValueError(
                f"the model fails on images of shape {tuple(one.shape)}: {type(error).__name__}: {error}{hint}"
            ) from error
    out = check_logits(out, one)
    if not bool(torch.isfinite(out).all()):
        raise _not_finite(out, one)
    if bool((out.amin() >= 0) & ((out.sum(1) - 1).abs().amax() <= 1e-5)):
        warnings.warn(
            "the model's outputs look like probabilities (in [0, 1], summing to 1): the library takes logits, and "
            "the cross-entropy of probabilities gives attacks and gradient directions weak, vanishing gradients; "
            "drop the model's final softmax (log-probabilities are fine)",
            UserWarning,
            stacklevel=3,
        )
    if declared is None:
        problem = _channel_problem(one, name, first.channels, "the input channels of its first convolution")
        if problem:
            raise problem
    return out.shape[1]


# ----------------------------------------------------------------------------- gradients
NO_GRADIENT_PATH = (
    "{}'s logits do not depend on its input in autograd's graph (its forward detaches the images, runs under "
    "torch.no_grad() or goes through NumPy): an attack or a gradient direction needs the gradient of the loss with "
    "respect to the images"
)


def loss_gradient(
    models: list[nn.Module], x: torch.Tensor, labels: list[torch.Tensor], names: list[str] | None = None
) -> torch.Tensor:
    """grad_x sum_i sum_batch CE(f_i(x), labels_i), per sample, in x's dtype (models must be in
    eval mode; each sees its own copy of x in its own dtype, its loss is summed in x's).

    Runs under ``torch.enable_grad()`` outside inference mode, whatever the caller's context.
    ValueError (naming the model by ``names``, default ``model`` or ``models[i]``) when a model's
    logits do not depend on x in autograd's graph, when they are not finite, when the gradient
    is not finite, and when a model's parameters are inference tensors."""
    if names is None:
        names = ["model"] if len(models) == 1 else [f"models[{i}]" for i in range(len(models))]
    with torch.inference_mode(False), torch.enable_grad():
        leaf = x.detach()
        if leaf.is_inference():  # made under torch.inference_mode(): autograd cannot record it
            leaf = leaf.clone()
        leaf.requires_grad_(True)
        reached = [False] * len(models)

        def mark(i: int, grad: torch.Tensor) -> None:
            reached[i] = True

        outs, losses = [], []
        for i, (model, t) in enumerate(zip(models, labels, strict=True)):
            inp = model_input(model, leaf)
            inp.register_hook(functools.partial(mark, i))
            try:
                out = check_logits(model(inp), x)
            except RuntimeError as error:
                if "Inference tensors cannot be saved for backward" not in str(error):
                    raise
                raise ValueError(
                    f"{names[i]} has parameters or buffers that are inference tensors (made under "
                    "torch.inference_mode()), which autograd cannot take a gradient through: load it outside "
                    "torch.inference_mode() (predict and the boundary searches take no gradient and accept it)"
                ) from error
            outs.append(out)
            t = t.clone() if t.is_inference() else t  # labels made under inference mode, as the images
            losses.append(F.cross_entropy(out.to(x.dtype), t, reduction="sum"))
        for name, out in zip(names, outs, strict=True):
            if not out.requires_grad:
                raise ValueError(NO_GRADIENT_PATH.format(name))
        (g,) = torch.autograd.grad(sum(losses), leaf, allow_unused=True)
        for name, hit in zip(names, reached, strict=True):
            if not hit:
                raise ValueError(NO_GRADIENT_PATH.format(name))
    finite = torch.stack([torch.isfinite(out).all() for out in outs] + [torch.isfinite(g).all()])
    if not bool(finite.all()):
        for name, out in zip(names, outs, strict=True):
            if not bool(torch.isfinite(out).all()):
                raise _not_finite(out, x, "the model's" if name == "model" else f"{name}'s")
        raise ValueError(
            "the gradient of the loss with respect to the images holds nan or inf, though the logits are finite "
            "(an operation of the model whose derivative is infinite at these images, e.g. sqrt at 0)"
        )
    return g
