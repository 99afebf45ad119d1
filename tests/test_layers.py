"""The package's dependency direction: every library module imports only modules below it in
LAYERS, and a stage imports the library, never another stage."""

from __future__ import annotations

import ast

import pytest
from conftest import REPO

SRC = REPO / "src" / "classaware"
# bottom to top (README.md, "Layout")
LAYERS = [
    "artifacts", "config", "contracts", "text", "batching", "paper", "profiles", "scaleout", "records", "environment",
    "data", "models", "checkpoint", "training", "costs",
    "attacks", "metrics", "boundary", "results", "analysis", "plots",
]  # fmt: skip


def imports(path) -> set[str]:
    """The classaware modules ``path`` imports directly (as dotted names below the package)."""
    package = list(path.relative_to(SRC).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            names = [node.module] if node.module else [a.name for a in node.names]
            found |= {".".join([*base, n]) for n in names}
    return found


def test_every_library_module_is_in_a_layer():
    assert {p.stem for p in SRC.glob("*.py")} - {"cli"} == set(LAYERS)


@pytest.mark.parametrize("module", LAYERS)
def test_a_module_imports_only_modules_below_it(module):
    below = set(LAYERS[: LAYERS.index(module)])
    assert imports(SRC / f"{module}.py") <= below


@pytest.mark.parametrize(
    "stage", sorted(p.stem for p in (SRC / "stages").glob("*.py") if p.stem not in ("__init__", "audit"))
)
def test_a_stage_imports_the_library_and_no_other_stage(stage):
    assert imports(SRC / "stages" / f"{stage}.py") <= set(LAYERS)


def test_the_audit_alone_sits_on_top_of_the_other_stages():
    """It re-checks every stage's work: it parses the stages' command lines (cli) and reuses
    their computations."""
    stages = {f"stages.{s}" for s in ("construct", "tables", "transfer", "verify")}
    assert imports(SRC / "stages" / "audit.py") <= set(LAYERS) | stages | {"cli"}
