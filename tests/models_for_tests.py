"""Tiny models with known behaviour, shared by the attack / metric / boundary tests.

All take images of shape (B, C, H, W) in [0, 1] and return (B, K) logits. Construction is
seeded and does not disturb torch's global RNG (``torch.random.fork_rng``).
"""

from __future__ import annotations

import torch
from torch import nn


class LinearClassifier(nn.Module):
    """f(x) = W flatten(x) + b with known W (K, D) and b (K,), both nn.Parameters."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor | None = None):
        super().__init__()
        W = torch.as_tensor(W)
        self.weight = nn.Parameter(W.clone())
        self.bias = nn.Parameter(
            torch.zeros(W.shape[0], dtype=W.dtype) if b is None else torch.as_tensor(b, dtype=W.dtype).clone()
        )

    @classmethod
    def random(cls, num_classes: int, dim: int, seed: int, scale: float = 1.0, dtype=torch.float32) -> LinearClassifier:
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(num_classes, dim, generator=g, dtype=torch.float64) * scale
        b = torch.randn(num_classes, generator=g, dtype=torch.float64) * scale
        return cls(W.to(dtype), b.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias

    # float64 copies for closed-form expectations
    @property
    def W64(self) -> torch.Tensor:
        return self.weight.detach().double()

    @property
    def b64(self) -> torch.Tensor:
        return self.bias.detach().double()


def smooth_cnn(
    num_classes: int = 10,
    channels: int = 3,
    width: int = 8,
    seed: int = 0,
    dtype=torch.float32,
    pool: int = 2,
    gain: float = 1.0,
) -> nn.Module:
    """A small CNN with smooth activations (Softplus, tanh): conv-softplus-conv(stride 2)-tanh-avgpool(pool)-linear.

    Works for any spatial size >= 2. Weights are drawn from a private seeded RNG; ``gain``
    scales both convolutions (and shifts the first bias) to make the model more curved, so
    that attack variants give visibly different results.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1),
            nn.Softplus(),
            nn.Conv2d(width, 2 * width, 3, 2, 1),
            nn.Tanh(),
            nn.AdaptiveAvgPool2d(pool),
            nn.Flatten(),
            nn.Linear(2 * width * pool * pool, num_classes),
        )
        with torch.no_grad():
            net[0].weight.mul_(gain)
            net[0].bias.sub_(0.3 * (gain - 1.0))
            net[2].weight.mul_(gain)
            # larger last-layer weights so the logits (and gradients) are not all tiny
            net[-1].weight.mul_(4.0)
    return net.to(dtype).eval()


def bn_dropout_cnn(num_classes: int = 10, channels: int = 3, width: int = 8, seed: int = 0) -> nn.Module:
    """A small CNN with BatchNorm and Dropout, whose output depends on train/eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1),
            nn.BatchNorm2d(width),
            nn.Tanh(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(4 * width, num_classes),
        )
    return net


class ZeroGradModel(nn.Module):
    """Logits b + 0 * sum(x): x is in the graph, but grad_x of any loss is exactly zero."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.bias = nn.Parameter(torch.linspace(-1.0, 1.0, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias + 0.0 * x.flatten(1).sum(1, keepdim=True)


class ConstantModel(nn.Module):
    """Logits b for every input: the output does not touch x at all (not even in the graph)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.bias = nn.Parameter(torch.linspace(-1.0, 1.0, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1)


class DeadReluModel(nn.Module):
    """f(x) = W relu(flatten(x) - 2) + b: on [0, 1] images the loss is flat (gradient exactly 0)."""

    def __init__(self, num_classes: int, dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(num_classes, dim, generator=g))
        self.bias = nn.Parameter(torch.randn(num_classes, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.flatten(1) - 2.0) @ self.weight.T + self.bias


class Scaled(nn.Module):
    """f(x) = scale * base(x) (e.g. scale 1e-30 for tiny gradients)."""

    def __init__(self, base: nn.Module, scale: float):
        super().__init__()
        self.base = base
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.base(x)


def images(
    n: int, shape=(3, 8, 8), seed: int = 0, low: float = 0.0, high: float = 1.0, dtype=torch.float32
) -> torch.Tensor:
    """n images drawn uniformly from [low, high] (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(n, *shape, generator=g, dtype=torch.float64)).to(dtype)


def labels(n: int, num_classes: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 7919)
    return torch.randint(0, num_classes, (n,), generator=g)
