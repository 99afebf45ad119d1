"""Compare the outputs of two pipeline runs: their dvc.lock hashes and, where a hash differs,
whether the content still agrees.

Usage: ``python benchmarks/compare_runs.py RUN_A RUN_B`` (two workspaces after ``dvc repro``).

For every output both dvc.lock files list, prints "same hash", or for a differing one
whether its content is the same: every tensor (bit for bit) and every number, whatever the
keys or layout that hold them (so a renamed field or a new format tag counts as the same
content, a changed weight or ratio does not); in text files (CSV, Markdown), the numbers they
show; other files (figures) byte for byte. Folders are compared file by file. Exit status 0
when every output's content agrees, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

import torch
import yaml


def locked_outputs(repo: Path) -> dict[str, str]:
    """{output path: md5} from a workspace's dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out.get("md5") for stage in lock["stages"].values() for out in stage.get("outs", [])}


def _leaves(obj, out: Counter) -> Counter:
    """Multiset of the tensors (by content hash) and numbers in ``obj``, keys ignored."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        out[("tensor", str(t.dtype), tuple(t.shape), hashlib.sha256(t.numpy().tobytes()).hexdigest())] += 1
    elif isinstance(obj, dict):
        for value in obj.values():
            _leaves(value, out)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _leaves(value, out)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[("number", float(obj))] += 1
    return out


def content(path: Path) -> Counter | str:
    if path.suffix == ".pt":
        return _leaves(torch.load(path, map_location="cpu", weights_only=True), Counter())
    if path.suffix == ".json":
        return _leaves(json.loads(path.read_text()), Counter())
    if path.suffix in (".md", ".csv"):
        return Counter(re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", path.read_text()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same_content(a: Path, b: Path) -> bool:
    if a.is_dir():
        names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        return names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
            same_content(a / n, b / n) for n in names
        )
    return content(a) == content(b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args()
    a, b = locked_outputs(args.run_a), locked_outputs(args.run_b)
    ok = True
    for path in sorted(a.keys() & b.keys()):
        if a[path] == b[path]:
            verdict = "same hash"
        elif same_content(args.run_a / path, args.run_b / path):
            verdict = "other hash, same content"
        else:
            verdict, ok = "DIFFERENT CONTENT", False
        print(f"{verdict:26s} {path}")
    for path in sorted(a.keys() ^ b.keys()):
        print(f"{'only in ' + ('A' if path in a else 'B'):26s} {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
