from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from classaware.models import (
    ARCHITECTURES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    Normalized,
    build,
    family,
    predict,
    right_for_all,
)

PAPER_ARCHS = ["resnet18", "resnet34", "vgg16", "vgg19", "vgg16_bn", "densenet121"]
REDUCED_ARCHS = [
    "resnet18_w16",
    "resnet18_w8",
    "resnet18_w6",
    "resnet10_w8",
    "vgg11_w8",
    "vgg11_bn_w8",
    "vgg11_bn_w6",
    "vgg11_bn_w5",
    "vgg13_bn_w8",
    "vgg13_bn_w6",
    "densenet_s",
    "densenet_xs",
    "densenet_xs_k10",
    "densenet_xs_k14",
]


def test_registry_is_the_paper_zoo_plus_reduced_members():
    assert sorted(ARCHITECTURES) == sorted(PAPER_ARCHS + REDUCED_ARCHS)


@given(st.sampled_from(REDUCED_ARCHS), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_reduced_archs_map_images_to_ten_logits(arch, batch, seed):
    torch.manual_seed(seed)
    model = build(arch).eval()
    x = torch.rand(batch, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (batch, 10)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_paper_archs_map_images_to_ten_logits(arch):
    torch.manual_seed(0)
    model = build(arch).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_num_classes_sets_the_logit_count():
    with torch.no_grad():
        assert build("resnet10_w8", num_classes=3).eval()(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="num_classes"):
        build("resnet10_w8", num_classes=1)


def test_unknown_arch_lists_the_known_ones():
    for fn in (build, family):
        with pytest.raises(ValueError, match="unknown architecture 'resnet9000'.*densenet121.*resnet18.*vgg16_bn"):
            fn("resnet9000")


def test_normalized_subtracts_cifar_mean_and_divides_by_std():
    x = torch.rand(2, 3, 4, 5)
    out = Normalized(nn.Identity())(x)
    for c in range(3):
        assert torch.allclose(out[:, c], (x[:, c] - CIFAR10_MEAN[c]) / CIFAR10_STD[c])
    grey = Normalized(nn.Identity())(torch.full((1, 3, 1, 1), 0.5)).flatten().tolist()
    assert grey == pytest.approx([0.0086 / 0.2470, 0.0178 / 0.2435, 0.0535 / 0.2616], abs=1e-6)


@pytest.mark.parametrize("arch", REDUCED_ARCHS)
def test_every_built_model_normalises_internally(arch):
    model = build(arch)
    assert isinstance(model, Normalized)
    assert torch.allclose(model.mean.flatten(), torch.tensor(CIFAR10_MEAN))
    assert torch.allclose(model.std.flatten(), torch.tensor(CIFAR10_STD))
    assert "mean" in model.state_dict() and "std" in model.state_dict()


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a.startswith("vgg")])
def test_vgg_models_have_dropout(arch):
    drops = [m for m in build(arch).modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.5 for d in drops)


@pytest.mark.parametrize("arch", ["resnet10_w8", "densenet_s"])
def test_non_vgg_models_have_no_dropout(arch):
    assert not any(isinstance(m, nn.Dropout) for m in build(arch).modules())


def test_dropout_randomises_train_mode_only():
    torch.manual_seed(0)
    model = build("vgg11_w8")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        model.train()
        a, b = model(x), model(x)
        model.eval()
        c, d = model(x), model(x)
    assert not torch.equal(a, b)
    assert torch.equal(c, d)


@pytest.mark.parametrize(
    "arch, fam",
    [
        ("resnet18", "resnet"),
        ("resnet10_w8", "resnet"),
        ("vgg16_bn", "vgg"),
        ("vgg11_bn_w8", "vgg"),
        ("densenet121", "densenet"),
        ("densenet_s", "densenet"),
    ],
)
def test_family(arch, fam):
    assert family(arch) == fam


def test_every_arch_has_a_family():
    assert {family(a) for a in ARCHITECTURES} == {"resnet", "vgg", "densenet"}


@pytest.mark.parametrize("training", [True, False])
def test_predict_gives_argmax_labels_and_restores_the_mode(training):
    torch.manual_seed(1)
    model = build("resnet10_w8").train(training)
    x = torch.rand(5, 3, 32, 32)
    pred = predict(model, x, batch_size=2)
    assert model.training is training
    with torch.no_grad():
        want = model.eval()(x).argmax(1)
    assert pred.dtype == torch.int64 and torch.equal(pred, want)


@given(st.integers(0, 4), st.integers(0, 40), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_right_for_all_is_every_model_right_whatever_the_order_and_batch(n_models, n, batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    models = [nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3)) for _ in range(n_models)]
    for m in models:
        for p in m.parameters():
            p.data = torch.randn(p.shape, generator=g)
    x, y = torch.rand(n, 3, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    want = torch.ones(n, dtype=torch.bool)
    for m in models:
        want &= predict(m, x) == y
    got = right_for_all(models, x, y, batch_size)
    assert got.dtype == torch.bool and torch.equal(got, want)
    assert torch.equal(right_for_all(models[::-1], x, y), want)


def test_predict_refuses_images_of_other_channels_and_restores_the_mode():
    model = build("resnet10_w8").train()
    with pytest.raises(ValueError, match=r"x holds images of 5 channels, but the model takes 3"):
        predict(model, torch.rand(2, 5, 32, 32))
    assert all(m.training for m in model.modules())


class FailsOnLargeBatches(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = build("resnet10_w8")

    def forward(self, x):
        if len(x) > 1:
            raise RuntimeError("out of memory, say")
        return self.net(x)


def test_predict_restores_the_mode_after_an_error_of_the_model():
    model = FailsOnLargeBatches().train()
    with pytest.raises(RuntimeError, match="out of memory, say"):
        predict(model, torch.rand(4, 3, 32, 32), batch_size=2)
    assert all(m.training for m in model.modules())


def test_predict_on_an_empty_batch():
    pred = predict(build("resnet10_w8"), torch.empty(0, 3, 32, 32))
    assert pred.shape == (0,) and pred.dtype == torch.int64


@given(st.integers(0, 2**31 - 1))
def test_same_seed_builds_identical_weights(seed):
    torch.manual_seed(seed)
    a = build("resnet10_w8").state_dict()
    torch.manual_seed(seed)
    b = build("resnet10_w8").state_dict()
    torch.manual_seed(seed + 1)
    c = build("resnet10_w8").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_convolutions_get_he_normal_fan_out_init():
    torch.manual_seed(0)
    model = build("vgg11_w8")
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 3)
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.15)
    assert torch.equal(conv.bias, torch.zeros_like(conv.bias))


@pytest.mark.parametrize(
    "arch, convs, blocks, norms",
    [
        ("vgg13_bn_w8", 10, 0, 10),  # VGG-13: ten 3x3 convolutions, each with batch norm
        ("vgg11_w8", 8, 0, 0),  # VGG-11 without batch norm
        ("resnet18_w8", 8 * 2 + 1 + 3, 8, 8 * 2 + 1 + 3),  # stem, 8 basic blocks, 3 projection shortcuts
        ("resnet10_w8", 4 * 2 + 1 + 3, 4, 4 * 2 + 1 + 3),
        ("densenet_xs", 1 + 3 * 2 * 2 + 2, 0, 3 * 2 * 2 + 2 + 1),  # stem, 6 dense layers of 2 convs, 2 transitions
    ],
)
def test_reduced_architectures_have_their_familys_topology(arch, convs, blocks, norms):
    model = build(arch)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == convs
    assert sum(type(m).__name__ == "BasicBlock" for m in model.modules()) == blocks
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == norms
    width = {"resnet18_w8": 8, "resnet10_w8": 8}.get(arch)
    if width:  # stages of width w, 2w, 4w, 8w
        assert model.net[-1].in_features == 8 * width
