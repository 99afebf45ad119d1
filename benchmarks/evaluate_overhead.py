"""What `classaware evaluate` costs beside the attack and the models it runs, on the CPU.

The same work two ways, on the same images, interleaved (A B A B ...) so a drift of the machine's
speed hits both:

* by hand: per batch, x' = attack(x, y), then F1(x), F1(x'), and every F2(x) and F2(x') as
  argmax labels under ``torch.no_grad``, then :func:`classaware.class_aware_transfer` once; the
  least any evaluation of the class-aware ratios must run;
* ``classaware.evaluate``: the same attack spec and models through the adapters (checks of every
  batch's x', the eps ball, the streaming loop, the targeted and published tables, per-class and
  pair tables), in memory (``--cache`` off) and, as a second variant, with the per-batch cache on
  disk (what makes a run resumable).

The overhead is the median of evaluate's time over the median by hand, minus 1, both in wall time and
in the process's CPU time (``time.process_time``: on a machine other work shares, the CPU time a run
takes moves far less than its wall time). The models are the
zoo's resnet10_w8 (random weights: the cost does not depend on them) on CIFAR-sized random images, the
attack torchattacks' MI-FGSM with 10 steps. Run:

    python benchmarks/evaluate_overhead.py --images 500 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

import classaware
from classaware.environment import cpu_model
from classaware.evaluation import tables
from classaware.models import build


def by_hand(source, targets, atk, x, y, batch_size):
    y1_clean, y1_adv, y2_clean, y2_adv = [], [], [[] for _ in targets], [[] for _ in targets]
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        xa = atk(xb, yb)
        with torch.no_grad():
            y1_clean.append(source(xb).argmax(1))
            y1_adv.append(source(xa).argmax(1))
            for j, t in enumerate(targets):
                y2_clean[j].append(t(xb).argmax(1))
                y2_adv[j].append(t(xa).argmax(1))
    adv = torch.stack([torch.cat(a) for a in y2_adv])
    return classaware.class_aware_transfer(y, torch.cat(y1_clean), torch.cat(y1_adv), adv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import torchattacks

    torch.manual_seed(0)
    source, *targets = (build("resnet10_w8").eval() for _ in range(4))
    x, y = torch.rand(args.images, 3, 32, 32), torch.randint(0, 10, (args.images,))
    spec = f"torchattacks:MIFGSM(eps=8/255, steps={args.steps})"
    atk = torchattacks.MIFGSM(source, eps=8 / 255, steps=args.steps)

    def evaluate(cache):
        ev = classaware.evaluate(source, targets, spec, (x, y), device="cpu", batch_size=args.batch_size, cache=cache)
        tables.summary(ev.samples), tables.per_class(ev.samples), tables.pairs(ev.samples)
        return ev

    runs = {"by hand": [], "evaluate": [], "evaluate + cache": []}
    cpu = {name: [] for name in runs}
    for _ in range(args.repeats + 1):  # the first round warms up, and is not counted
        for name in runs:
            # a new, empty cache folder each time (a first run, which writes every entry); making and
            # removing it is the benchmark's, not the evaluation's, and stays out of the timed region
            with tempfile.TemporaryDirectory() as d:
                start, start_cpu = time.perf_counter(), time.process_time()
                if name == "by hand":
                    by_hand(source, targets, atk, x, y, args.batch_size)
                else:
                    evaluate(d if name == "evaluate + cache" else None)
                runs[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    hand = statistics.median(runs["by hand"][1:])
    hand_cpu = statistics.median(cpu["by hand"][1:])
    result = {
        "cpu": cpu_model(),
        "threads": args.threads,
        "images": args.images,
        "attack": spec,
        "median_s": {k: round(statistics.median(v[1:]), 3) for k, v in runs.items()},
        "all_s": {k: [round(t, 3) for t in v[1:]] for k, v in runs.items()},
        "overhead": {k: round(statistics.median(v[1:]) / hand - 1, 4) for k, v in runs.items() if k != "by hand"},
        "cpu_median_s": {k: round(statistics.median(v[1:]), 3) for k, v in cpu.items()},
        "cpu_all_s": {k: [round(t, 3) for t in v[1:]] for k, v in cpu.items()},
        "cpu_overhead": {
            k: round(statistics.median(v[1:]) / hand_cpu - 1, 4) for k, v in cpu.items() if k != "by hand"
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
