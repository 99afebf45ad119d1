"""Attack throughput (images/s): classaware.attacks against torchattacks, same model and batches.

Attacks (l2, eps 1.0, no random start, non-targeted):
  * FGM: ours ``fgm(norm="l2")``; theirs ``torchattacks.PGDL2(steps=1, alpha=eps)``;
  * PGD-10: ours ``pgd(alpha=eps/5, steps=10, norm="l2")``; theirs ``torchattacks.PGDL2(eps,
    alpha=eps/5, steps=10)``.

Each model is freshly built (``classaware.models.build``, seed 0, eval mode, default memory
format, fp32): throughput does not depend on the weights. The inputs are ``--n-images`` random
images in [0, 1] with random labels, already on the device. One timed pass attacks all of them
in batches of ``--batch-size``; its region holds the attack calls only, between a
``torch.cuda.synchronize()`` before and after on CUDA. Before timing, both libraries attack the
first batch once (warm-up); as a sanity check the largest absolute pixel difference between
their outputs is reported, with how many of the batch's images differ by more than 1e-4 (fp32
rounding can flip a ReLU or max-pool near a tie and send PGD trajectories apart; in float64
the two agree to ~1e-9). Then ``--repeats`` timed passes alternate ours/theirs so that
background load hits both alike; the median pass is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torchattacks
from timing import device_name, sync  # benchmarks/timing.py, beside this script

from classaware.attacks import fgm, pgd
from classaware.models import ARCHITECTURES, build, pick_device

EPS = 1.0
ATTACKS = ("FGM", "PGD-10")


def ours(name: str, model: torch.nn.Module) -> Callable:
    if name == "FGM":
        return partial(fgm, model, eps=EPS, norm="l2")
    return partial(pgd, model, eps=EPS, alpha=EPS / 5, steps=10, norm="l2")


def theirs(name: str, model: torch.nn.Module) -> Callable:
    steps, alpha = (1, EPS) if name == "FGM" else (10, EPS / 5)
    return torchattacks.PGDL2(model, eps=EPS, alpha=alpha, steps=steps, random_start=False)


def images_per_s(attack: Callable, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """One timed pass of ``attack`` over all of (x, y) in batches."""
    sync(device)
    t0 = time.perf_counter()
    for i in range(0, len(x), batch_size):
        attack(x[i : i + batch_size], y[i : i + batch_size])
    sync(device)
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--archs",
        nargs="+",
        default=["resnet18", "resnet10_w8"],
        choices=sorted(ARCHITECTURES),
        metavar="ARCH",
        help="architectures of classaware.models (default: resnet18 resnet10_w8)",
    )
    p.add_argument("--n-images", type=int, help="images per timed pass (default: 10000 on CUDA, 1000 on CPU)")
    p.add_argument("--batch-size", type=int, default=500, help="images per attack call (default: %(default)s)")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed passes per library, alternating; the median is reported (default: %(default)s)",
    )
    p.add_argument(
        "--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ... (default: %(default)s)"
    )
    args = p.parse_args()
    if min(args.n_images or 1, args.batch_size, args.repeats) < 1:
        p.error("--n-images, --batch-size and --repeats must be positive")

    device = pick_device(args.device)
    n = args.n_images or (10_000 if device.type == "cuda" else 1_000)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    first = slice(0, min(n, args.batch_size))

    print(f"device: {device_name(device)}   torch {torch.__version__}   torchattacks {torchattacks.__version__}")
    print(
        f"{n} random images in [0, 1] per pass, batch {args.batch_size}, l2 eps {EPS}, no random start; "
        f"median of {args.repeats} alternating passes; models fp32, eval mode"
    )
    print()
    row = "{:<14} | {:<6} | {:>10} | {:>18} | {:>5} | {:>10} | {:>11}".format
    print(row("model", "attack", "ours img/s", "torchattacks img/s", "ratio", "max |diff|", "imgs > 1e-4"))
    for arch in args.archs:
        torch.manual_seed(0)
        model = build(arch).to(device).eval()
        for name in ATTACKS:
            attacks = {"ours": ours(name, model), "theirs": theirs(name, model)}
            diff = (
                (attacks["ours"](x[first], y[first]) - attacks["theirs"](x[first], y[first])).abs().flatten(1).amax(1)
            )
            differ = f"{int((diff > 1e-4).sum())}/{len(diff)}"
            rates: dict[str, list[float]] = {"ours": [], "theirs": []}
            for _ in range(args.repeats):
                for side, attack in attacks.items():
                    rates[side].append(images_per_s(attack, x, y, args.batch_size, device))
            a, b = statistics.median(rates["ours"]), statistics.median(rates["theirs"])
            print(
                row(arch, name, f"{a:.0f}", f"{b:.0f}", f"{a / b:.2f}", f"{diff.max().item():.1e}", differ), flush=True
            )


if __name__ == "__main__":
    main()
