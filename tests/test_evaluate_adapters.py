"""classaware evaluate, in front of the core: models by name and from files, attacks from every
library, data layouts, adversarial examples saved by other tools, the cache, bad input."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_evaluate import CALLS, MODEL, linear, toy_data
from PIL import Image

import classaware
from classaware.evaluation import models as adapters
from classaware.evaluation.attacks import AttackError, AttackSpec, bind, check_adversarial
from classaware.evaluation.datasets import DataSourceError, image_folder_set, load_data, nips_set
from classaware.evaluation.measure import quantized
from classaware.evaluation.models import ModelError, Preprocessing, load_spec
from classaware.evaluation.saved import SavedSetError
from classaware.metrics import class_aware_transfer
from classaware.training import Recipe, TrainSpec, train

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # the specs below name helpers_evaluate by module


def run(**kw):
    kw.setdefault("device", "cpu")
    return classaware.evaluate(**kw)


# ----------------------------------------------------------------------------- models by name
class Spy(torch.nn.Module):
    """Records what the network receives, returns 1000 zero logits."""

    def forward(self, x):
        self.seen = x
        return torch.zeros(len(x), 1000)


def test_torchvision_by_name_carries_its_weights_preprocessing_and_categories():
    from torchvision.models import get_model_weights

    m = load_spec("tv:resnet18:random")
    weights = get_model_weights("resnet18").DEFAULT
    t = weights.transforms()
    assert m.preprocessing == Preprocessing(t.resize_size[0], t.crop_size[0], "bilinear", tuple(t.mean), tuple(t.std))
    assert m.class_names == tuple(weights.meta["categories"]) and len(m.class_names) == 1000
    assert m.identity["weights"] is None  # random: nothing downloaded
    # the wrapper does what torchvision's own transform does to a tensor image
    m.module.net = Spy()
    x = torch.rand(1, 3, 300, 260)
    m.module(x)
    assert m.module.net.seen.shape == (1, 3, 224, 224)
    torch.testing.assert_close(m.module.net.seen, t(x), atol=2e-5, rtol=0)
    with pytest.raises(ModelError, match="no weights 'NOPE'"):
        load_spec("tv:resnet18:NOPE")


def test_timm_by_name_carries_its_pretrained_cfg():
    timm = pytest.importorskip("timm")
    m = load_spec("timm:resnet18:random")
    cfg = timm.data.resolve_model_data_config(timm.create_model("resnet18", pretrained=False))
    assert m.preprocessing.crop == cfg["input_size"][-1] == 224
    assert m.preprocessing.resize == int(224 / cfg["crop_pct"])  # floor(224 / 0.95) = 235
    assert (m.preprocessing.interpolation, m.preprocessing.mean, m.preprocessing.std) == (
        cfg["interpolation"],
        cfg["mean"],
        cfg["std"],
    )
    assert len(m.class_names) == 1000 and m.class_names[0].startswith("tench")
    m.module.net = Spy()
    x = torch.rand(2, 3, 64, 80)
    m.module(x)
    resized = torch.nn.functional.interpolate(x, size=(235, 293), mode="bicubic", antialias=True)
    top, left = int(round((235 - 224) / 2)), int(round((293 - 224) / 2))
    expected = (
        resized[..., top : top + 224, left : left + 224] - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    ) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(m.module.net.seen, expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("tv:resnet_nope", "unknown torchvision model"), ("timm:nope_net", "unknown timm model"), ("hub:x", "unknown kind"),
     ("resnet18", "expected KIND"), ("py:helpers_evaluate:nothing", "has no 'nothing'"), ("zoo:/nonexistent/m", "no checkpoint")],
)  # fmt: skip
def test_an_unknown_model_is_a_clear_error(spec, message):
    if spec.startswith("timm"):
        pytest.importorskip("timm")
    with pytest.raises(ModelError, match=message):
        load_spec(spec)


def test_state_dicts_torchscript_and_python_objects(tmp_path):
    net = linear(seed=5)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    x = toy_data(8)[0]
    loaded = load_spec(f"state:helpers_evaluate:linear@{tmp_path / 'w.pt'}")
    torch.testing.assert_close(loaded.module(x), net(x))
    assert loaded.identity["sha256"] == adapters.file_sha256(tmp_path / "w.pt")
    torch.save(linear(classes=4).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ModelError, match="do not fit helpers_evaluate:linear"):
        load_spec(f"state:helpers_evaluate:linear@{tmp_path / 'other.pt'}")
    torch.jit.script(net).save(str(tmp_path / "net.ts"))
    torch.testing.assert_close(load_spec(f"script:{tmp_path / 'net.ts'}").module(x), net(x))
    torch.testing.assert_close(load_spec("py:helpers_evaluate:MODEL").module(x), MODEL(x))


def test_an_ensemble_predicts_the_argmax_of_its_mean():
    x, y = toy_data(40)
    a, b = linear(seed=1), linear(seed=2)
    for combine, mean in (("logits", (a(x) + b(x)) / 2), ("probs", (a(x).softmax(1) + b(x).softmax(1)) / 2)):
        ev = run(source=[a, b], targets=[linear(seed=3)], attack="fgm(eps=0.0)", data=(x, y), ensemble_combine=combine)
        assert torch.equal(ev.samples.source_clean, mean.argmax(1))


# ----------------------------------------------------------------------------- the project's own trained checkpoints
@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Three resnet10_w8 zoo members trained for seconds on a toy task of 16x16 images (the real
    `classaware train` code and checkpoint format), and held-out images."""
    g = torch.Generator().manual_seed(0)
    templates = torch.rand(10, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (360,), generator=g)
    x = ((0.6 * templates[y] + 0.4 * torch.rand(360, 3, 16, 16, generator=g)) * 255).to(torch.uint8)
    root = tmp_path_factory.mktemp("zoo")
    recipe = Recipe(epochs=3, milestones=(2,), lr=0.05, batch_size=50, crop_padding=0, flip=False)
    for seed in range(3):
        train(TrainSpec("resnet10_w8", seed, seed, recipe), x[:300], y[:300], x[300:], y[300:], root / f"m{seed}")
    return root, x[300:], y[300:]


def test_real_transfer_between_trained_checkpoints_with_torchattacks_and_torchattack(zoo, tmp_path):
    root, x, y = zoo
    torch.save({"x": x, "y": y}, tmp_path / "data.pt")
    attacks = ["torchattacks:MIFGSM(eps=8/255, steps=3)"]
    if pytest.importorskip("torchattack"):
        attacks.append("torchattack:MIFGSM(eps=8/255, steps=3)")
    ev = run(
        source=f"zoo:{root / 'm0'}",
        targets=[f"zoo:{root / 'm1'}", f"zoo:{root / 'm2'}@3"],
        attack=attacks,
        data=f"tensor:{tmp_path / 'data.pt'}",
    )
    assert ev.samples.num_classes == 10 and ev.samples.class_names[0] == "airplane"
    assert float((ev.samples.source_clean == y).float().mean()) > 0.5  # it learned the task
    for s in ev.samples.sets:
        r = class_aware_transfer(y, ev.samples.source_clean, s.source_adv, s.target_adv)
        assert r[0].n > 0 and r[0].n == sum(c.count for c in (r[0].unfooled, r[0].different, r[0].same))
    assert {m["identity"]["arch"] for m in ev.manifest["models"]} == {"resnet10_w8"}
    comparisons = ev.compare(ev)
    assert comparisons and all(c.only_a == c.only_b == 0 for c in comparisons)


def test_a_transferattack_style_class_on_the_source(zoo):
    root, x, y = zoo
    spec = "transferattack:helpers_evaluate:TransferAttackLike(epsilon=8/255, alpha=2/255, epoch=3)"
    ev = run(
        source=f"zoo:{root / 'm0'}",
        targets=[f"zoo:{root / 'm1'}"],
        attack=spec,
        data=(x.float() / 255, y),
        objective=["untargeted", "targeted"],
    )
    untargeted, targeted = ev.samples.sets
    assert targeted.t is not None and bool((targeted.t != y).all())
    # its perturbation was added and kept in its linf ball (the adapter checks every batch)
    assert int(((untargeted.source_adv != y) & (ev.samples.source_clean == y)).sum()) > 0


def test_the_transferattack_adapter_passes_y_and_t_and_the_perturbation():
    x, y = toy_data(6)
    t = (y + 1) % 3
    atk = bind("transferattack:helpers_evaluate:TransferAttackLike(epsilon=0.05, epoch=2)", MODEL, targeted=True)
    out = atk.generate(x, y, t, torch.arange(6))
    assert (out - x).abs().max() <= 0.05 + 1e-6 and not torch.equal(out, x)


# ----------------------------------------------------------------------------- attacks that break the contract
@pytest.mark.parametrize(
    ("attack", "message"),
    [("py:helpers_evaluate:wrong_shape_attack", "shape"), ("py:helpers_evaluate:leaving_attack", "left its eps ball"),
     ("py:helpers_evaluate:nan_attack", "non-finite")],
)  # fmt: skip
def test_an_attack_breaking_its_contract_is_a_clear_error(attack, message):
    x, y = toy_data(10)
    with pytest.raises(AttackError, match=message):
        run(source=MODEL, targets=[linear(seed=1)], attack=attack, data=(x, y), eps=0.1, norm="linf")


def test_attack_specs_parse_literals_only():
    spec = AttackSpec.parse("torchattacks:MIFGSM(eps=8/255, steps=10, decay=1.0)")
    assert spec.kwargs == {"eps": 8 / 255, "steps": 10, "decay": 1.0} and spec.norm == "linf"
    assert AttackSpec.parse("pgd(eps=1.0, alpha=0.2, steps=3)").norm == "l2"
    for bad in ("pgd(eps=__import__('os'))", "pgd(1.0)", "nope(eps=1)"):
        with pytest.raises(AttackError):
            AttackSpec.parse(bad)
    x = torch.rand(2, 3, 4, 4)
    check_adversarial((x + 0.01).clamp(0, 1), x, 0.01, "linf", "ok")
    with pytest.raises(AttackError, match="left its eps ball"):
        check_adversarial((x + 0.02).clamp(0, 1), x, 0.01, "linf", "too far")


# ----------------------------------------------------------------------------- data and saved layouts
def _png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _toy_uint8(n=12, size=4, seed=0):
    x, y = toy_data(n, size=size, seed=seed)
    return (x * 255).round().to(torch.uint8), y


def test_image_folder_and_nips_layouts(tmp_path):
    x, y = _toy_uint8()
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        _png(tmp_path / "folder" / f"class{int(label)}" / f"{i:03d}.png", img.permute(1, 2, 0).numpy())
        _png(tmp_path / "nips" / "images" / f"{i:03d}.png", img.permute(1, 2, 0).numpy())
    folder = image_folder_set(tmp_path / "folder")
    assert folder.class_names == ("class0", "class1", "class2") and sorted(folder.y.tolist()) == sorted(y.tolist())
    with open(tmp_path / "nips" / "images.csv", "w", newline="") as f:  # the original 1-based layout
        w = csv.writer(f)
        w.writerow(["ImageId", "URL", "x1", "y1", "x2", "y2", "TrueLabel", "TargetClass"])
        w.writerows([[f"{i:03d}", "", 0, 0, 0, 0, int(y[i]) + 1, (int(y[i]) + 1) % 3 + 1] for i in range(len(y))])
    nips = load_data(tmp_path / "nips")
    assert torch.equal(nips.y, y) and torch.equal(nips.targets, (y + 1) % 3)
    torch.testing.assert_close(nips.images(torch.arange(len(y))), x.float() / 255)
    ev = run(
        source=MODEL,
        targets=[linear(seed=1)],
        attack="fgm(eps=0.3)",
        data=f"nips:{tmp_path / 'nips'}",
        objective="targeted",
        targets_mode="file",
    )
    assert torch.equal(ev.samples.sets[0].t, (y + 1) % 3)


def test_a_data_folder_without_labels_is_a_clear_error(tmp_path):
    _png(tmp_path / "loose" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataSourceError, match="no labels"):
        load_data(tmp_path / "loose")
    (tmp_path / "nolabels" / "images").mkdir(parents=True)
    with pytest.raises(DataSourceError, match="no labels.csv"):
        nips_set(tmp_path / "nolabels")


def _transferattack_layout(root: Path, x, y, adv):
    with open(root / "input" / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "label", "targeted_label"])
        w.writerows([[f"{i:03d}.png", int(y[i]), (int(y[i]) + 1) % 3] for i in range(len(y))])
    for i in range(len(y)):
        _png(root / "input" / "images" / f"{i:03d}.png", x[i].permute(1, 2, 0).numpy())
        # TransferAttack's save_images: (adv * 255).astype(np.uint8)
        _png(root / "adv" / f"{i:03d}.png", (adv[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8))


def test_every_saved_layout_evaluates_like_the_attack_it_holds(tmp_path):
    x8, y = _toy_uint8()
    x = x8.float() / 255
    pattern = torch.sign(torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)))
    adv = (x + 0.2 * pattern).clamp(0, 1)
    (tmp_path / "input").mkdir()
    _transferattack_layout(tmp_path, x8, y, adv)
    np.save(tmp_path / "batch_0.npy", (adv[:7] * 255).round().numpy().astype(np.uint8))  # TA-Bench's to_np_uint8
    np.save(tmp_path / "batch_1.npy", (adv[7:] * 255).round().numpy().astype(np.uint8))
    np.save(tmp_path / "labels.npy", y.numpy())
    torch.save(
        {
            "adv_inputs": (adv * 255).type(torch.uint8),
            "labels": y,
            "clean_inputs": (x * 255).type(torch.uint8),
            "save_type": "int",
        },
        tmp_path / "ta.pt",
    )
    torch.save({"x": x8, "y": y}, tmp_path / "data.pt")
    models = {"source": MODEL, "targets": [linear(seed=1)]}
    direct = {
        q: run(**models, attack=lambda a, b, c, q=q: quantized(adv, q), data=(x, y), quantize=q)
        for q in ("round", "floor")
    }
    ta = run(
        **models, saved=f"transferattack:{tmp_path / 'adv'}", data=f"nips:{tmp_path / 'input'}", eps=0.2, norm="linf"
    )
    tab = run(**models, saved=f"tabench:{tmp_path}", data=f"tensor:{tmp_path / 'data.pt'}")
    tat = run(**models, saved=f"torchattacks:{tmp_path / 'ta.pt'}", data=f"tensor:{tmp_path / 'data.pt'}")
    assert torch.equal(
        ta.samples.sets[0].target_adv, direct["floor"].samples.sets[0].target_adv
    )  # PNGs of truncated pixels
    assert torch.equal(tab.samples.sets[0].target_adv, direct["round"].samples.sets[0].target_adv)
    assert torch.equal(tat.samples.sets[0].target_adv, direct["floor"].samples.sets[0].target_adv)
    with pytest.raises(SavedSetError, match="labels differ"):
        np.save(tmp_path / "labels.npy", ((y + 1) % 3).numpy())
        run(**models, saved=f"tabench:{tmp_path}", data=f"tensor:{tmp_path / 'data.pt'}")


def test_quantisation_counts_the_examples_whose_class_changes():
    x, y = toy_data(30)
    adv = (x + 0.003).clamp(0, 1)
    ev = run(
        source=MODEL, targets=[linear(seed=1)], attack=lambda a, b, c: adv, data=(x, y), quantize=["none", "floor"]
    )
    none, floor = ev.samples.sets
    rows = {(r.target, r.quantize, r.metric): r for r in ev.table()}
    expected = int((MODEL(quantized(adv, "floor")).argmax(1) != MODEL(adv).argmax(1)).sum())
    assert rows[(ev.samples.source, "floor", "quantization_changed")].count == expected
    assert torch.equal(floor.source_adv_raw, none.source_adv)


# ----------------------------------------------------------------------------- the cache, bad input
def test_a_new_target_reuses_the_cached_attack(tmp_path):
    x, y = toy_data(30)
    data = (x, y)
    CALLS["attack"] = 0
    first = run(
        source=MODEL,
        targets=[linear(seed=1)],
        attack="py:helpers_evaluate:counting_attack(eps=0.1)",
        data=data,
        cache=tmp_path,
        batch_size=10,
    )
    assert CALLS["attack"] == 3
    second = run(
        source=MODEL,
        targets=[linear(seed=1), linear(seed=2)],
        attack="py:helpers_evaluate:counting_attack(eps=0.1)",
        data=data,
        cache=tmp_path,
        batch_size=10,
    )
    assert CALLS["attack"] == 3  # no batch attacked again
    assert torch.equal(second.samples.sets[0].target_adv[0], first.samples.sets[0].target_adv[0])


def test_mismatched_class_counts_and_labels_out_of_range_fail_before_the_attack():
    x, y = toy_data(10)
    CALLS["attack"] = 0
    with pytest.raises(ModelError, match="different numbers of classes"):
        run(
            source=MODEL,
            targets=["py:helpers_evaluate:linear_four_classes"],
            attack="py:helpers_evaluate:counting_attack",
            data=(x, y),
        )
    with pytest.raises(DataSourceError, match="outside the models' 0..2"):
        run(source=MODEL, targets=[linear(seed=1)], attack="py:helpers_evaluate:counting_attack", data=(x, y + 5))
    assert CALLS["attack"] == 0


def test_least_likely_targets_are_the_sources_least_likely_other_class():
    x, y = toy_data(20)
    ev = run(
        source=MODEL,
        targets=[linear(seed=1)],
        attack="fgm(eps=0.1)",
        data=(x, y),
        objective="targeted",
        targets_mode="least_likely",
    )
    scores = MODEL(x).detach()
    scores[torch.arange(20), y] = float("inf")
    assert torch.equal(ev.samples.sets[0].t, scores.argmin(1))
    assert "evaluate" in classaware.__all__ and "Evaluation" in classaware.__all__


def test_bf16_predictions_run_under_autocast_and_mostly_agree():
    x, y = toy_data(40)
    plain = run(source=MODEL, targets=[linear(seed=1)], attack="fgm(eps=0.1)", data=(x, y))
    half = run(source=MODEL, targets=[linear(seed=1)], attack="fgm(eps=0.1)", data=(x, y), bf16=True)
    assert half.manifest["settings"]["bf16"] is True
    assert float((half.samples.source_clean == plain.samples.source_clean).float().mean()) >= 0.9
