"""The ``classaware`` command: one subcommand per pipeline stage (each is a DVC stage's cmd).

Every subcommand's options are the fields of its stage's ``Config`` dataclass; ``--help`` on
each lists them with their defaults. Bad options, and outputs that cannot be written, are
reported (exit status 2, no traceback) before the stage computes anything. SIGTERM (what a
scheduler or DVC sends to stop a run) exits through Python's clean-up, so no temporary file is
left behind. Under ``dvc repro`` (DVC sets ``DVC_STAGE``), each run's
wall time is appended to ``$DVC_ROOT/logs/timings.jsonl`` for the report: timings are kept out
of every hashed artifact, which stay bit-identical across reruns.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .artifacts import check_writable
from .config import add_arguments, from_args, outputs
from .stages import COMMANDS, load


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="classaware", description="Class-aware transferability of adversarial examples (Waseda et al.)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen stage's module is imported
            add_arguments(p, load(name).Config)
    return parser


def _record_timing(command: str, seconds: float) -> None:
    stage, root = os.environ.get("DVC_STAGE"), os.environ.get("DVC_ROOT")
    if not (stage and root):
        return
    log_file = Path(root) / "logs" / "timings.jsonl"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as f:
        f.write(
            json.dumps(
                {
                    "stage": stage,
                    "command": command,
                    "seconds": round(seconds, 2),
                    "finished": time.time(),
                }
            )
            + "\n"
        )


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds the stack, so atomic writes remove their temporaries


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    stage = load(args.command)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if on_main_thread else None
    start = time.perf_counter()
    try:
        cfg = from_args(stage.Config, args)
        for path, kind in outputs(cfg):
            check_writable(path, kind)
        stage.run(cfg)
    except (ValueError, FileNotFoundError) as exc:  # bad input: a clear message, no traceback
        if args.verbose:
            raise
        print(f"classaware {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    _record_timing(args.command, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
