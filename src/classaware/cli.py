"""The ``classaware`` command: the workflow's commands (:data:`classaware.workflow.COMMANDS`:
profile, repro, replicate, audit, ...), the evaluation of any transfer attack
(:data:`classaware.evaluation.COMMANDS`: evaluate, score) and one subcommand per pipeline stage
(:data:`classaware.stages.COMMANDS`, each a DVC stage's cmd), listed by ``classaware --help`` in
those three groups.

Every subcommand's options are the fields of its module's ``Config`` dataclass; ``--help`` on
each lists them with their defaults; ``-v`` (debug logging) goes before or after the
subcommand; every option also takes the hyphen spelling (``--dry-run`` for ``--dry_run``), and
``classaware --version`` says which release runs. Bad options, and outputs that cannot be
written, are reported (exit status 2, no traceback) before the stage computes anything. Ctrl-C
prints one line, ``classaware CMD: interrupted``, and exits with status 130. SIGTERM (what a
scheduler or DVC sends to stop a run) exits through Python's clean-up, so no temporary file is
left behind, with one line too and status 143. A pipeline stage
logs the number of threads torch computes on as it starts (on the CPU, the same seeds give the
same bytes only at the same thread count). Under ``dvc repro`` (DVC sets ``DVC_STAGE``), each
run's wall time, thread count and code (``environment.CodeVersion``: the commit, and whether
the code differed from it) are appended to ``$DVC_ROOT/logs/timings.jsonl`` for the report:
they are kept out of every hashed artifact, which stay bit-identical across reruns and commits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import textwrap
import threading
import time
from collections import ChainMap
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

from . import evaluation, stages, workflow
from .config import add_arguments, from_args, outputs
from .environment import CodeVersion
from .files import check_writable

log = logging.getLogger("classaware")

# what a researcher runs first, then the pipeline's stages (`dvc repro` runs them)
GROUPS = (
    ("commands", workflow),
    ("evaluate any transfer attack (any models, attacks, data: the class-aware view)", evaluation),
    ("pipeline stages (each a DVC stage's command: `dvc repro` runs them)", stages),
)
# every subcommand -> (module name, one-line help), both registries as they stand (iterated in
# GROUPS' order: a ChainMap lists its last mapping's keys first)
COMMANDS = ChainMap(*(package.COMMANDS for _, package in reversed(GROUPS)))
VERBOSE_HELP = "debug logging (before or after the command)"


def load(command: str) -> ModuleType:
    """The module of subcommand ``command``, from the registry that has it; ValueError for
    a subcommand neither has."""
    package = next((p for _, p in GROUPS if command in p.COMMANDS), stages)
    return package.load(command)


def _command_list(width: int = 100) -> str:
    """The commands for ``classaware --help``, the workflow's first, then the pipeline's stages."""
    column = max(map(len, COMMANDS)) + 4
    lines = []
    for title, package in GROUPS:
        lines += ["", f"{title}:"]
        for name in package.COMMANDS:
            wrapped = textwrap.wrap(COMMANDS[name][1], width - column) or [""]
            lines += [f"  {name:<{column - 2}}{wrapped[0]}", *(" " * column + rest for rest in wrapped[1:])]
    return "\n".join(lines[1:])


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classaware",
        description="Class-aware transferability of adversarial examples (Waseda et al.)",
        epilog=_command_list() + "\n\n`classaware COMMAND --help` lists a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=f"classaware {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of the commands below")
    # a known command gets its own subparser only (only its module is imported); without one, every
    # command's, so that argparse's "invalid choice" lists them all
    for name in [command] if command in COMMANDS else COMMANDS:
        p = sub.add_parser(name, description=COMMANDS[name][1])  # no help=: the epilog lists the commands, in groups
        # SUPPRESS: when -v is not given after the command, the value before it stands
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        if name == command:
            add_arguments(p, load(name).Config)
    return parser


def _version() -> str:
    """The installed distribution's version (pyproject.toml's), as ``classaware.__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("classaware")
    except PackageNotFoundError:
        return "0+unknown"


def _stage_record() -> dict | None:
    """What a stage run under DVC records beside its wall time: its torch threads and code."""
    if not (os.environ.get("DVC_STAGE") and os.environ.get("DVC_ROOT")):
        return None
    import torch  # every stage has imported it by now

    return {
        "threads": torch.get_num_threads(),
        "experiment": os.environ.get("DVC_EXP_NAME"),  # None: the workspace's own run
        "code": asdict(CodeVersion.current()),
    }


def _record_timing(command: str, seconds: float, record: dict) -> None:
    log_file = Path(os.environ["DVC_ROOT"]) / "logs" / "timings.jsonl"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as f:
        entry = {"stage": os.environ["DVC_STAGE"], "command": command, "seconds": round(seconds, 2),
                 "finished": time.time(), **record}  # fmt: skip
        f.write(json.dumps(entry) + "\n")


class Terminated(SystemExit):
    """SIGTERM, as an exception: it unwinds the stack, so atomic writes remove their temporaries."""


def _exit_on_sigterm(signum, frame) -> None:
    raise Terminated(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if on_main_thread else None
    start = time.perf_counter()
    try:
        stage = load(args.command)  # imports torch: seconds, which Ctrl-C may interrupt too
        cfg = from_args(stage.Config, args)
        for path, kind in outputs(cfg):
            check_writable(path, kind)
        record = _stage_record()
        if args.command in stages.COMMANDS:
            import torch  # imported by every stage module

            code = "" if record is None else f"; code: {CodeVersion(**record['code']).describe()}"
            log.info("%s: torch threads %d%s", args.command, torch.get_num_threads(), code)
        stage.run(cfg)
    except (ValueError, FileNotFoundError) as exc:  # bad input: a clear message, no traceback
        if args.verbose:
            raise
        print(f"classaware {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT
        if args.verbose:
            raise
        print(f"classaware {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print(f"classaware {args.command}: terminated (SIGTERM)", file=sys.stderr)
        raise
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    if record is not None:
        _record_timing(args.command, time.perf_counter() - start, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
