"""Do N concurrent ``dvc repro --single-item`` processes in one workspace lose dvc.lock entries?

``classaware repro --jobs N`` and ``classaware slurm submit`` rest on DVC committing independent
stages from concurrent processes. This measures it on DVC itself, with no classaware code: a
fresh git + DVC repository in a temporary folder gets ``--stages`` independent stages, each
sleeping ``--sleep`` seconds and writing ``--size-mb`` MB of random bytes (so that hashing and
caching keep DVC's repository lock busy for a while), and ``--stages`` processes
``dvc [--wait-for-lock] repro --single-item sI`` start at once, each I/O-bound.

Reported: how many exited 0, how many failed with DVC's "Unable to acquire lock", how many
outputs exist on disk, how many stages dvc.lock records, outputs whose command ran but are not
in dvc.lock (work lost), and whether ``dvc status`` finds every recorded stage up to date.
Run from the repository root with the environment whose ``dvc`` is to be measured::

    python benchmarks/dvc_lock_contention.py --stages 16            # DVC's default: 3 s lock timeout
    python benchmarks/dvc_lock_contention.py --stages 16 --wait-for-lock
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

LOCK_ERROR = "Unable to acquire lock"


def make_repo(root: Path, stages: int, size_mb: int, sleep: float) -> None:
    """A git + DVC repository with ``stages`` independent stages s0 .. s{stages-1}."""
    write = f"import os, sys, time; time.sleep({sleep}); open(sys.argv[1], 'wb').write(os.urandom({size_mb} * 2**20))"
    dvc_yaml = {
        "stages": {
            f"s{i}": {"cmd": f'"{sys.executable}" -c "{write}" out{i}.bin', "outs": [f"out{i}.bin"]}
            for i in range(stages)
        }
    }
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml))


def run_at_once(root: Path, stages: int, wait_for_lock: bool) -> tuple[list[subprocess.CompletedProcess], float]:
    """Start every stage's ``dvc repro --single-item`` at the same time; wait for all."""
    flag = ["--wait-for-lock"] if wait_for_lock else []
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["dvc", *flag, "repro", "--single-item", f"s{i}"],
            cwd=root,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(stages)
    ]
    outputs = [p.communicate()[0] for p in procs]  # reads each pipe to its end: no process blocks on a full pipe
    done = [subprocess.CompletedProcess(p.args, p.returncode, out) for p, out in zip(procs, outputs, strict=True)]
    return done, time.perf_counter() - start


def summary(root: Path, done: list[subprocess.CompletedProcess], seconds: float) -> dict:
    locked = set(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) if (root / "dvc.lock").exists() else set()
    on_disk = {p.stem.replace("out", "s") for p in root.glob("out*.bin")}
    status = subprocess.run(["dvc", "status", "--json", *sorted(locked)], cwd=root, capture_output=True, text=True)
    return {
        "processes": len(done),
        "exit_0": sum(d.returncode == 0 for d in done),
        "failed_to_lock": sum(LOCK_ERROR in d.stdout for d in done),
        "other_failures": sum(d.returncode != 0 and LOCK_ERROR not in d.stdout for d in done),
        "outputs_on_disk": len(on_disk),
        "stages_in_dvc_lock": len(locked),
        "ran_but_not_in_dvc_lock": sorted(on_disk - locked),
        "recorded_stages_up_to_date": status.returncode == 0 and json.loads(status.stdout or "{}") == {},
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, default=16, help="independent stages, one process each")
    parser.add_argument("--size-mb", type=int, default=20, help="size of each stage's output")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each stage's command waits first")
    parser.add_argument("--wait-for-lock", action="store_true", help="pass DVC's --wait-for-lock")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_repo(root, args.stages, args.size_mb, args.sleep)
        done, seconds = run_at_once(root, args.stages, args.wait_for_lock)
        print(
            json.dumps(
                {
                    "dvc": subprocess.run(["dvc", "--version"], capture_output=True, text=True).stdout.strip(),
                    "wait_for_lock": args.wait_for_lock,
                    **summary(root, done, seconds),
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
