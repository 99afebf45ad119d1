"""CPU settings for the `cpu` profile, measured on both sides: for training, bf16
autocast, threads against processes, and torch.compile; for inference, the batch size.

Each measurement trains ``classaware.training.train_epoch`` (the loop every training stage runs:
crops and flips, channels_last, SGD) on random uint8 images of CIFAR-10's shape at batch 128,
``--warmup`` untimed steps then ``--steps`` timed ones, in a process of its own with
``OMP_NUM_THREADS`` set before torch starts. Rows:

* ``fp32, 1 thread`` and ``bf16, 1 thread``: what ``classaware repro --jobs 2`` gives each stage
  on these 2-core machines;
* ``bf16, 2 threads``: one process with both cores (``dvc repro``'s default);
* ``bf16, 2 x 1 thread``: two processes at once on one thread each, their images/s summed (what
  ``--jobs 2`` gets from the machine);
* ``bf16 + compile, 1 thread`` (``--compile``): ``torch.compile`` of the model, its compile time
  (the first warm-up step) apart.

A second table (``--infer_batches``) gives the images/s of ``classaware.models.predict`` (the
inference every stage runs: fp32, eval mode, channels_last) on one thread, per batch size, over
``--infer_images`` random images after one untimed batch.

    python benchmarks/cpu_settings.py --archs resnet10_w8 vgg11_bn_w8 --compile --infer_batches 100 500 2000

Print the CPU model and its flags beside the table (``lscpu``); never compare rows of two
machines. Timings mean something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time

BATCH = 128


def one(arch: str, bf16: bool, compile_: bool, warmup: int, steps: int) -> dict:
    """Train ``warmup`` + ``steps`` batches in this process; images/s of the timed steps."""
    import torch

    from classaware.models import build
    from classaware.training import Recipe, train_epoch

    torch.manual_seed(0)
    model = build(arch).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    trained = torch.compile(model) if compile_ else model
    g = torch.Generator().manual_seed(0)
    n = (warmup + steps) * BATCH
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    recipe = Recipe(batch_size=BATCH)
    t0 = time.perf_counter()
    train_epoch(trained, opt, x[: warmup * BATCH], y[: warmup * BATCH], recipe, seed=0, bf16=bf16)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_epoch(trained, opt, x[warmup * BATCH :], y[warmup * BATCH :], recipe, seed=1, bf16=bf16)
    return {"img_per_s": steps * BATCH / (time.perf_counter() - t0), "warmup_s": first}


def infer(arch: str, batch: int, n_images: int) -> dict:
    """``classaware.models.predict`` of ``n_images`` random images at ``batch``, after one untimed batch; images/s."""
    import torch

    from classaware.models import build, predict

    torch.manual_seed(0)
    model = build(arch).to(memory_format=torch.channels_last)
    x = torch.rand(n_images, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    predict(model, x[:batch], batch)
    t0 = time.perf_counter()
    predict(model, x, batch)
    return {"img_per_s": n_images / (time.perf_counter() - t0)}


def spawn(arch: str, bf16: bool, threads: int, compile_: bool = False, *, warmup: int, steps: int) -> subprocess.Popen:
    argv = (
        ["--one", arch, "--warmup", str(warmup), "--steps", str(steps)] + ["--bf16"] * bf16 + ["--compile"] * compile_
    )
    return _process(argv, threads)


def _process(argv: list[str], threads: int) -> subprocess.Popen:
    """This script with ``argv`` in a process of its own, on ``threads`` threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, __file__, *argv], env=env, stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a measurement failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=["resnet10_w8", "vgg11_bn_w8"])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (bf16, 1 thread)")
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True, help="the training table")
    p.add_argument("--infer_batches", type=int, nargs="*", default=[], help="also time inference at these batch sizes")
    p.add_argument("--infer_images", type=int, default=5000, help="images per inference measurement")
    p.add_argument("--one", metavar="ARCH", help=argparse.SUPPRESS)  # a measurement's own process
    p.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--infer", type=int, metavar="BATCH", help=argparse.SUPPRESS)  # with --one: an inference measurement
    args = p.parse_args()
    if args.one:
        if args.infer:
            print(json.dumps(infer(args.one, args.infer, args.infer_images)))
        else:
            print(json.dumps(one(args.one, args.bf16, args.compile, args.warmup, args.steps)))
        return

    from classaware.environment import cpu_model

    print(f"CPU {cpu_model()}, {os.cpu_count()} cores")
    if args.train:
        training_table(args)
    if args.infer_batches:
        inference_table(args)


def training_table(args: argparse.Namespace) -> None:
    print(f"\nTraining at batch {BATCH}, {args.warmup} + {args.steps} steps; images/s")
    cols = ["fp32, 1 thread", "bf16, 1 thread", "bf16, 2 threads", "bf16, 2 x 1 thread"]
    cols += ["bf16 + compile, 1 thread", "its warm-up s (the compile in it)"] if args.compile else []
    print("| arch | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for arch in args.archs:
        run = functools.partial(spawn, arch, warmup=args.warmup, steps=args.steps)
        row = [result(run(False, 1))["img_per_s"], result(run(True, 1))["img_per_s"], result(run(True, 2))["img_per_s"]]
        pair = [run(True, 1), run(True, 1)]
        row.append(sum(result(q)["img_per_s"] for q in pair))
        cells = [f"{v:.0f}" for v in row]
        if args.compile:
            compiled = result(run(True, 1, compile_=True))
            cells += [f"{compiled['img_per_s']:.0f}", f"{compiled['warmup_s']:.0f}"]
        print(f"| {arch} | " + " | ".join(cells) + " |", flush=True)


def inference_table(args: argparse.Namespace) -> None:
    print(
        f"\nInference (classaware.models.predict, fp32, 1 thread), {args.infer_images} images; images/s by batch size"
    )
    print("| arch | " + " | ".join(f"batch {b}" for b in args.infer_batches) + " |")
    print("|---" * (len(args.infer_batches) + 1) + "|")
    for arch in args.archs:
        argv = ["--one", arch, "--infer_images", str(args.infer_images), "--infer"]
        rates = [result(_process([*argv, str(b)], 1))["img_per_s"] for b in args.infer_batches]
        print(f"| {arch} | " + " | ".join(f"{r:.0f}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    main()
