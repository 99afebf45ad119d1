"""The package's dependency direction: every library module imports only modules below it in
LAYERS; a stage imports the library and the stage registry, never another stage (the estimate
and the audit reach every stage through the registry); the workflow's commands sit on top, and
nothing below them imports :mod:`classaware.workflow`."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from helpers_repo import REPO

SRC = REPO / "src" / "classaware"
# bottom to top (README.md, "Layout")
LAYERS = [
    "files", "config", "search", "contracts", "text", "progress", "batching", "paper", "claims", "codec", "environment",
    "data", "draws", "models", "checkpoint", "training",
    "attacks", "metrics", "boundary", "schema", "analysis", "plots",
]  # fmt: skip
STAGES = sorted(p.stem for p in (SRC / "stages").glob("*.py") if p.stem != "__init__")
WORKFLOW = sorted(p.stem for p in (SRC / "workflow").glob("*.py") if p.stem != "__init__")
EVALUATION = sorted(p.stem for p in (SRC / "evaluation").glob("*.py"))


def imports(path) -> set[str]:
    """The classaware modules ``path`` imports directly (as dotted names below the package)."""
    package = list(path.relative_to(SRC).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:  # from . import x: module x, or a name of the package itself
                modules = [a.name for a in node.names if SRC.joinpath(*base, f"{a.name}.py").is_file()]
                found |= {".".join([*base, n]) for n in modules}
                if len(modules) < len(node.names):
                    found.add(".".join(base))
    return found


def test_every_library_module_is_in_a_layer():
    """The CLI and the package's public API (__init__) sit on top of them all."""
    assert {p.stem for p in SRC.glob("*.py")} - {"cli", "__init__"} == set(LAYERS)


@pytest.mark.parametrize("module", LAYERS)
def test_a_module_imports_only_modules_below_it(module):
    below = set(LAYERS[: LAYERS.index(module)])
    assert imports(SRC / f"{module}.py") <= below


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_the_library_and_the_registry_and_no_other_stage(stage):
    assert imports(SRC / "stages" / f"{stage}.py") <= set(LAYERS) | {"stages"}


def test_the_registry_imports_no_stage():
    """Stage modules are imported when a command needs them, by name (importlib)."""
    assert imports(SRC / "stages" / "__init__.py") <= set(LAYERS)


@pytest.mark.parametrize("command", WORKFLOW)
def test_the_workflow_imports_the_library_the_stages_and_itself(command):
    allowed = set(LAYERS) | {"stages", "workflow"} | {f"workflow.{m}" for m in WORKFLOW}
    assert imports(SRC / "workflow" / f"{command}.py") <= allowed


@pytest.mark.parametrize("module", EVALUATION)
def test_the_evaluation_imports_the_library_and_itself(module):
    """classaware evaluate sits on the library, beside the pipeline: never a stage or the workflow."""
    allowed = set(LAYERS) | {"evaluation"} | {f"evaluation.{m}" for m in EVALUATION}
    assert imports(SRC / "evaluation" / f"{module}.py") <= allowed


def test_the_evaluations_registry_imports_nothing_heavy():
    """The CLI imports the registry to list the commands: it must not import torch or the library."""
    assert imports(SRC / "evaluation" / "__init__.py") == set()


def test_nothing_below_the_workflow_imports_it():
    below = [SRC / f"{m}.py" for m in LAYERS] + [SRC / "stages" / f"{s}.py" for s in [*STAGES, "__init__"]]
    below += [SRC / "evaluation" / f"{m}.py" for m in EVALUATION]
    for path in below:
        assert not {m for m in imports(path) if m.split(".")[0] == "workflow"}, path


def test_every_module_in_stages_is_a_dvc_stage():
    """stages/ holds the pipeline's stages only: each module is registered, has the whole
    protocol, and runs in a stage of dvc.yaml."""
    import shlex

    import yaml

    from classaware import stages

    commands = {
        shlex.split(s.get("do", s)["cmd"])[1]
        for s in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values()
    }
    assert sorted(module for module, _ in stages.COMMANDS.values()) == STAGES
    for command in stages.COMMANDS:
        module = stages.load(command)
        assert command in commands, command
        for part in ("Config", "run", "work", "AUDIT"):
            assert hasattr(module, part), (command, part)


def test_importing_the_package_and_probing_a_model_loads_neither_matplotlib_nor_dynamo():
    """Every pipeline stage is a process of its own that imports the package and probes its models
    (:func:`classaware.contracts.num_classes`): matplotlib (0.6 s) is for the stages that draw, and
    torch._dynamo (1.7 s), which a TorchDispatchMode pulls in unless told not to, for none."""
    probe = (
        "import sys, torch, classaware; from classaware.models import build; "
        "classaware.predict(build('resnet10_w8').eval(), torch.rand(2, 3, 32, 32)); "
        "print(sorted(m for m in ('matplotlib', 'torch._dynamo') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
