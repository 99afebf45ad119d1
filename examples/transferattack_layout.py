"""Write a folder of adversarial examples in TransferAttack's layout, to try `classaware evaluate --saved
transferattack:...` without TransferAttack: ``OUT/input/images/NNNN.png`` and ``OUT/input/labels.csv``
(``filename,label,targeted_label``: the NIPS'17-style input TransferAttack's ``main.py`` reads) and
``OUT/adv/NNNN.png``, the adversarial examples saved as TransferAttack's ``save_images`` saves them,
``(x * 255).astype(np.uint8)`` (truncated), under the clean images' file names. The adversarial examples
are MI-FGSM's (TransferAttack's default attack: linf eps 16/255 by default, 10 steps of eps/10, decay 1)
on a zoo checkpoint, computed with torchattacks.

    python examples/transferattack_layout.py --data data/cifar10.pt --model models/resnet10_w8-s0 --n 200 --out ta-example
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from classaware.checkpoint import load_model, ref_path
from classaware.data import balanced_subset, load_canonical, to_float


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="canonical CIFAR-10 file (classaware prepare)")
    p.add_argument("--model", type=Path, required=True, help="a classaware train folder (its last epoch)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=200, help="class-balanced test images")
    p.add_argument("--eps", type=float, default=16 / 255)
    args = p.parse_args()
    import torchattacks

    data = load_canonical(args.data)
    idx = balanced_subset(data.test_y, args.n)
    x, y = to_float(data.test_x[idx]), data.test_y[idx]
    model, _ = load_model(ref_path(args.model.parent, args.model.name))
    atk = torchattacks.MIFGSM(model, eps=args.eps, alpha=args.eps / 10, steps=10, decay=1.0)
    x_adv = torch.cat([atk(x[i : i + 100], y[i : i + 100]) for i in range(0, len(x), 100)])
    t = (y + torch.randint(1, 10, y.shape, generator=torch.Generator().manual_seed(0))) % 10
    (args.out / "input" / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "adv").mkdir(parents=True, exist_ok=True)
    with open(args.out / "input" / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "label", "targeted_label"])
        for i in range(len(y)):
            name = f"{i:04d}.png"
            w.writerow([name, int(y[i]), int(t[i])])
            Image.fromarray(data.test_x[idx[i]].permute(1, 2, 0).numpy()).save(args.out / "input" / "images" / name)
            adv = (x_adv[i].detach().permute(1, 2, 0).numpy() * 255).astype(np.uint8)  # TransferAttack's save_images
            Image.fromarray(adv).save(args.out / "adv" / name)
    print(f"wrote {len(y)} clean and adversarial PNGs under {args.out}")


if __name__ == "__main__":
    main()
