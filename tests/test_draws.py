"""The one door of a replicate's randomness (:mod:`classaware.draws`): every stage draws through
its options' ``Draws`` alone, and the door gives replicate i > 0 other draws than replicate 0 in
every kind of draw, while replicate 0 keeps every seed and selection as given."""

from __future__ import annotations

import ast
import dataclasses

import pytest
import torch
from helpers_repo import REPO
from hypothesis import given
from hypothesis import strategies as st

from classaware import stages
from classaware.data import balanced_split, balanced_subset
from classaware.draws import Draws

STAGES = REPO / "src" / "classaware" / "stages"
# what draws at random: torch's, NumPy's and Python's generators and samplers, and the library's
# selections, which take the replicate's shift as a bare argument
RANDOM = {
    "Generator", "manual_seed", "seed", "initial_seed", "randperm", "randint", "rand", "randn", "rand_like",
    "randn_like", "randint_like", "normal", "bernoulli", "multinomial", "poisson", "shuffle", "permutation",
    "choice", "sample", "SeedSequence", "default_rng", "balanced_subset", "balanced_split", "shifted",
}  # fmt: skip


def _through_the_door(node: ast.AST) -> bool:
    """A call of a method of some ``X.draws`` (``cfg.draws.seed(...)``)."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "draws"
    )


def _audit_generator(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "generator" and getattr(node.value, "id", None) == "ctx"


def draws_past_the_door(source: str) -> list[str]:
    """Where a stage module's code draws at random other than through ``cfg.draws``: a random
    primitive called without a generator from the door, a module of random numbers imported, or
    a seed option (``*_seed``, ``seed``, ``seed_shift``) read anywhere but as the argument of a
    ``draws`` method."""
    tree = ast.parse(source)
    door_calls = [node for node in ast.walk(tree) if _through_the_door(node)]
    door_args = {id(arg) for call in door_calls for arg in call.args}
    # names bound to the door's generators: `g = cfg.draws.generator(...)`
    door_names = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _through_the_door(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}

    def seeded_by_the_door(call: ast.Call) -> bool:
        """With a generator of the door, or the audit's own (``ctx.generator``: which batches an
        audit re-checks, not a draw of the run)."""
        return any(
            k.arg == "generator"
            and (_through_the_door(k.value) or getattr(k.value, "id", None) in door_names or _audit_generator(k.value))
            for k in call.keywords
        )

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not _through_the_door(node):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in RANDOM and not seeded_by_the_door(node):
                found.append(f"line {node.lineno}: calls {name}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [getattr(node, "module", None) or ""] + [a.name for a in node.names]
            if any(n == "random" or n.endswith(".random") or n in RANDOM for n in names):
                found.append(f"line {node.lineno}: imports {', '.join(filter(None, names))}")
        elif isinstance(node, ast.Attribute) and id(node) not in called | door_args:
            if node.attr == "seed" or node.attr.endswith(("_seed", "seed_shift")):
                found.append(f"line {node.lineno}: reads {node.attr} past cfg.draws")
    return found


@pytest.mark.parametrize("module", sorted(p.stem for p in STAGES.glob("*.py") if p.stem != "__init__"))
def test_no_stage_draws_past_the_door(module):
    assert draws_past_the_door((STAGES / f"{module}.py").read_text()) == []


def test_a_stage_that_has_seed_options_has_the_door():
    for command in stages.COMMANDS:
        fields = {f.name for f in dataclasses.fields(stages.load(command).Config)}
        if any(f == "seed" or f.endswith("_seed") for f in fields):
            assert "draws" in fields, command


@pytest.mark.parametrize(
    "code, found",
    [
        ("g = torch.Generator().manual_seed(cfg.target_class_seed)", ["calls manual_seed", "calls Generator", "reads target_class_seed past cfg.draws"]),
        ("spec = TrainSpec(cfg.arch, cfg.init_seed)", ["reads init_seed past cfg.draws"]),
        ("idx = balanced_subset(y, cfg.test_size, cfg.draws.seed_shift)", ["calls balanced_subset", "reads seed_shift past cfg.draws"]),
        ("idx = torch.randperm(10)", ["calls randperm"]),
        ("g = torch.Generator()\nidx = torch.randperm(10, generator=g)", ["calls Generator", "calls randperm"]),
        ("g = cfg.draws.generator(cfg.selection_seed)\nidx = torch.randperm(10, generator=g)", []),
        ("y1 = torch.randint(0, 10, (5,), generator=cfg.draws.generator(cfg.target_class_seed))", []),
        ("e = torch.randint(3, (1,), generator=ctx.generator)", []),
        ("import numpy.random", ["imports numpy.random"]),
        ("from random import shuffle", ["imports random, shuffle"]),
        ("x = decision_plane(m, x, y, cfg.draws.seed(cfg.seed))", []),
        ("g = cfg.draws.generator(cfg.selection_seed)\nidx = cfg.draws.subset(y, cfg.test_size)", []),
    ],
)  # fmt: skip
def test_the_check_finds_every_way_past_the_door(code, found):
    got = draws_past_the_door(code)
    assert sorted(line.split(": ", 1)[1] for line in got) == sorted(found), got


seeds, shifts = st.integers(0, 2**31), st.integers(1, 50)


@given(seeds, shifts)
def test_replicate_zero_keeps_every_draw_and_others_change_each(seed, shift):
    zero, other = Draws(), Draws(seed_shift=shift)
    assert zero.seed(seed) == seed and other.seed(seed) != seed
    assert other.seed(seed) == other.seed(seed)  # equal seeds stay equal: w:same keeps its init
    assert torch.equal(zero.generator(seed).get_state(), torch.Generator().manual_seed(seed).get_state())
    assert not torch.equal(other.generator(seed).get_state(), zero.generator(seed).get_state())


@given(shifts)
def test_every_shift_selects_other_images(shift):
    y = torch.arange(1000) % 10
    zero, other = Draws(), Draws(seed_shift=shift)
    assert torch.equal(zero.subset(y, 100), balanced_subset(y, 100))
    assert not torch.equal(other.subset(y, 100), zero.subset(y, 100))
    assert [torch.equal(a, b) for a, b in zip(zero.split(y, 300, 100), balanced_split(y, 300, 100), strict=True)] == [
        True,
        True,
    ]
    assert not any(torch.equal(a, b) for a, b in zip(other.split(y, 300, 100), zero.split(y, 300, 100), strict=True))


def test_the_door_is_the_seed_shift_option():
    with pytest.raises(ValueError, match="invalid replicate options: seed_shift must be >= 0"):
        Draws(seed_shift=-1)
