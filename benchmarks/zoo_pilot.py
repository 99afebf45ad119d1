"""Pilot for the `cpu` profile's zoo: the test accuracy each candidate reduced
architecture reaches with the profile's zoo recipe, and what its training costs, measured before
the profile is fixed and before any confirmatory run.

The paper's condition this serves (claims.yaml, ``conditions``): every model a claim reads lies
within K accuracy points of the zoo's most accurate architecture, as the paper's five
architectures do when each is trained properly. A reduced zoo meets it only if its reduced
architectures reach similar accuracies under one recipe; this pilot measures which do. It
trains with the `train` stage's own code path (``classaware.training.train`` on the same
class-balanced subsets, recipe, bf16 and seeds as ``classaware train`` at the profile), at the
seeds of the `cpu` profile's originals (init 0, data 0) and its w:diff (init 1, data 2), replicate
0: seeds whose accuracies were already seen in the kept run, never the confirmatory run's. It
measures accuracies only: no claim is computed.

    OMP_NUM_THREADS=1 python benchmarks/zoo_pilot.py --data data/cifar10.pt --out benchmarks/results/zoo-pilot

Each job is a process on one thread, ``--workers`` at a time; a finished job leaves its JSON under
OUT/jobs, so an interrupted pilot resumes. OUT/zoo-pilot.md gets the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from pathlib import Path

import torch

from classaware.checkpoint import load_model
from classaware.data import load_canonical
from classaware.draws import Draws
from classaware.environment import cpu_model
from classaware.models import ARCHITECTURES, densenet, resnet, vgg
from classaware.text import markdown_table
from classaware.training import Recipe, TrainSpec, accuracy, train

# The `cpu` profile's zoo recipe (profiles/cpu.yaml, with paper.yaml's defaults beneath it).
RECIPE = Recipe(epochs=15, lr=0.05, milestones=(10,))
TRAIN_SIZE, EVAL_SIZE, EARLY = 10_000, 1000, 12
# Candidates beside the registry's: wider VGGs, a DenseNet of growth 12, narrower ResNets.
CANDIDATES = {
    "vgg11_bn_w4": partial(vgg, 11, True, 4, 256),
    "vgg13_bn_w4": partial(vgg, 13, True, 4, 256),
    "vgg11_bn_w6": partial(vgg, 11, True, 6, 256),
    "vgg13_bn_w6": partial(vgg, 13, True, 6, 256),
    "densenet_xs_k10": partial(densenet, (2, 2, 2), 10),
    "densenet_xs_k12": partial(densenet, (2, 2, 2), 12),
    "resnet10_w4": partial(resnet, (1, 1, 1, 1), 4),
    "resnet18_w4": partial(resnet, (2, 2, 2, 2), 4),
    "resnet10_w6": partial(resnet, (1, 1, 1, 1), 6),
    "resnet18_w6": partial(resnet, (2, 2, 2, 2), 6),
    # second pilot (2026-12-07), after the confirmatory run's replicate 3 broke the rule: widths between
    # the first pilot's, and a DenseNet of three layers per block (REPRODUCE.md, "The zoo, revised")
    "vgg11_bn_w5": partial(vgg, 11, True, 5, 256),
    "densenet_d3_k8": partial(densenet, (3, 3, 3), 8),
    "densenet_xs_k14": partial(densenet, (2, 2, 2), 14),
    "densenet_xs_k16": partial(densenet, (2, 2, 2), 16),
    "resnet10_w7": partial(resnet, (1, 1, 1, 1), 7),
    "resnet18_w5": partial(resnet, (2, 2, 2, 2), 5),
}


def job(arch: str, init_seed: int, data_seed: int, data_path: str, out: str) -> dict:
    torch.set_num_threads(1)
    ARCHITECTURES.update(CANDIDATES)
    data = load_canonical(data_path)
    draws = Draws()
    idx, eval_idx = draws.subset(data.train_y, TRAIN_SIZE), draws.subset(data.test_y, EVAL_SIZE)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        train(
            TrainSpec(arch, init_seed, data_seed, RECIPE),
            data.train_x[idx],
            data.train_y[idx],
            data.test_x[eval_idx],
            data.test_y[eval_idx],
            folder,
            save_epochs=(EARLY,),
            bf16=True,
        )
        seconds = time.perf_counter() - start
        acc = {}
        for path in sorted(folder.glob("epoch_*.pt")):
            model, meta = load_model(path, arch, "cpu")
            acc[str(meta["epoch"])] = accuracy(model, data.test_x, data.test_y)
    result = {"arch": arch, "init_seed": init_seed, "data_seed": data_seed, "test_acc": acc, "train_seconds": seconds}
    Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--archs", nargs="+", default=[*CANDIDATES, "resnet10_w8", "resnet18_w8", "vgg11_bn_w8",
                                                        "vgg13_bn_w8", "densenet_xs"])  # fmt: skip
    parser.add_argument("--seeds", nargs="+", default=["0,0"], help="init,data pairs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--table_only", action="store_true", help="write the table from OUT/jobs, train nothing")
    parser.add_argument("--note", default="", help="what else ran beside the jobs, for the table's header")
    args = parser.parse_args()
    if not args.table_only and not args.data.is_file():
        parser.error(f"--data {args.data} does not exist (the canonical file `classaware prepare` writes)")
    unknown = sorted(set(args.archs) - set(ARCHITECTURES) - set(CANDIDATES))
    if unknown:
        parser.error(f"--archs: unknown {unknown}; known: {', '.join(sorted({*ARCHITECTURES, *CANDIDATES}))}")
    jobs_dir = args.out / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    todo = [(a, *map(int, s.split(","))) for s in args.seeds for a in args.archs]
    if args.table_only:
        todo = []
    results = [] if not args.table_only else [json.loads(f.read_text()) for f in sorted(jobs_dir.glob("*.json"))]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {}
        for arch, init_seed, data_seed in todo:
            out = jobs_dir / f"{arch}-{init_seed}-{data_seed}.json"
            if out.is_file():
                results.append(json.loads(out.read_text()))
                continue
            futures[pool.submit(job, arch, init_seed, data_seed, str(args.data), str(out))] = arch
        for future in as_completed(futures):
            r = future.result()
            print(
                f"{r['arch']} init {r['init_seed']} data {r['data_seed']}: {r['test_acc']} in {r['train_seconds']:.0f} s",
                flush=True,
            )
            results.append(r)
    rows = [[r["arch"], f"{r['init_seed']},{r['data_seed']}", f"{100 * r['test_acc'][str(EARLY)]:.2f}",
             f"{100 * r['test_acc'][str(RECIPE.epochs)]:.2f}", f"{r['train_seconds']:.0f}"]
            for r in sorted(results, key=lambda r: (r["arch"], r["init_seed"]))]  # fmt: skip
    finals: dict[str, list[float]] = {}
    for r in results:
        finals.setdefault(r["arch"], []).append(r["test_acc"][str(RECIPE.epochs)])
    means = [[arch, len(a), f"{100 * sum(a) / len(a):.2f}", f"{100 * min(a):.2f}", f"{100 * max(a):.2f}"]
             for arch, a in sorted(finals.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))]  # fmt: skip
    header = [
        "# Zoo pilot: test accuracy of candidate reduced architectures (benchmarks/zoo_pilot.py)",
        "",
        f"CPU {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.python_version()}; "
        f"every job on one thread, {args.workers} at once; recipe {RECIPE}, {TRAIN_SIZE} training images, bf16; "
        f"test accuracy on all 10,000 test images of CIFAR-10 (JPEG q75 copy). {args.note}",
        "",
    ]
    table = markdown_table(
        ["arch", "init,data seeds", f"test acc % (epoch {EARLY})", "test acc % (final)", "train s"], rows
    )
    summary = markdown_table(["arch", "models", "mean final acc %", "lowest", "highest"], means)
    (args.out / "zoo-pilot.md").write_text("\n".join(header + table + ["", "Per architecture:", ""] + summary) + "\n")


if __name__ == "__main__":
    main()
