"""Training throughput (images/s): this project's pipeline against a plain torchvision loop.

Both sides train the same freshly built model (``classaware.models.build``) with the same
batch size and optimiser (SGD, lr 0.01, momentum 0.9, weight decay 5e-4) on the same images:

* ours: ``classaware.training.train_epoch``, the loop ``train`` runs. The uint8 training set
  sits on the device; the epoch's permutation, crops and flips are drawn in one go; each batch
  is gathered, converted, augmented with the batched ``augment`` and made channels_last; the
  model is channels_last, optionally under bf16 autocast (CUDA or CPU); loss and accuracy
  accumulate on the device, so no step waits on the host.
* baseline: a torchvision.datasets-style Dataset (HWC uint8 array, a PIL image per item) with
  RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor, a DataLoader (shuffle,
  ``--workers`` workers, pin_memory on CUDA), each batch copied to the device; fp32, default
  memory format, and no per-step host sync either (no ``loss.item()``).

Timing: each side first runs ``--warmup`` steps (cuDNN autotuning, allocator, DataLoader
workers starting), then the clock runs over ``--steps`` further steps, between a
``torch.cuda.synchronize()`` before and after on CUDA. The timed region holds everything a
step needs: ours draws one epoch plan over the timed images, the baseline starts a new
DataLoader epoch if one falls inside it; batch loading and augmentation, host-to-device
copies, forward, backward and SGD step.
Model construction, moving the data set to the device and the warm-up are outside it. Only
full batches are used, so both sides time exactly ``steps * batch_size`` images.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from PIL import Image
from timing import device_name, sync  # benchmarks/timing.py, beside this script
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from classaware.data import load_canonical
from classaware.models import ARCHITECTURES, build, pick_device
from classaware.training import Recipe, train_epoch

PAPER_ARCHS = ["resnet18", "vgg16", "densenet121"]
REDUCED_ARCHS = ["resnet10_w8", "vgg11_bn_w8"]
SYNTHETIC_SIZE = 50_000  # CIFAR-10's training-set size
Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def new_model(arch: str, device: torch.device, channels_last: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build(arch).to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return model, opt


def images_per_s(
    batches: Batches, step: Callable, batch_size: int, warmup: int, steps: int, device: torch.device
) -> float:
    """Run ``warmup`` untimed steps, then return the rate of ``steps`` timed ones."""
    for xb, yb in itertools.islice(batches, warmup):
        step(xb, yb)
    sync(device)
    t0 = time.perf_counter()
    for xb, yb in itertools.islice(batches, steps):
        step(xb, yb)
    sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------- ours
def ours(arch: str, x: torch.Tensor, y: torch.Tensor, args, device: torch.device) -> float:
    """``classaware.training.train_epoch`` itself, over exactly ``steps`` full batches."""
    model, opt = new_model(arch, device, channels_last=True)
    recipe = Recipe(batch_size=args.batch_size)
    n, w = args.steps * args.batch_size, args.warmup * args.batch_size
    x, y = x[: max(n, w)].to(device), y[: max(n, w)].to(device)
    train_epoch(model, opt, x[:w], y[:w], recipe, seed=0, bf16=args.bf16)
    sync(device)
    t0 = time.perf_counter()
    train_epoch(model, opt, x[:n], y[:n], recipe, seed=1, bf16=args.bf16)
    sync(device)
    return n / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------- baseline
class CifarLike(Dataset):
    """Like torchvision.datasets.CIFAR10: an HWC uint8 array in memory, a PIL image per item."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.data = x.permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def baseline_batches(dataset: Dataset, args, device: torch.device) -> Batches:
    pin = device.type == "cuda"
    loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, pin_memory=pin, drop_last=True
    )
    while True:
        for xb, yb in loader:
            yield xb.to(device, non_blocking=pin), yb.to(device, non_blocking=pin)


def baseline(arch: str, dataset: Dataset, args, device: torch.device) -> float:
    model, opt = new_model(arch, device, channels_last=False)

    def step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return images_per_s(baseline_batches(dataset, args, device), step, args.batch_size, args.warmup, args.steps, device)


# ----------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--archs",
        nargs="+",
        choices=sorted(ARCHITECTURES),
        metavar="ARCH",
        help=f"architectures of classaware.models (default: {' '.join(PAPER_ARCHS)} on CUDA, {' '.join(REDUCED_ARCHS)} on CPU)",
    )
    p.add_argument("--batch-size", type=int, default=128, help="images per step, both sides (default: %(default)s)")
    p.add_argument("--steps", type=int, default=50, help="timed steps per side (default: %(default)s)")
    p.add_argument(
        "--warmup", type=int, default=5, help="untimed steps per side before the clock starts (default: %(default)s)"
    )
    p.add_argument(
        "--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ... (default: %(default)s)"
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bf16 autocast for ours (CUDA or CPU); the baseline stays fp32 (default: off, as in params.yaml)",
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        help="canonical CIFAR-10 file from `classaware prepare`, whose training split is used (default: random uint8 images)",
    )
    p.add_argument("--workers", type=int, default=4, help="baseline DataLoader workers (default: %(default)s)")
    args = p.parse_args()
    if min(args.batch_size, args.steps) < 1 or min(args.warmup, args.workers) < 0:
        p.error("--batch-size and --steps must be positive, --warmup and --workers not negative")

    device = pick_device(args.device)
    archs = args.archs or (PAPER_ARCHS if device.type == "cuda" else REDUCED_ARCHS)
    if args.data:
        data = load_canonical(args.data)
        x, y = data.train_x, data.train_y
        source = f"{data.label}, training split ({len(y)} images)"
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (SYNTHETIC_SIZE, 3, 32, 32), dtype=torch.uint8, generator=g)
        y = torch.randint(0, 10, (SYNTHETIC_SIZE,), generator=g)
        source = f"random uint8 images of CIFAR-10 shape ({SYNTHETIC_SIZE}), not real data (pass --data for CIFAR-10)"
    if len(y) < args.batch_size:
        p.error(f"the data has {len(y)} images, fewer than one batch of {args.batch_size}")
    augmentation = transforms.Compose(
        [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
    )
    dataset = CifarLike(x, y, augmentation)

    bf16 = "on" if args.bf16 else "off"
    print(f"device: {device_name(device)}   torch {torch.__version__}")
    print(f"data: {source}")
    print(
        f"batch {args.batch_size}; {args.warmup} warm-up + {args.steps} timed steps = {args.steps * args.batch_size} timed images per side"
    )
    print(
        f"ours: data on device, batched augment, channels_last, bf16 autocast {bf16}; baseline: DataLoader with {args.workers} workers, fp32"
    )
    print()
    row = "{:<14} | {:>10} | {:>14} | {:>8}".format
    print(row("arch", "ours img/s", "baseline img/s", "speed-up"))
    for arch in archs:
        a = ours(arch, x, y, args, device)
        b = baseline(arch, dataset, args, device)
        print(row(arch, f"{a:.0f}", f"{b:.0f}", f"{a / b:.2f}x"), flush=True)


if __name__ == "__main__":
    main()
