"""Command ``deps``: each stage's code dependencies in ``dvc.yaml``, written by the project.

A code change must rerun exactly the stages that run that code, so every stage of ``dvc.yaml``
lists, among its ``deps``, every module of ``src/classaware`` its subcommand's module imports,
directly or through other modules (relative imports, followed transitively), and no other. The
package ``__init__`` of a package counts where a module imports a name from it (``from . import
Upstream``); the top-level ``classaware/__init__.py`` (the library's re-exports) does not, nor
does an import under ``if TYPE_CHECKING:`` (for annotations only: it never runs).

``classaware deps`` prints every stage's code deps as the block to paste under its ``deps:``;
``classaware deps --write`` puts them into ``dvc.yaml`` in place (the other deps, the comments
and the layout stay as they are), so adding an import costs one command. ``tests/test_profile.py``
fails, with the block to paste, when ``dvc.yaml`` and the imports disagree.
"""

from __future__ import annotations

import ast
import logging
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field
from ..files import parse_yaml, save_text
from ..stages import COMMANDS

log = logging.getLogger(__name__)
CODE = "src/"  # a dep under here is code: computed, never written by hand
STAGE_KEY = re.compile(r"^  ([\w.@-]+):\s*(#.*)?$")  # a stage's name under `stages:`, maybe with a comment


def _run_time_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (imports for annotations
    only, which never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _run_time_nodes(node)


def closure(module: Path, root: Path) -> list[str]:
    """The modules ``module`` (a file of ``root/src/classaware``) imports, transitively, itself
    included, as sorted paths relative to ``root`` (see the module docstring)."""
    src = root / "src" / "classaware"
    seen, todo = set(), [module]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = list(path.relative_to(src).parent.parts)
        for node in _run_time_nodes(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level):
                continue
            base = src.joinpath(*package[: len(package) - (node.level - 1)])
            if node.module:
                todo.append(base.joinpath(*node.module.split(".")).with_suffix(".py"))
                continue
            for alias in node.names:  # from . import x: module x, or a name of the package itself
                file = base / f"{alias.name}.py"
                todo.append(file if file.is_file() else base / "__init__.py")
    found = {p for p in seen if p.is_file() and p != src / "__init__.py"}
    return sorted(str(p.relative_to(root)) for p in found)


def stage_modules(dvc_yaml: Path) -> dict[str, Path]:
    """{stage name in dvc.yaml: the module its ``classaware`` subcommand runs}; ValueError for a
    stage whose command is not a registered stage subcommand."""
    root = dvc_yaml.parent
    found = {}
    for name, stage in parse_yaml(dvc_yaml.read_text())["stages"].items():
        argv = shlex.split(stage.get("do", stage)["cmd"])
        if argv[:1] != ["classaware"] or len(argv) < 2 or argv[1] not in COMMANDS:
            raise ValueError(f"{dvc_yaml}: stage {name} does not run a classaware stage subcommand: {argv[:2]}")
        found[name] = root / "src" / "classaware" / "stages" / f"{COMMANDS[argv[1]][0]}.py"
    return found


def expected(dvc_yaml: Path) -> dict[str, list[str]]:
    """{stage: the code deps it must list}, from the imports."""
    return {name: closure(module, dvc_yaml.parent) for name, module in stage_modules(dvc_yaml).items()}


def listed(dvc_yaml: Path) -> dict[str, list[str]]:
    """{stage: the code deps dvc.yaml lists, in its order}."""
    stages = parse_yaml(dvc_yaml.read_text())["stages"]
    return {name: [d for d in s.get("do", s).get("deps", []) if d.startswith(CODE)] for name, s in stages.items()}


def block(deps: list[str], indent: int = 6) -> str:
    """The lines of a ``deps:`` list holding ``deps``, at ``indent`` spaces."""
    return "\n".join(" " * indent + f"- {d}" for d in deps)


def rewrite(text: str, wanted: dict[str, list[str]]) -> str:
    """``text`` of dvc.yaml with each stage's code deps (its ``- src/...`` items) replaced by
    ``wanted[stage]``, placed after the stage's other deps; every other line is kept.
    ValueError for a stage without a ``deps:`` list."""
    lines, out = text.splitlines(), []
    stage, in_deps, deps_indent, done = None, False, 0, set()
    item_indent = None

    def flush() -> None:
        nonlocal in_deps
        if in_deps and stage is not None:
            out.extend(block(wanted[stage], item_indent if item_indent is not None else deps_indent + 2).splitlines())
            done.add(stage)
        in_deps = False

    for line in lines:
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if in_deps:
            if stripped.startswith("- ") and indent > deps_indent:
                item_indent = indent
                if not stripped[2:].startswith(CODE):
                    out.append(line)
                continue
            if stripped.startswith("#") and indent > deps_indent:
                out.append(line)
                continue
            flush()
        key = STAGE_KEY.match(line)
        if key:
            stage = key.group(1)
        if stripped == "deps:" and stage in wanted:
            in_deps, deps_indent, item_indent = True, indent, None
        out.append(line)
    flush()
    missing = sorted(set(wanted) - done)
    if missing:
        raise ValueError(f"stages without a deps: list in dvc.yaml: {', '.join(missing)}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Config(Options):
    dvc_yaml: Path = help_field(
        Path("dvc.yaml"), "the pipeline whose stages' code deps to compute (and write, with --write)", output="file"
    )
    write: bool = help_field(False, "write them into dvc.yaml (default: print each stage's block)")

    def check(self) -> list[str]:
        return [] if self.dvc_yaml.is_file() else [f"--dvc_yaml {self.dvc_yaml} does not exist"]


def run(cfg: Config) -> None:
    wanted = expected(cfg.dvc_yaml)
    if not cfg.write:
        for name, deps in wanted.items():
            print(f"{name}:\n  deps:\n{block(deps, 4)}")
        return
    before = listed(cfg.dvc_yaml)
    save_text(rewrite(cfg.dvc_yaml.read_text(), wanted), cfg.dvc_yaml)
    changed = [name for name in wanted if before[name] != wanted[name]]
    log.info("%s: code deps of %d stages rewritten: %s", cfg.dvc_yaml, len(changed), ", ".join(changed) or "none")
