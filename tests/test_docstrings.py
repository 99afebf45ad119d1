"""Every public function and class of the library (``classaware.__all__``) documents itself as
torchattacks' ``PGDL2`` does (issue 27): an ``Arguments:`` block naming every argument with its
type (and its default and unit where it has them), a ``Shape:`` block and an ``Examples::`` block,
and every example runs as written here (doctest), so none goes stale. The long reasoning stays in
the module docstrings."""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import io
import re

import pytest
import torch
from torch import nn

import classaware

PUBLIC = [name for name in classaware.__all__ if name != "__version__"]
BLOCKS = ("Arguments:", "Shape:", "Examples::")


def _doc(name: str) -> str:
    return inspect.getdoc(getattr(classaware, name)) or ""


def _block(doc: str, title: str) -> str:
    """The lines of ``doc`` under ``title`` up to the next block."""
    start = doc.index(f"\n{title}\n") + len(title) + 2
    ends = [doc.index(f"\n{t}\n") for t in BLOCKS if f"\n{t}\n" in doc and doc.index(f"\n{t}\n") > start]
    return doc[start : min(ends, default=len(doc))]


def _arguments(name: str) -> list[inspect.Parameter]:
    obj = getattr(classaware, name)
    if dataclasses.is_dataclass(obj):
        return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY) for f in dataclasses.fields(obj)]
    return list(inspect.signature(obj).parameters.values())


def _entries(arguments: str) -> dict[str, str]:
    """{argument name: its entry's text}: an entry starts at a line `    name (type): ...` or
    `    a, b (type): ...` and runs to the next one."""
    entries, current = {}, []
    for line in arguments.splitlines():
        m = re.match(r"    (\*?\w+(?:, \*?\w+)*)(?: \(|:)", line)
        if m:
            current = [n.lstrip("*") for n in m.group(1).split(", ")]
            for n in current:
                entries[n] = ""
        for n in current:
            entries[n] += line + "\n"
    return entries


def test_the_public_names_are_the_ones_checked():
    assert len(PUBLIC) == len(classaware.__all__) - 1 and all(callable(getattr(classaware, n)) for n in PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_an_arguments_a_shape_and_an_examples_block(name):
    doc = _doc(name)
    positions = [doc.find(f"\n{block}\n") for block in BLOCKS]
    assert all(p > 0 for p in positions), (
        f"{name}'s docstring lacks {[b for b, p in zip(BLOCKS, positions, strict=True) if p < 0]}"
    )
    assert positions == sorted(positions), f"{name}: the blocks come in the order {BLOCKS}"
    assert _block(doc, "Shape:").strip(), f"{name}'s Shape block is empty"


@pytest.mark.parametrize("name", PUBLIC)
def test_every_argument_is_described_with_its_type_and_default(name):
    entries = _entries(_block(_doc(name), "Arguments:"))
    for parameter in _arguments(name):
        assert parameter.name in entries, f"{name}'s Arguments block does not describe {parameter.name}"
        entry = entries[parameter.name]
        if re.search(r"\((?:[^)]*)\)", entry.splitlines()[0]) is None:
            assert " as for " in entry, f"{name}: {parameter.name} has neither a type nor a reference"
        if parameter.default is not inspect.Parameter.empty and " as for " not in entry:
            assert "Default:" in entry, f"{name}: {parameter.name} does not say its default"


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_example_runs_as_written(name):
    globs = {"torch": torch, "nn": nn} | {n: getattr(classaware, n) for n in PUBLIC}
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(getattr(classaware, name), name, globs=globs)]
    examples = [t for t in tests if t.examples]
    assert examples, f"{name}'s docstring has no runnable example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for test in examples:
            runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()
