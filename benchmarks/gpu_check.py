"""The Python half of ``gpu_check.sh``: the environment, the throughput benchmarks, and the one
JSON file a GPU check leaves (``OUT_DIR/gpu_check.json``). ``KEYS`` below is the one list of
that file's keys; ``tests/test_gpu_check.py`` checks a rehearsal's file against it.

  params   params.yaml for the check: a profile, with the --cpu rehearsal's overrides merged in
  env      python, torch, CUDA, cuDNN, torchvision, DVC versions, the commit, the device
  bench    the benchmarks, each time-boxed by --deadline (a benchmark that does not fit is
           recorded as skipped); the file is rewritten after each, so a killed run keeps the
           finished ones
  collect  the parts above, nvidia-smi's output, each step's exit status and time, the
           pipeline's stage times, the claims' verdicts and the CUDA tests' outcome -> gpu_check.json

Benchmarks (sizes per ``SIZES``; real CIFAR-10 images from the pipeline's data file when it
exists, else random ones, recorded under ``data``):

  train             img/s of ``classaware.training.train_epoch`` (the loop every training runs:
                    the paper recipe's crop and flip, channels_last, bf16 autocast as set) per
                    architecture, via ``train_throughput.ours``; and the seconds one resume
                    state (weights + momentum) takes to save (``training.state_epochs``)
  infer             img/s of ``classaware.models.predict`` (fp32, eval mode, channels_last) per
                    architecture
  pgd               img/s of ``classaware.attacks.pgd`` (l2, eps 1, alpha 0.2) on test images,
                    and of forward passes of the same images and batches right after
  n_targeted        img/s of ``classaware.attacks.n_targeted_pgd`` (l2, eps 1, alpha 0.1), the
                    ``construct`` stage's attack, on training images with random targets
  distance          img/s of Dist's search (``gradient_direction`` + ``boundary_distance``) on
                    test images labelled with the model's own predictions (as the images every
                    model gets right are), with the model's forward passes per image; the model
                    is the pipeline's trained checkpoint when there is one
  concurrent_train  total img/s of 1, 2 and 4 trainings running at once on the one device, each
                    in its own process (as separate DVC stages or grid cells would run); their
                    timed regions start together (a barrier) and the total is all their images
                    over the span from the first start to the last end

Timed regions hold the measured calls only, between device syncs. The estimate
(``classaware estimate --throughput gpu_check.json``) reads the ``throughput`` section.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.multiprocessing as mp
import yaml
from timing import device_name, sync  # benchmarks/timing.py, beside this script
from train_throughput import new_model, ours

from classaware.attacks import n_targeted_pgd, pgd, random_target_classes
from classaware.boundary import boundary_distance, gradient_direction
from classaware.checkpoint import load_model
from classaware.data import load_canonical, to_float
from classaware.environment import CodeVersion
from classaware.files import save_tensors
from classaware.models import build, pick_device, predict
from classaware.schema import ClaimResults
from classaware.stages.report import environment as report_environment
from classaware.training import Recipe, train_epoch
from classaware.workflow.profile import BASE, check_zoo, merge, merged_params

PAPER_ARCHS = ("resnet18", "resnet34", "vgg16", "vgg19", "densenet121", "vgg16_bn")
KEYS = {  # gpu_check.json: top-level key -> the keys of its value (None: free-form)
    "mode": None,
    "profile": None,
    "device": None,
    "started": None,
    "wall_s": None,
    "size": None,
    "versions": ("python", "torch", "torch_cuda", "cudnn", "torchvision", "dvc", "classaware_commit"),
    "nvidia_smi": None,
    "steps": None,  # step -> {"rc", "seconds"}
    "pipeline": ("rc", "timed_out", "wall_s", "stages_run"),
    "stages": None,  # DVC stage -> seconds
    "claims": None,  # claim id -> a verdict of classaware.schema.VERDICTS
    "cuda_tests": ("passed", "failed", "skipped", "errors"),
    "throughput": ("train", "infer", "pgd", "n_targeted", "distance", "concurrent_train", "pipeline"),
    "errors": None,
}
THROUGHPUT_KEYS = {
    "train": ("archs", "batch_size", "bf16", "steps", "data", "img_per_s", "state_save_s"),
    "infer": ("archs", "batch_size", "n_images", "data", "img_per_s"),
    "pgd": ("arch", "steps", "batch_size", "n_images", "data", "img_per_s", "forward_img_per_s"),
    "n_targeted": ("archs", "steps", "batch_size", "n_images", "data", "img_per_s"),
    "distance": ("arch", "weights", "search", "batch_size", "n_images", "data", "img_per_s", "forwards_per_image"),
    "concurrent_train": ("arch", "batch_size", "steps", "img_per_s"),
    "pipeline": ("stage_overhead_s", "decode_img_per_s"),
}
CONCURRENT = (1, 2, 4)
DECODED = 60_000  # images the prepare stage decodes (CIFAR-10's two splits)


@dataclass(frozen=True)
class Size:
    """How much each benchmark does. ``cap_s``: the longest a capped benchmark may take; it
    then reports the images it finished."""

    archs: tuple[str, ...] = PAPER_ARCHS
    train_batch: int = 128
    train_warmup: int = 5
    train_steps: int = 30
    bf16: bool = True
    infer_images: int = 10_000
    infer_batch: int = 1000
    pgd_arch: str = "resnet18"
    pgd_images: int = 10_000
    pgd_steps: int = 10
    attack_batch: int = 500
    nt_archs: tuple[str, str] = ("resnet18", "vgg16")
    nt_images: int = 10_000
    nt_steps: int = 100
    dist_arch: str = "resnet18"
    dist_images: int = 1000
    search: dict = field(default_factory=lambda: {"max_radius": 10.0, "step": 0.02, "tol": 1e-3})
    conc_arch: str = "resnet18"
    conc_steps: int = 30
    cap_s: float = 25.0


REDUCED = {
    "archs": ("resnet10_w8", "vgg11_bn_w8"),
    "bf16": False,
    "pgd_arch": "resnet10_w8",
    "nt_archs": ("resnet10_w8", "vgg11_bn_w8"),
    "dist_arch": "resnet10_w8",
    "conc_arch": "resnet10_w8",
}
SIZES = {
    # one H100: sized for about 120 s in all (every capped benchmark at most 25 s)
    "gpu": Size(),
    # the CPU rehearsal (--cpu): the same benchmarks at toy size on the rehearsal's reduced models, seconds on one core
    "cpu": Size(
        **REDUCED,
        train_batch=16,
        train_warmup=1,
        train_steps=3,
        infer_images=64,
        infer_batch=32,
        pgd_images=16,
        attack_batch=16,
        nt_images=8,
        dist_images=8,
        conc_steps=3,
        cap_s=10.0,
    ),
    # CPU figures for `classaware estimate` of the reduced profiles (quick, smoke): their models, fp32, batch 128
    "cpu-reduced": Size(
        **REDUCED,
        train_warmup=3,
        train_steps=20,
        infer_images=4000,
        pgd_images=1000,
        nt_images=500,
        nt_steps=30,
        dist_images=500,
        search={"max_radius": 10.0, "step": 0.05, "tol": 1e-3},
        conc_steps=20,
        cap_s=60.0,
    ),
}


# ----------------------------------------------------------------------------- params
def write_params(profile: str, profiles: Path, data: Path, overrides: Path | None, out: Path) -> None:
    """``params.yaml`` of ``profile`` (as ``classaware profile`` writes it), with ``overrides``
    merged in by the profiles' own rules (unknown keys are errors)."""
    params = merged_params(profile, profiles, data)
    source = f"profile {profile}"
    if overrides is not None:
        params = merge(params, yaml.safe_load(overrides.read_text()))
        check_zoo(params["zoo"], yaml.safe_load((profiles / f"{BASE}.yaml").read_text())["zoo"], str(overrides))
        source += f" with {overrides} merged in"
    out.write_text(
        f"# Written by benchmarks/gpu_check.py: {source}.\n"
        + yaml.safe_dump(params, sort_keys=False, default_flow_style=None, width=100)
    )


# ----------------------------------------------------------------------------- env
def environment(device: str) -> dict:
    """The versions and the device (named as unavailable, with why, if it is); the code is the
    working directory's checkout, in the words ``classaware report`` uses (``CodeVersion``)."""
    import torchvision

    env = dict(report_environment([], []))
    try:
        name = device_name(pick_device(device))
    except ValueError as exc:
        name = f"{device} unavailable: {exc}"
    return {
        "device": name,
        "versions": {
            "python": env["python"],
            "torch": str(torch.__version__),
            "torch_cuda": torch.version.cuda or "none",
            "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none",
            "torchvision": torchvision.__version__,
            "dvc": env["dvc"],
            "classaware_commit": CodeVersion.current().describe(),
        },
    }


# ----------------------------------------------------------------------------- bench
class Clock:
    """The benchmarks' shared deadline (seconds since the epoch)."""

    def __init__(self, deadline: float):
        self.deadline = deadline

    def left(self) -> float:
        return self.deadline - time.time()


def capped_rate(
    fn, tensors: tuple, batch_size: int, device: torch.device, cap_s: float, on_start=lambda: None
) -> tuple[float, int]:
    """(img/s, images done) of ``fn`` over batches of ``tensors`` (first dimension), stopping
    after the batch that passes ``cap_s`` seconds; the first batch runs untimed, as warm-up,
    and ``on_start`` is called as the clock starts."""
    fn(*(t[:batch_size] for t in tensors))
    sync(device)
    on_start()
    t0, done = time.perf_counter(), 0
    for i in range(0, len(tensors[0]), batch_size):
        fn(*(t[i : i + batch_size] for t in tensors))
        done += len(tensors[0][i : i + batch_size])
        if time.perf_counter() - t0 > cap_s:
            break
    sync(device)
    return done / (time.perf_counter() - t0), done


class ForwardCounter:
    """Counts the images a model's forward passes see (a forward pre-hook)."""

    def __init__(self, model: torch.nn.Module):
        self.n = 0
        model.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        self.n += len(args[0])

    def reset(self) -> None:
        self.n = 0


def _model(arch: str, device: torch.device, weights: Path | None = None) -> torch.nn.Module:
    """The pipeline's way of holding a model for inference and attacks: channels_last, eval."""
    if weights is not None:
        return load_model(weights, arch, device)[0]
    torch.manual_seed(0)
    return build(arch).to(device, memory_format=torch.channels_last).eval()


def bench_train(size: Size, data: dict, device: torch.device, scratch: Path, clock: Clock) -> dict:
    args = SimpleNamespace(
        batch_size=size.train_batch, steps=size.train_steps, warmup=size.train_warmup, bf16=size.bf16
    )
    rates, saves = {}, {}
    for arch in size.archs:
        if clock.left() < 0:
            break
        rates[arch] = ours(arch, data["train_x"], data["train_y"], args, device)
        model, opt = new_model(arch, device, channels_last=True)
        n = size.train_batch
        train_epoch(
            model, opt, data["train_x"][:n].to(device), data["train_y"][:n].to(device), Recipe(batch_size=n), seed=0
        )
        t0 = time.perf_counter()
        save_tensors({"model": model.state_dict(), "optimizer": opt.state_dict()}, scratch / "state.pt")
        saves[arch] = time.perf_counter() - t0
    return {
        "archs": list(rates),
        "batch_size": size.train_batch,
        "bf16": size.bf16,
        "steps": size.train_steps,
        "img_per_s": rates,
        "state_save_s": saves,
    }


def bench_infer(size: Size, data: dict, device: torch.device, clock: Clock) -> dict:
    x = to_float(data["test_x"][: size.infer_images]).to(device)
    rates = {}
    for arch in size.archs:
        if clock.left() < 0:
            break
        model = _model(arch, device)
        rates[arch] = capped_rate(
            partial(predict, model, batch_size=size.infer_batch), (x,), size.infer_batch * 4, device, size.cap_s
        )[0]
    return {"archs": list(rates), "batch_size": size.infer_batch, "n_images": len(x), "img_per_s": rates}


def bench_pgd(size: Size, data: dict, device: torch.device, clock: Clock) -> dict:
    """PGD, and right after it plain forward passes of the same images in the same batches: the
    estimate's cost of a gradient relative to a forward pass is the ratio of the two, measured
    back to back so that a change in the machine's load between benchmarks does not enter it."""
    model = _model(size.pgd_arch, device)
    x, y = to_float(data["test_x"][: size.pgd_images]).to(device), data["test_y"][: size.pgd_images].to(device)
    rate, done = capped_rate(
        lambda xb, yb: pgd(model, xb, yb, eps=1.0, alpha=0.2, steps=size.pgd_steps, norm="l2"),
        (x, y),
        size.attack_batch,
        device,
        min(size.cap_s, clock.left()),
    )
    forward, _ = capped_rate(
        lambda xb: predict(model, xb, size.attack_batch), (x[:done],), size.attack_batch, device, size.cap_s
    )
    return {
        "arch": size.pgd_arch,
        "steps": size.pgd_steps,
        "batch_size": size.attack_batch,
        "n_images": done,
        "img_per_s": rate,
        "forward_img_per_s": forward,
    }


def bench_n_targeted(size: Size, data: dict, device: torch.device, clock: Clock) -> dict:
    models = [_model(a, device) for a in size.nt_archs]
    x, y = to_float(data["train_x"][: size.nt_images]).to(device), data["train_y"][: size.nt_images]
    g = torch.Generator().manual_seed(1)
    t1, t2 = (random_target_classes(y, 10, g, exclude_true=False).to(device) for _ in range(2))
    rate, done = capped_rate(
        lambda xb, ab, bb: n_targeted_pgd(models, xb, [ab, bb], eps=1.0, alpha=0.1, steps=size.nt_steps),
        (x, t1, t2),
        size.attack_batch,
        device,
        min(size.cap_s, clock.left()),
    )
    return {
        "archs": list(size.nt_archs),
        "steps": size.nt_steps,
        "batch_size": size.attack_batch,
        "n_images": done,
        "img_per_s": rate,
    }


def bench_distance(size: Size, data: dict, device: torch.device, models_dir: Path | None, clock: Clock) -> dict:
    """Dist's search on the first test images, each labelled with the model's own prediction (as
    on the images every model gets right that the stage uses): the search costs the same."""
    saved = sorted((models_dir / size.dist_arch).glob("epoch_*.pt")) if models_dir else []
    weights = saved[-1] if saved else None
    model = _model(size.dist_arch, device, weights)
    x = to_float(data["test_x"][: size.dist_images]).to(device)
    y = predict(model, x)
    counter = ForwardCounter(model)

    def search(xb, yb):
        return boundary_distance(model, xb, yb, gradient_direction(model, xb, yb), **size.search)

    rate, done = capped_rate(search, (x, y), size.attack_batch, device, min(size.cap_s, clock.left()), counter.reset)
    return {
        "arch": size.dist_arch,
        "weights": str(weights) if weights else "random initialisation",
        "search": dict(size.search),
        "batch_size": size.attack_batch,
        "n_images": done,
        "img_per_s": rate,
        "forwards_per_image": counter.n / done,
    }


def _concurrent_worker(rank: int, size: Size, device: str, barrier, results) -> None:
    device = torch.device(device)
    g = torch.Generator().manual_seed(rank)
    n = size.train_batch * size.conc_steps
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    model, opt = new_model(size.conc_arch, device, channels_last=True)
    recipe = Recipe(batch_size=size.train_batch)
    train_epoch(
        model,
        opt,
        x[: size.train_batch * size.train_warmup],
        y[: size.train_batch * size.train_warmup],
        recipe,
        seed=0,
        bf16=size.bf16,
    )
    sync(device)
    barrier.wait()
    t0 = time.time()
    train_epoch(model, opt, x, y, recipe, seed=1, bf16=size.bf16)
    sync(device)
    results.put((t0, time.time(), n))


def bench_concurrent(size: Size, device: torch.device, clock: Clock) -> dict:
    # forkserver, not spawn: one server process imports torch once and forks each worker from it
    # (spawn imported torch in every worker: 7 imports of about 3 CPU-s); CUDA never starts in the
    # server, so the workers may use it, which fork would not allow
    ctx = mp.get_context("forkserver")
    rates = {}
    for k in CONCURRENT:
        if clock.left() < 0:
            break
        barrier, results = ctx.Barrier(k), ctx.SimpleQueue()
        procs = [
            ctx.Process(target=_concurrent_worker, args=(i, size, str(device), barrier, results)) for i in range(k)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=max(size.cap_s, clock.left()))
        if any(p.is_alive() or p.exitcode for p in procs):
            for p in procs:
                p.kill()
            raise RuntimeError(
                f"{k} concurrent trainings: a worker failed or ran out of time (exit codes {[p.exitcode for p in procs]})"
            )
        spans = [results.get() for _ in procs]
        rates[str(k)] = sum(n for _, _, n in spans) / (max(e for _, e, _ in spans) - min(s for s, _, _ in spans))
    return {"arch": size.conc_arch, "batch_size": size.train_batch, "steps": size.conc_steps, "img_per_s": rates}


def load_data(path: Path | None, size: Size) -> tuple[dict, str]:
    """The CIFAR-10 tensors of the pipeline's data file, or random ones of its shape."""
    if path is not None and path.is_file():
        d = load_canonical(path)
        return {"train_x": d.train_x, "train_y": d.train_y, "test_x": d.test_x, "test_y": d.test_y}, d.dataset
    g = torch.Generator().manual_seed(0)
    n = max(size.train_batch * max(size.train_steps, size.train_warmup), size.nt_images)
    m = max(size.infer_images, size.pgd_images, size.dist_images * 4)
    return {
        "train_x": torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        "train_y": torch.randint(0, 10, (n,), generator=g),
        "test_x": torch.randint(0, 256, (m, 3, 32, 32), dtype=torch.uint8, generator=g),
        "test_y": torch.randint(0, 10, (m,), generator=g),
    }, "random images (no data file)"


def bench(args) -> None:
    size, clock = SIZES[args.size], Clock(args.deadline)
    out: dict = {"size": args.size, "results": {}, "errors": []}
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        out["errors"].append(f"benchmarks: none ran: {exc}")
        _write(args.out, out)
        sys.exit(1)
    data, label = load_data(args.data, size)
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        runs = {  # what the estimate needs most first, should time run out
            "train": lambda: bench_train(size, data, device, Path(scratch), clock),
            "concurrent_train": lambda: bench_concurrent(size, device, clock),
            "infer": lambda: bench_infer(size, data, device, clock),
            "pgd": lambda: bench_pgd(size, data, device, clock),
            "distance": lambda: bench_distance(size, data, device, args.models, clock),
            "n_targeted": lambda: bench_n_targeted(size, data, device, clock),
        }
        for name, run in runs.items():
            if clock.left() < 0:
                out["errors"].append(f"benchmark {name}: skipped, out of time")
                continue
            t0 = time.perf_counter()
            try:
                result = run()
                if name != "concurrent_train":
                    result["data"] = label
                out["results"][name] = result
            except Exception as exc:  # recorded in the JSON: the remaining benchmarks still run
                out["errors"].append(f"benchmark {name}: {type(exc).__name__}: {exc}")
            print(
                f"benchmark {name}: {time.perf_counter() - t0:.1f} s: {json.dumps(out['results'].get(name))}",
                flush=True,
            )
            _write(args.out, out)
    _write(args.out, out)


# ----------------------------------------------------------------------------- collect
def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read(path: Path, errors: list, what: str) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        errors.append(f"{what}: cannot read {path}: {exc}")
        return None


def stage_times(timings: Path) -> dict:
    """DVC stage -> seconds, from the pipeline's logs/timings.jsonl (the last run of each)."""
    if not timings.is_file():
        return {}
    return {r["stage"]: r["seconds"] for r in map(json.loads, timings.read_text().splitlines())}


def cuda_test_counts(junit: Path) -> dict | None:
    if not junit.is_file():
        return None
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "failed": counts["failures"],
        "skipped": counts["skipped"],
        "errors": counts["errors"],
    }


def collect(args) -> list[str]:
    """Write gpu_check.json; return its errors."""
    parts, work, errors = args.parts, args.work, []
    env = _read(parts / "env.json", errors, "environment") or {}
    smi = parts / "nvidia_smi.txt"
    steps = {}
    if (parts / "steps.jsonl").is_file():
        for r in map(json.loads, (parts / "steps.jsonl").read_text().splitlines()):
            steps[r["step"]] = {"rc": r["rc"], "seconds": r["seconds"]}
    errors += [
        f"step {name} exited with {s['rc']}" + (" (timed out)" if s["rc"] == 124 else "")
        for name, s in steps.items()
        if s["rc"]
    ]
    stages = stage_times(work / "logs" / "timings.jsonl")
    pipe = steps.get("pipeline", {"rc": None, "seconds": None})
    # per stage, what the pipeline's wall time holds beyond the stages' own: only from a finished run
    overhead = (pipe["seconds"] - sum(stages.values())) / len(stages) if stages and pipe["rc"] == 0 else None
    bench_part = _read(parts / "bench.json", errors, "benchmarks") or {"results": {}, "errors": []}
    errors += bench_part["errors"]
    throughput = {name: bench_part["results"].get(name) for name in THROUGHPUT_KEYS if name != "pipeline"}
    throughput["pipeline"] = {
        "stage_overhead_s": overhead,
        "decode_img_per_s": DECODED / stages["prepare"] if stages.get("prepare") else None,
    }
    claims_file = work / "results" / "claims.json"
    claims = None
    if claims_file.is_file():
        claims = {cid: c.verdict for cid, c in ClaimResults.load(claims_file).claims.items()}
    else:
        errors.append(f"no claims verdicts: {claims_file} was not written (the pipeline did not reach verify)")
    cuda_tests = cuda_test_counts(parts / "cuda_tests.xml")
    if cuda_tests is None:
        errors.append("the CUDA tests left no report")
    elif cuda_tests["failed"] or cuda_tests["errors"]:
        errors.append(f"CUDA tests: {cuda_tests['failed']} failed, {cuda_tests['errors']} errors (see the log)")
    elif args.mode == "gpu" and not cuda_tests["passed"]:
        errors.append("CUDA tests: none ran on the GPU (all skipped: no CUDA device?)")
    doc = {
        "mode": args.mode,
        "profile": args.profile,
        "size": bench_part.get("size"),
        "started": args.started,
        "wall_s": time.time() - args.started_s,
        "device": env.get("device"),
        "versions": env.get("versions"),
        "nvidia_smi": smi.read_text() if smi.is_file() else "not available",
        "steps": steps,
        "pipeline": {
            "rc": pipe["rc"],
            "timed_out": pipe["rc"] == 124,
            "wall_s": pipe["seconds"],
            "stages_run": len(stages),
        },
        "stages": stages,
        "claims": claims,
        "cuda_tests": cuda_tests,
        "throughput": throughput,
        "errors": errors,
    }
    assert set(doc) == set(KEYS), set(doc) ^ set(KEYS)
    _write(args.out, doc)
    print(f"wrote {args.out}: {len(stages)} stages, {len(errors)} errors", flush=True)
    for e in errors:
        print(f"  error: {e}", flush=True)
    return errors


# ----------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("params", help="params.yaml for the check")
    w.add_argument("--profile", required=True)
    w.add_argument("--profiles", type=Path, required=True, help="folder of the profile files")
    w.add_argument("--data", type=Path, required=True, help="the CIFAR-10 archive")
    w.add_argument("--overrides", type=Path, help="YAML merged onto the profile (the --cpu rehearsal's)")
    w.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("env", help="versions and the device")
    e.add_argument("--device", default="auto")
    e.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("bench", help="the throughput benchmarks")
    b.add_argument("--size", choices=SIZES, required=True)
    b.add_argument("--device", default="auto")
    b.add_argument("--data", type=Path, help="the pipeline's canonical CIFAR-10 file (default: random images)")
    b.add_argument(
        "--models", type=Path, help="the pipeline's models folder (Dist's benchmark uses its trained checkpoint)"
    )
    b.add_argument(
        "--scratch", type=Path, help="folder for the state-save benchmark's file (the disk training writes to)"
    )
    b.add_argument(
        "--deadline", type=float, required=True, help="seconds since the epoch by which to stop starting benchmarks"
    )
    b.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("collect", help="everything into gpu_check.json")
    c.add_argument("--mode", choices=("gpu", "cpu"), required=True)
    c.add_argument("--profile", required=True)
    c.add_argument("--parts", type=Path, required=True)
    c.add_argument("--work", type=Path, required=True)
    c.add_argument("--started", required=True, help="start time, ISO 8601")
    c.add_argument("--started_s", type=float, required=True, help="start time, seconds since the epoch")
    c.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if args.command == "params":
        write_params(args.profile, args.profiles, args.data, args.overrides, args.out)
    elif args.command == "env":
        _write(args.out, environment(args.device))
    elif args.command == "bench":
        bench(args)
    elif collect(args):
        sys.exit(1)  # the JSON is written; its errors say what failed


if __name__ == "__main__":
    main()
