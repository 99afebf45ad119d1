"""Small models, data and factories for the tests of ``classaware evaluate`` (importable by name
from specs such as ``py:helpers_evaluate:linear`` and ``state:helpers_evaluate:linear@FILE``)."""

from __future__ import annotations

import torch
from torch import nn

CALLS = {"attack": 0}


def toy_data(n: int = 60, classes: int = 3, size: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] near one random template per class, and their labels."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(classes, 3, size, size, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return (0.7 * templates[y] + 0.3 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1), y


def linear(classes: int = 3, size: int = 4, seed: int = 0) -> nn.Module:
    """A seeded linear classifier of (3, size, size) images."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, classes)).eval()


def linear_other() -> nn.Module:
    return linear(seed=1)


def linear_four_classes() -> nn.Module:
    return linear(classes=4, seed=2)


MODEL = linear(seed=3)


def counting_attack(x, y, t=None, eps=0.1):
    """A callable attack f(x, y, t=None): x moved by eps * sign of a fixed pattern, counting its calls."""
    CALLS["attack"] += 1
    pattern = torch.sign(torch.sin(torch.arange(x[0].numel(), dtype=x.dtype))).view_as(x[0])
    return (x + eps * pattern).clamp(0, 1)


def wrong_shape_attack(x, y, t=None):
    return x[:, :, :-1]


def leaving_attack(x, y, t=None):
    return (x + 0.5).clamp(0, 1)


def nan_attack(x, y, t=None):
    return x * float("nan")


class TransferAttackLike:
    """An attack with TransferAttack's interface (its ``Attack`` base class, reduced to the
    conventions an adapter must follow): built by surrogate name, loading that surrogate in
    ``load_model`` (which the adapter must override: here it would raise), returning the
    *perturbation*, taking ``[y, t]`` labels when targeted; linf I-FGSM inside ``epsilon``."""

    def __init__(
        self,
        model_name,
        epsilon=16 / 255,
        alpha=1.6 / 255,
        epoch=10,
        targeted=False,
        random_start=False,
        norm="linfty",
        loss="crossentropy",
        device=None,
    ):
        self.model = self.load_model(model_name)
        self.epsilon, self.alpha, self.epoch, self.targeted = epsilon, alpha, epoch, targeted
        self.seen_labels = None

    def load_model(self, model_name):
        raise RuntimeError(f"would download surrogate {model_name!r}")

    def __call__(self, data, label):
        self.seen_labels = label
        if self.targeted:
            assert len(label) == 2
            label = label[1]
        delta = torch.zeros_like(data, requires_grad=True)
        for _ in range(self.epoch):
            loss = nn.functional.cross_entropy(self.model(data + delta), label)
            (g,) = torch.autograd.grad(-loss if self.targeted else loss, delta)
            delta = (delta + self.alpha * g.sign()).clamp(-self.epsilon, self.epsilon)
            delta = (delta.clamp(-data, 1 - data)).detach().requires_grad_(True)
        return delta.detach()
