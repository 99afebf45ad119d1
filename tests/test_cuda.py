"""CUDA: the GPU computes what the CPU computes, within stated tolerances; a checkpoint written on
the GPU loads on the CPU and predicts the same labels; repeated GPU attacks agree. Marker
``cuda``, skipped where no GPU is present; ``benchmarks/gpu_check.sh`` runs them on the GPU
machine (``pytest -m cuda``) and records the outcome in gpu_check.json.

Precisions. "fp32" switches cuDNN's TF32 off, so both devices compute in IEEE fp32 and differ
only in summation order (relative differences about 1e-6). "default" is what the pipeline runs:
PyTorch's defaults, under which cuDNN convolutions may use TF32 (10-bit mantissa, relative
differences about 1e-3). The attack comparisons use a small smooth CNN (Softplus, tanh: no ReLU
or max-pool ties, so rounding does not switch a trajectory onto another branch). Tolerances:

  FGM              max |x'_gpu - x'_cpu|           <= 1e-5 (fp32), 1e-3 (default)
  PGD-10, N-targeted PGD-10                        <= 1e-4 (fp32), 1e-2 (default)
  Dist             |d_gpu - d_cpu| <= tol on at least 95% of images (both): d sits on a grid of
                   scan and bisection points, so rounding moves it only where the boundary
                   crosses within rounding error of a grid point
  checkpoint       weights bit-identical after the move; labels identical wherever the CPU's
                   top-2 logit gap exceeds 1e-3 (fp32)
  repeated attacks max difference <= 1e-6: bit-identical unless cuDNN picks a non-deterministic
                   backward algorithm (the pipeline does not force deterministic ones)
  bf16 step        as on the CPU (helpers_devices)
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from helpers_devices import BF16_LOSS_RTOL, BF16_UPDATE_MIN_COSINE, bf16_step_gap
from models_for_tests import images, smooth_cnn

from classaware.attacks import fgm, n_targeted_pgd, pgd, random_target_classes
from classaware.boundary import boundary_distance, gradient_direction
from classaware.checkpoint import load_model
from classaware.models import predict
from classaware.training import Recipe, TrainSpec, train

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

GPU = torch.device("cuda")
SHAPE = (3, 32, 32)  # the zoo models' input
SMALL = (3, 8, 8)  # the smooth CNN's: its boundaries lie within Dist's radius and its labels vary
ATTACK_TOL = {"fp32": {"fgm": 1e-5, "pgd": 1e-4}, "default": {"fgm": 1e-3, "pgd": 1e-2}}


def precision(name: str):
    """A context in which the GPU computes at ``name`` ("fp32": no TF32; "default": as is)."""
    if name == "fp32":
        return torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False)
    return contextlib.nullcontext()


def on_both(fn, model: torch.nn.Module, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fn(model, *tensors) on the CPU and on the GPU (a copy of the model), both returned on the CPU."""
    cpu = fn(model.cpu(), *tensors)
    gpu = fn(model.to(GPU), *(t.to(GPU) for t in tensors)).cpu()
    model.cpu()
    return cpu, gpu


@pytest.fixture
def batch():
    model = smooth_cnn(10, seed=3, pool=4, gain=10.0)
    x = images(64, SMALL, seed=3)
    return model, x, predict(model, x)


ATTACKS = {
    "fgm": lambda m, x, y, t: fgm(m, x, y, eps=1.0, target_classes=t),
    "pgd": lambda m, x, y, t: pgd(m, x, y, eps=1.0, alpha=0.2, steps=10, target_classes=t),
}


@pytest.mark.parametrize("prec", ["fp32", "default"])
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("name", ATTACKS)
def test_fgm_and_pgd_on_the_gpu_agree_with_the_cpu(batch, name, targeted, prec):
    model, x, y = batch
    t = random_target_classes(y, 10, torch.Generator().manual_seed(0))
    with precision(prec):
        cpu, gpu = on_both(lambda m, xx, yy, tt: ATTACKS[name](m, xx, yy, tt if targeted else None), model, x, y, t)
    assert (gpu - cpu).abs().max().item() <= ATTACK_TOL[prec][name]


@pytest.mark.parametrize("prec", ["fp32", "default"])
def test_the_n_targeted_attack_on_the_gpu_agrees_with_the_cpu(batch, prec):
    model, x, y = batch
    other = smooth_cnn(10, seed=4, pool=4, gain=10.0)
    g = torch.Generator().manual_seed(1)
    t1, t2 = random_target_classes(y, 10, g, exclude_true=False), random_target_classes(y, 10, g, exclude_true=False)
    with precision(prec):
        cpu = n_targeted_pgd([model, other], x, [t1, t2], eps=1.0, alpha=0.1, steps=10)
        gpu = n_targeted_pgd(
            [model.to(GPU), other.to(GPU)], x.to(GPU), [t1.to(GPU), t2.to(GPU)], eps=1.0, alpha=0.1, steps=10
        ).cpu()
    assert (gpu - cpu).abs().max().item() <= ATTACK_TOL[prec]["pgd"]


@pytest.mark.parametrize("prec", ["fp32", "default"])
def test_dist_search_on_the_gpu_agrees_with_the_cpu(batch, prec):
    model, x, y = batch
    search = {"max_radius": 5.0, "step": 0.02, "tol": 1e-3}
    with precision(prec):
        cpu, gpu = on_both(
            lambda m, xx, yy: boundary_distance(m, xx, yy, gradient_direction(m, xx, yy), **search), model, x, y
        )
    assert torch.isfinite(cpu).float().mean() > 0.5, (
        "most images must flip within the radius for the test to mean anything"
    )
    same = ((gpu - cpu).abs() <= search["tol"]) | (torch.isinf(gpu) & torch.isinf(cpu))
    assert same.float().mean().item() >= 0.95, (cpu, gpu)


def test_a_checkpoint_written_on_the_gpu_loads_on_the_cpu_and_predicts_the_same(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (320, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(320) % 10
    spec = TrainSpec("resnet10_w8", 0, 0, Recipe(epochs=2, lr=0.05, milestones=(1,), batch_size=64))
    trained = train(spec, x[:256], y[:256], x[256:], y[256:], tmp_path / "run", device=GPU, bf16=True)
    on_cpu, meta = load_model(tmp_path / "run" / "epoch_002.pt", "resnet10_w8", "cpu")
    assert meta["epoch"] == 2
    gpu_weights = {k: v.cpu() for k, v in trained.state_dict().items()}
    assert all(torch.equal(gpu_weights[k], v) for k, v in on_cpu.state_dict().items())
    probe = images(500, SHAPE, seed=5)
    with precision("fp32"):
        gpu_labels = predict(trained, probe.to(GPU)).cpu()
    with torch.no_grad():
        top2 = on_cpu(probe).topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3
    assert clear.float().mean() >= 0.95, "nearly every image must have a clear top class for the test to mean anything"
    assert torch.equal(predict(on_cpu, probe)[clear], gpu_labels[clear])


def test_repeated_gpu_attacks_agree(batch):
    model, x, y = batch
    model, x, y = model.to(GPU), x.to(GPU), y.to(GPU)
    first = pgd(model, x, y, eps=1.0, alpha=0.2, steps=10)
    again = pgd(model, x, y, eps=1.0, alpha=0.2, steps=10)
    assert (first - again).abs().max().item() <= 1e-6


def test_a_bf16_step_on_the_gpu_stays_within_tolerance_of_fp32():
    gap = bf16_step_gap(GPU)
    assert not gap.identical
    assert gap.loss_rel <= BF16_LOSS_RTOL, gap
    assert gap.update_cosine >= BF16_UPDATE_MIN_COSINE, gap
