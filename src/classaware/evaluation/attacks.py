"""Attacks from anywhere behind one adapter: ``adversary.generate(x, y, t, index) -> x'``.

Spec strings (``--attack``), each ``NAME(key=value, ...)`` with literal values (numbers, strings,
booleans, None, and arithmetic of numbers such as ``8/255``; nothing is evaluated as code):

======================================  ===========================================================
``pgd(...)``, ``fgm(...)``,             the project's attacks (:mod:`classaware.attacks`): eps in
``n_targeted(...)``                     pixel units of [0, 1] images, ``norm`` l2 (the paper's) or linf
``torchattacks:CLASS(...)``             ``torchattacks.CLASS(source, **kwargs)``; targeted through
                                        ``set_mode_targeted_by_label``, called with the target labels
``torchattack:CLASS(...)``              ``torchattack.create_attack(CLASS, source, **kwargs)`` (the PyPI
                                        package ``torchattack``); targeted with ``targeted=True``
``py:MODULE:FUNCTION(...)``             any callable ``f(x, y, t=None, **kwargs) -> x'``
``transferattack:NAME(...)`` or         TransferAttack's conventions: the object returns the
``transferattack:MODULE:CLASS(...)``    *perturbation* (x' = x + delta), targeted labels are passed
                                        as ``[y, t]``, and the surrogate it would load by name
                                        (``load_model``) is replaced by the source
======================================  ===========================================================

Every batch an attack returns is checked before it is used: the shape of x, a floating tensor,
finite, in [0, 1] (within 1e-6, then clipped), and, when an eps and a norm are known, inside the
eps ball (within 1e-5 + 1e-6 eps): :class:`AttackError` names the attack, the batch and what was
found otherwise. ``eps`` sweeps set the attack's own eps argument (``eps``; TransferAttack's
``epsilon``).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import attacks as project

PROJECT = ("fgm", "pgd", "n_targeted")
KINDS = ("project", "torchattacks", "torchattack", "py", "transferattack")
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_SPEC = re.compile(
    r"^(?:(?P<kind>torchattacks|torchattack|py|transferattack):)?(?P<target>[\w.:]+?)\s*(?:\((?P<args>.*)\))?$", re.S
)
BALL_ATOL, BALL_RTOL, BOX_TOL = 1e-5, 1e-6, 1e-6


class AttackError(ValueError):
    """An attack spec that names nothing usable, or an attack whose output breaks its contract."""


def _literal(node: ast.AST, where: str):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, where)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _literal(node.left, where), _literal(node.right, where)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
            return _BINOPS[type(node.op)](a, b)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e, where) for e in node.elts)
    raise AttackError(
        f"{where}: arguments must be literal numbers, strings, booleans or None, got {ast.unparse(node)!r}"
    )


@dataclass(frozen=True)
class AttackSpec:
    """An attack as named: its kind (one of :data:`KINDS`), the class or function, keyword arguments."""

    kind: str
    target: str
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> AttackSpec:
        """``KIND:TARGET(key=value, ...)`` (see the module docstring); AttackError when it does not parse."""
        m = _SPEC.match(text.strip())
        if not m:
            raise AttackError(f"attack {text!r}: expected NAME(key=value, ...), e.g. pgd(eps=1.0, alpha=0.2, steps=10)")
        kind, target, args = m["kind"], m["target"], m["args"] or ""
        if kind is None:
            if target not in PROJECT:
                raise AttackError(
                    f"attack {text!r}: unknown attack {target!r}; the project's are {', '.join(PROJECT)}, "
                    "others need a prefix (torchattacks:, torchattack:, py:, transferattack:)"
                )
            kind = "project"
        try:
            call = ast.parse(f"f({args})", mode="eval").body
        except SyntaxError as exc:
            raise AttackError(f"attack {text!r}: arguments do not parse: {exc.msg}") from exc
        if call.args:
            raise AttackError(f"attack {text!r}: give arguments by name (key=value)")
        kwargs = {k.arg: _literal(k.value, f"attack {text!r}") for k in call.keywords}
        return cls(kind, target, kwargs)

    def text(self) -> str:
        """The spec written back, arguments sorted: its identity."""
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.kwargs.items()))
        prefix = "" if self.kind == "project" else f"{self.kind}:"
        return f"{prefix}{self.target}({args})"

    @property
    def eps_key(self) -> str:
        return "epsilon" if self.kind == "transferattack" else "eps"

    def with_eps(self, eps: float | None) -> AttackSpec:
        """The same attack with its eps argument set (None: as given)."""
        return self if eps is None else AttackSpec(self.kind, self.target, {**self.kwargs, self.eps_key: float(eps)})

    @property
    def eps(self) -> float | None:
        value = self.kwargs.get(self.eps_key)
        return None if value is None else float(value)

    @property
    def norm(self) -> str | None:
        """l2, linf or None (unknown: no ball check), as the attack's own arguments or name say."""
        given = self.kwargs.get("norm")
        if given is not None:
            return {"linfty": "linf", "Linf": "linf", "inf": "linf", "L2": "l2", "2": "l2"}.get(str(given), str(given))
        if self.kind == "project":
            return "l2"
        if self.kind in ("torchattacks", "torchattack"):
            return "l2" if self.target.upper().endswith("L2") else "linf"
        if self.kind == "transferattack":
            return "linf"
        return None


def _import(path: str, what: str):
    module, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise AttackError(f"{what}: cannot import {module!r}: {exc}") from exc
    for part in name.split("."):
        if not hasattr(obj, part):
            raise AttackError(f"{what}: {module!r} has no {name!r}")
        obj = getattr(obj, part)
    return obj


def _project(spec: AttackSpec, source: nn.Module, targeted: bool) -> Callable:
    kwargs = dict(spec.kwargs)
    if spec.target == "fgm":
        fn = project.fgm
    elif spec.target == "pgd":
        fn = project.pgd
    else:

        def fn(model, x, y, target_classes=None, **kw):
            if target_classes is None:
                raise AttackError("n_targeted is a targeted attack: give target classes (--targets_mode)")
            return project.n_targeted_pgd([model], x, [target_classes], **kw)

    try:
        inspect.signature(fn).bind(source, None, None, **kwargs)
    except TypeError as exc:
        raise AttackError(f"attack {spec.text()}: {exc}") from exc

    def run(x, y, t):
        return fn(source, x, y, target_classes=t if targeted else None, **kwargs)

    return run


def _torchattacks(spec: AttackSpec, source: nn.Module, targeted: bool) -> Callable:
    try:
        import torchattacks
    except ImportError as exc:
        raise AttackError("torchattacks: attacks need the torchattacks package (pip install torchattacks)") from exc
    cls = getattr(torchattacks, spec.target, None)
    if not (isinstance(cls, type) and issubclass(cls, torchattacks.attack.Attack)):
        raise AttackError(f"torchattacks has no attack {spec.target!r}")
    try:
        atk = cls(source, **spec.kwargs)
    except TypeError as exc:
        raise AttackError(f"attack {spec.text()}: {exc}") from exc
    if targeted:
        atk.set_mode_targeted_by_label(quiet=True)
    return lambda x, y, t: atk(x, t if targeted else y)


def _torchattack(spec: AttackSpec, source: nn.Module, targeted: bool) -> Callable:
    try:
        import torchattack
    except ImportError as exc:
        raise AttackError("torchattack: attacks need the torchattack package (pip install torchattack)") from exc
    from ..contracts import model_device

    kwargs = {**spec.kwargs, **({"targeted": True} if targeted else {})}
    try:
        atk = torchattack.create_attack(spec.target, source, None, model_device(source), **kwargs)
    except (TypeError, ValueError) as exc:
        raise AttackError(f"attack {spec.text()}: {exc}") from exc
    return lambda x, y, t: atk(x, t if targeted else y)


def _callable(spec: AttackSpec, source: nn.Module, targeted: bool) -> Callable:
    fn = _import(spec.target, f"attack {spec.text()}")
    if not callable(fn):
        raise AttackError(f"attack {spec.text()}: {spec.target} is not callable")
    kwargs = dict(spec.kwargs)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if params and not takes_any and "eps" in kwargs and "eps" not in params:
        kwargs.pop("eps")  # an eps the function does not take is only the ball check's
    fn = functools.partial(fn, **kwargs) if kwargs else fn
    return lambda x, y, t: fn(x, y, t if targeted else None)


def transferattack_class(target: str):
    """TransferAttack's attack class ``target``: ``transferattack.load_attack_class(NAME)`` for a
    bare name (TransferAttack installed), else ``MODULE:CLASS``."""
    if ":" not in target and "." not in target:
        try:
            import transferattack
        except ImportError as exc:
            raise AttackError(
                f"transferattack:{target}: TransferAttack is not importable (it is not on PyPI: put its folder on "
                "PYTHONPATH), or name the class as MODULE:CLASS"
            ) from exc
        return transferattack.load_attack_class(target)
    return _import(target, f"transferattack:{target}")


def with_surrogate(cls: type, source: nn.Module) -> type:
    """A subclass of TransferAttack-style ``cls`` whose ``load_model`` returns ``source``, so
    constructing it loads no surrogate of its own (TransferAttack's documented override point)."""
    return type(f"{cls.__name__}OnSource", (cls,), {"load_model": lambda self, model_name: source})


def _transferattack(spec: AttackSpec, source: nn.Module, targeted: bool) -> Callable:
    cls = with_surrogate(transferattack_class(spec.target), source)
    kwargs = {"model_name": "classaware-source", **spec.kwargs, "targeted": targeted}
    try:
        atk = cls(**kwargs)
    except TypeError as exc:
        raise AttackError(f"attack {spec.text()}: {exc}") from exc

    def run(x, y, t):
        delta = atk(x, [y, t] if targeted else y)
        if not isinstance(delta, torch.Tensor) or delta.shape != x.shape:
            return delta  # the checks say what came back
        return x + delta.to(x.device, x.dtype)

    return run


BUILDERS = {
    "project": _project,
    "torchattacks": _torchattacks,
    "torchattack": _torchattack,
    "py": _callable,
    "transferattack": _transferattack,
}


@dataclass
class Adversary:
    """An attack bound to a source: ``generate(x, y, t, index)`` gives checked adversarial examples
    (``run(x, y, t, index)`` makes them; ``index``, the images' positions in the data, is what a
    set saved on disk is read by).

    ``name`` and ``identity`` name it (the cache key and the manifest); ``eps`` and ``norm`` are
    what its ball check uses (None: no check)."""

    name: str
    identity: dict
    eps: float | None
    norm: str | None
    run: Callable = field(repr=False)
    slack: float = 0.0  # per coordinate, on top of eps: 1/255 for examples saved as 8-bit images

    def generate(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor:
        out = self.run(x, y, t, index)
        return check_adversarial(
            out, x, self.eps, self.norm, f"attack {self.name} (images {int(index[0])}..{int(index[-1])})", self.slack
        )


def check_adversarial(
    x_adv, x: torch.Tensor, eps: float | None, norm: str | None, where: str, slack: float = 0.0
) -> torch.Tensor:
    """``x_adv`` checked against the adversarial-example contract (see the module docstring), on x's
    device and dtype, clipped to [0, 1] within :data:`BOX_TOL`; AttackError saying what is wrong.
    ``slack`` widens the ball by that much per coordinate (linf: + slack; l2: + slack sqrt(d)), for
    examples stored as 8-bit images, whose rounding can move a pixel up to 1/255 past eps."""
    if not isinstance(x_adv, torch.Tensor):
        raise AttackError(f"{where} returned a {type(x_adv).__name__}, not a tensor of images")
    if tuple(x_adv.shape) != tuple(x.shape):
        raise AttackError(f"{where} returned images of shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    if not x_adv.is_floating_point():
        raise AttackError(f"{where} returned {x_adv.dtype} images, expected floating point in [0, 1]")
    x_adv = x_adv.detach().to(x.device, x.dtype)
    if not bool(torch.isfinite(x_adv).all()):
        raise AttackError(f"{where} returned non-finite values (nan or inf)")
    low, high = float(x_adv.min()), float(x_adv.max())
    if low < -BOX_TOL or high > 1 + BOX_TOL:
        raise AttackError(f"{where} returned values in [{low:g}, {high:g}], outside [0, 1]")
    x_adv = x_adv.clamp(0, 1)
    if eps is not None and norm is not None and len(x):
        delta = (x_adv - x).flatten(1).double()
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        worst = int(size.argmax())
        allowed = eps + (slack if norm == "linf" else slack * math.sqrt(delta.shape[1]))
        if float(size[worst]) > allowed + BALL_ATOL + BALL_RTOL * eps:
            raise AttackError(
                f"{where} left its eps ball: ||x' - x||_{'inf' if norm == 'linf' else 2} = {float(size[worst]):.6g} "
                f"> eps = {eps:g}{f' (+ {slack:.4g} per pixel for 8-bit rounding)' if slack else ''} (image {worst} of the batch)"
            )
    return x_adv


def bind(
    spec: AttackSpec | str, source: nn.Module, targeted: bool, eps: float | None = None, norm: str | None = None
) -> Adversary:
    """``spec`` (with its eps set to ``eps`` when given) bound to ``source``, for a targeted or a
    non-targeted objective; ``norm`` is the ball's norm when the spec does not say (a ``py:``
    callable). AttackError for a spec that names nothing usable. Nothing is run."""
    spec = AttackSpec.parse(spec) if isinstance(spec, str) else spec
    spec = spec.with_eps(eps)
    norm = spec.norm or norm
    if norm not in (None, "l2", "linf"):
        raise AttackError(f"attack {spec.text()}: norm must be l2 or linf, got {norm!r}")
    if spec.eps is not None and not (spec.eps >= 0 and math.isfinite(spec.eps)):
        raise AttackError(f"attack {spec.text()}: eps must be a finite number >= 0")
    run = BUILDERS[spec.kind](spec, source, targeted)
    identity = {"attack": spec.text(), "kind": spec.kind, "targeted": targeted}
    return Adversary(spec.text(), identity, spec.eps, norm, lambda x, y, t, index: run(x, y, t))


def callable_adversary(
    fn: Callable, name: str, targeted: bool, eps: float | None = None, norm: str | None = None
) -> Adversary:
    """A Python callable ``f(x, y, t=None) -> x'`` (the API's ``attack=``) as an Adversary."""
    if not callable(fn):
        raise AttackError(f"attack must be a spec string or a callable f(x, y, t=None) -> x', got {type(fn).__name__}")
    identity = {"attack": name, "kind": "callable", "targeted": targeted, "eps": eps, "norm": norm}
    return Adversary(name, identity, eps, norm, lambda x, y, t, index: fn(x, y, t if targeted else None))
