"""The pipeline as DVC describes it, through DVC's documented command line only.

* :func:`graph`: the stages ``dvc repro`` visits and what each depends on, from ``dvc dag --dot
  dvc.yaml`` (the stages of dvc.yaml and everything upstream of them, as ``dvc repro`` collects
  them; DOT is Graphviz's documented format, one line per node and per edge);
* :func:`status`: the stages whose command, dependencies or outputs differ from dvc.lock, from
  ``dvc status --json``;
* :func:`rendered_commands`: each stage's command with a params file's values substituted, as
  ``dvc repro --dry --force`` prints it (``--dry``: "only print the commands that would be
  executed"), in a scratch copy of the pipeline, so DVC's own interpolation (``${group}``
  unpacking, ``foreach``, ``matrix``) makes them;
* :func:`locked_commands`: each stage's command as it last ran, from ``dvc.lock``;
* :func:`read_pipeline` and :func:`to_run`: what ``dvc repro`` would run now, for ``classaware
  repro`` and ``classaware slurm``, which run it several stages at once.

No internal DVC API is used, so an upgrade of DVC that keeps its command line keeps this
working; a change of its output formats fails here with a message saying which.
"""

from __future__ import annotations

import functools
import graphlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..files import parse_yaml

_NODE = re.compile(r'"(?P<node>[^"]+)";')
_EDGE = re.compile(r'"(?P<upstream>[^"]+)" -> "(?P<stage>[^"]+)";')
_STAGE = re.compile(r"Running stage '(?P<stage>.+)':")
# one stage, as DVC itself runs it: checked again, run only if changed, committed to dvc.lock
DVC_REPRO = ("dvc", "--wait-for-lock", "repro", "--single-item")


def dvc(*args: str, cwd: Path) -> str:
    """Run this environment's ``dvc`` with ``args`` in ``cwd``; its standard output, or
    ValueError with DVC's error message."""
    executable = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    done = subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise ValueError(f"`dvc {' '.join(args)}` failed in {cwd}: {message}")
    return done.stdout


@dataclass(frozen=True)
class Graph:
    """The stages ``dvc repro`` visits, upstream first (each after every stage it depends on, in
    dvc.yaml's order where that leaves a choice), and the stages each depends on directly."""

    order: tuple[str, ...]
    upstream: Mapping[str, frozenset[str]]


def graph(root: Path) -> Graph:
    """The pipeline of ``root/dvc.yaml`` from ``dvc dag --dot dvc.yaml`` (see the module
    docstring); ValueError when DVC cannot read it or prints what this does not understand."""
    return parse_dot(dvc("dag", "--dot", "dvc.yaml", cwd=root))


def parse_dot(text: str) -> Graph:
    """:class:`Graph` of the DOT text ``dvc dag --dot`` prints: ``"stage";`` per stage in
    dvc.yaml's order and ``"upstream" -> "stage";`` per dependency."""
    nodes: list[str] = []
    upstream: dict[str, set[str]] = {}
    for line in text.strip().splitlines()[1:-1]:  # between "strict digraph {" and "}"
        if edge := _EDGE.fullmatch(line.strip()):
            upstream.setdefault(edge["stage"], set()).add(edge["upstream"])
        elif node := _NODE.fullmatch(line.strip()):
            nodes.append(node["node"])
        else:
            raise ValueError(f"`dvc dag --dot` printed a line this version of classaware does not read: {line!r}")
    if not text.strip().startswith("strict digraph {") or set(upstream) - set(nodes):
        raise ValueError(f"`dvc dag --dot` printed no graph this version of classaware reads:\n{text[:500]}")
    return Graph(_in_order(nodes, upstream), {n: frozenset(upstream.get(n, ())) for n in nodes})


def _in_order(nodes: list[str], upstream: Mapping[str, set[str]]) -> tuple[str, ...]:
    """``nodes`` in a topological order: each node as early as its upstream nodes allow, ties
    broken by the order given."""
    sorter = graphlib.TopologicalSorter({n: upstream.get(n, set()) for n in nodes})
    sorter.prepare()
    rank, order = {n: i for i, n in enumerate(nodes)}, []
    ready: list[str] = []
    while sorter.is_active():
        ready = sorted([*ready, *sorter.get_ready()], key=rank.__getitem__)
        node = ready.pop(0)
        order.append(node)
        sorter.done(node)
    return tuple(order)


def status(root: Path, targets: Iterable[str] = (), with_deps: bool = False) -> dict[str, list]:
    """{stage: what differs from dvc.lock} of the stages of ``targets`` (stage names, foreach or
    matrix groups, dvc.yaml files; none: the whole workspace; ``with_deps``: and everything
    upstream of them) that changed, as ``dvc status --json`` reports it (command, dependencies,
    outputs), waiting for DVC's repository lock so that a stage being committed is never seen
    half-written. A frozen stage's dependencies are not checked (nor does ``dvc repro`` check
    them). DVC refuses to check a stage whose files another DVC process is writing (ValueError):
    leave such stages out of ``targets``. Each target costs DVC a reading of dvc.yaml (about half
    a second for this project's), so name a whole file or group where you can (:func:`targets`)."""
    args = ["--wait-for-lock", "status", "--json", *(["--with-deps"] if with_deps else []), *targets]
    return json.loads(dvc(*args, cwd=root) or "{}")


def targets(stages: Iterable[str], every: Iterable[str]) -> list[str]:
    """The fewest ``dvc status`` targets naming exactly ``stages`` among the pipeline's ``every``
    stage: a foreach or matrix group by its name when all of its stages are asked about."""
    stages, groups = list(stages), {}
    for stage in every:
        groups.setdefault(stage.split("@")[0], []).append(stage)
    asked = set(stages)
    out = []
    for group, members in groups.items():
        if "@" in members[0] and set(members) <= asked:
            out.append(group)
        else:
            out += [m for m in members if m in asked]
    return out


def rendered_commands(dvc_yaml: Path, params: Mapping) -> dict[str, str]:
    """{stage: command} of every stage of ``dvc_yaml`` with ``params`` as its params.yaml, as
    DVC renders them (see the module docstring), in DVC's order. The scratch copy holds
    dvc.yaml, params.yaml and the project's ``.dvc/config`` (how DVC unpacks booleans), with no
    git repository. ValueError when DVC cannot render them."""
    config = dvc_yaml.parent / ".dvc" / "config"
    texts = (dvc_yaml.read_text(), yaml.safe_dump(dict(params), sort_keys=False))
    return dict(_render(*texts, config.read_text() if config.is_file() else ""))


@functools.lru_cache(maxsize=16)
def _render(dvc_yaml: str, params: str, config: str) -> tuple[tuple[str, str], ...]:
    """:func:`rendered_commands` of the files' texts (a pure function of them, so kept)."""
    with tempfile.TemporaryDirectory(prefix="classaware-render-") as scratch:
        root = Path(scratch)
        (root / ".dvc").mkdir()
        (root / ".dvc" / "config").write_text(config)
        (root / ".dvc" / "config.local").write_text("[core]\n    no_scm = true\n")
        (root / "dvc.yaml").write_text(dvc_yaml)
        (root / "params.yaml").write_text(params)
        return tuple(parse_dry_run(dvc("repro", "--dry", "--force", cwd=root)).items())


def parse_dry_run(text: str) -> dict[str, str]:
    """{stage: command} of what ``dvc repro --dry`` prints: ``Running stage 'NAME':``, then the
    command after ``> `` (one line: dvc.yaml folds a long command with ``>-``). A stage of several
    commands, which classaware's stages never are, is refused (ValueError)."""
    commands: dict[str, str] = {}
    stage = None
    for line in text.splitlines():
        if match := _STAGE.fullmatch(line):
            stage = match["stage"]
        elif stage is not None and line.startswith("> "):
            if stage in commands:
                raise ValueError(f"stage {stage} runs several commands; each classaware stage runs one")
            commands[stage] = line[2:]
    return commands


def locked_commands(lock: Path) -> dict[str, str]:
    """{stage: command} as each stage last ran, from ``dvc.lock`` (stages without a command, such
    as tracked files, are left out)."""
    stages = parse_yaml(lock.read_text()).get("stages", {})
    return {name: s["cmd"] for name, s in stages.items() if "cmd" in s}


# ----------------------------------------------------------------------------- what `dvc repro` would run
@dataclass(frozen=True)
class Pipeline:
    """The stages ``dvc repro`` would visit, upstream first, what each depends on, and which
    have changed (would run now)."""

    order: tuple[str, ...]
    upstream: Mapping[str, frozenset[str]]
    changed: frozenset[str]


def read_pipeline(root: Path, busy: Collection[str] = ()) -> Pipeline:
    """Ask DVC for the pipeline of ``root/dvc.yaml`` as ``dvc repro`` plans it: the stages of
    dvc.yaml and those upstream of them (``dvc dag``), and each stage's own change check (``dvc
    status``). The stages in ``busy`` are being run by another process (a SLURM job): they count
    as changed, and DVC is not asked about them, since it refuses to check files another DVC
    process is writing. A frozen stage keeps its place after its upstream stages, and DVC's own
    check skips it there. DVC's errors (a broken dvc.yaml ...) are ValueErrors: the CLI reports
    them without a traceback."""
    dag = graph(root)
    if busy:
        asked = [s for s in dag.order if s not in busy]
        report = status(root, targets(asked, dag.order)) if asked else {}
    else:  # the quickest way to ask about every stage: dvc.yaml and what is upstream of it
        report = status(root, ["dvc.yaml"], with_deps=True)
    changed = (set(report) | set(busy)) & set(dag.order)
    return Pipeline(dag.order, dag.upstream, frozenset(changed))


def to_run(pipeline: Pipeline) -> dict[str, frozenset[str]]:
    """The stages to schedule, in DVC's order, each with the scheduled stages it waits for: every
    changed stage and everything downstream of one (whose inputs may change when it reruns;
    DVC skips it then if they did not). Up-to-date upstream stages are not waited for."""
    selected: dict[str, frozenset[str]] = {}
    for stage in pipeline.order:
        waits_for = frozenset(pipeline.upstream[stage] & selected.keys())
        if stage in pipeline.changed or waits_for:
            selected[stage] = waits_for
    return selected


def log_file(log_dir: Path, stage: str) -> Path:
    """Where a stage's output goes: its address with path separators replaced (stages of a
    dvc.yaml in a subfolder are addressed ``sub/dvc.yaml:name``)."""
    return log_dir / (re.sub(r"[/:]", "_", stage) + ".log")


def workspace_problems(root: Path) -> list[str]:
    """Why ``root`` is not a DVC pipeline workspace, if it is not (checked before any work)."""
    if (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file():
        return []
    return [f"{root.resolve()} holds no DVC pipeline (.dvc and dvc.yaml): run this in the pipeline's workspace"]
