"""The paper's conditions as a checked precondition (claims.yaml's ``conditions``): the rule by
hand, the ``conditions`` stage, and a zoo with one far weaker target, whose clean errors the
diagnostics show and whose claims ``verify`` does not judge."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers_repo import REPO
from helpers_results import claims_file, table2
from test_figures import DATASET, ENVIRONMENT, PROVENANCE, ZOO, write_inputs, zoo_conditions

from classaware import analysis
from classaware.checkpoint import Comparison
from classaware.claims import load_conditions
from classaware.metrics import class_aware_transfer
from classaware.schema import (
    OUTSIDE,
    ClaimResults,
    ModelInfo,
    PredictionTable,
    SetPredictions,
    Table1,
    Table1Rates,
    Table1Row,
    ZooConditions,
)
from classaware.stages import conditions, verify
from classaware.stages.transfer import source_transfer
from classaware.training import TrainMetrics


def test_the_repository_states_the_rule_with_its_reason_before_any_run():
    rule = load_conditions(REPO / "claims.yaml")
    assert rule.within == 0.05 and "5 accuracy points" in rule.rule
    assert "pytorch-pretrained-cnns" in rule.why and "88%" in rule.why and "not from any run of ours" in rule.chosen


def test_the_rule_by_hand():
    """Two architectures: a (0.62, 0.60 -> mean 0.61) and b (0.58, 0.50 -> 0.54); a is the best,
    so a model passes at 0.56 and above; b2 (0.50) and a1's early version (0.55) do not."""
    zoo = {
        "a1": ("a", {"3": 0.55, "5": 0.62}, 1000),
        "a2": ("a", {"5": 0.60}, 1000),
        "b1": ("b", {"5": 0.58}, 1000),
        "b2": ("b", {"5": 0.50}, 1000),
    }
    means, best, models = analysis.zoo_conditions(zoo, 0.05, early=("a1@3",))
    assert means == pytest.approx({"a": 0.61, "b": 0.54}) and best == "a"
    assert set(models) == {"a1", "a1@3", "a2", "b1", "b2"}
    assert {r: m.holds for r, m in models.items()} == {"a1": True, "a1@3": False, "a2": True, "b1": True, "b2": False}
    assert models["b2"].below_best == pytest.approx(0.11) and models["a1"].below_best == pytest.approx(-0.01)
    assert analysis.zoo_conditions({"x": ("a", {"5": 0.3}, 10)}, 0.05)[2]["x"].holds  # alone, it is the best
    with pytest.raises(ValueError, match="need a zoo"):
        analysis.zoo_conditions({}, 0.05)
    with pytest.raises(ValueError, match="no test accuracy of a2@3: a2 did not save epoch 3"):
        analysis.zoo_conditions(zoo, 0.05, early=("a2@3",))
    assert "a1@3" not in analysis.zoo_conditions(zoo, 0.05)[2]  # an early version no claim reads is not checked


def _train_results(folder, accuracies: dict[str, tuple[str, dict[str, float]]]) -> None:
    for member, (arch, acc) in accuracies.items():
        TrainMetrics(arch, DATASET, 2000, 1000, acc, ENVIRONMENT).save(folder / f"{member}.json")


def test_the_stage_records_every_model_and_names_those_outside(tmp_path, caplog):
    train = tmp_path / "train"
    _train_results(train, {"res": ("resnet10_w8", {"12": 0.60, "15": 0.62}), "vgg": ("vgg11_bn_w8", {"15": 0.50})})
    compare = Comparison(sources=("res",), targets=("res", "vgg"), early_epoch=12)
    cfg = conditions.Config(compare=compare, train_results=train, claims=REPO / "claims.yaml", out=tmp_path / "c.json",
                            metrics=tmp_path / "m.json")  # fmt: skip
    with caplog.at_level("WARNING"):
        conditions.run(cfg)
    record = ZooConditions.load(tmp_path / "c.json")
    assert record.best_arch == "resnet10_w8" and record.outside(["res", "res@12", "vgg"]) == ("vgg",)
    assert json.loads((tmp_path / "m.json").read_text()) == {"value": 1, "verdict": "broken", "bound": 5.0}
    assert "vgg 50.0%" in caplog.text and "not judged under the paper's conditions" in caplog.text
    with pytest.raises(ValueError, match="no condition recorded for ghost"):
        record.outside(["ghost"])


def test_a_zoo_trained_on_several_datasets_is_refused(tmp_path):
    train = tmp_path / "train"
    _train_results(train, {"res": ("resnet10_w8", {"15": 0.6})})
    TrainMetrics("vgg11_bn_w8", "other data", 2000, 1000, {"15": 0.6}, ENVIRONMENT).save(train / "vgg.json")
    compare = Comparison(sources=("res",), targets=("vgg",))
    cfg = conditions.Config(compare=compare, train_results=train, out=tmp_path / "c.json", metrics=tmp_path / "m.json")
    with pytest.raises(ValueError, match="several datasets"):
        conditions.check(cfg)


def _weak_target_table(n: int = 400) -> PredictionTable:
    """res_a's table where vgg_a_wsame is wrong on every odd clean image and stays wrong (on
    another class than F1's) on its adversarial example: clean errors that eq. 1 counts as
    fooled. Every other target is right on every clean image and copies F1's mistake."""
    g = torch.Generator().manual_seed(0)
    models = ("res_a", *(m for m in ZOO if m != "res_a"))
    y = torch.randint(0, 10, (n,), generator=g)
    y1 = (y + 1) % 10  # F1 is fooled on every image, towards y + 1
    other = (y + 2) % 10
    weak = models.index("vgg_a_wsame")
    clean = y.repeat(len(models), 1)
    odd = torch.arange(n) % 2 == 1
    clean[weak, odd] = other[odd]
    adv = y1.repeat(len(models), 1)
    adv[weak, odd] = other[odd]
    sets = {"fgm-untargeted": SetPredictions("fgm", "untargeted", (1.0,), None, adv[None])}
    return PredictionTable("res_a", models, {m: ModelInfo.of(ZOO[m], ZOO["res_a"]) for m in models},
                           torch.arange(n), y, clean, sets, PROVENANCE, ENVIRONMENT)  # fmt: skip


def test_the_diagnostic_leaves_out_the_clean_errors_of_a_weak_target():
    """Over D'_F1 (every image), the weak target makes a different mistake on half (its clean
    errors); over the images it got right, it makes the same mistake on all of them."""
    result = source_transfer(_weak_target_table())
    cell = result.attacks["fgm-untargeted"].by_eps["1"]["vgg_a_wsame"]
    right = result.attacks["fgm-untargeted"].target_right["1"]["vgg_a_wsame"]
    assert (cell.n, cell.different.ratio, cell.same.ratio) == (400, 0.5, 0.5)
    assert (right.n, right.different.ratio, right.same.ratio) == (200, 0.0, 1.0)
    assert result.clean_acc["vgg_a_wsame"] == 0.5 and result.clean_acc["res_a_wsame"] == 1.0
    table = _weak_target_table()
    y, adv, weak = table.y, table.sets["fgm-untargeted"].labels[0], table.models.index("vgg_a_wsame")
    assert right == class_aware_transfer(y[0::2], table.clean[0, 0::2], adv[0, 0::2], adv[weak, 0::2])


def test_a_far_weaker_target_is_not_judged_and_the_pairs_claims_still_are(tmp_path):
    """The comparison holds vgg_a_wsame, outside the rule: every claim reading the comparison gets
    'not under the paper's conditions' with its value, interval and the model; a claim reading
    section 4's pairs (res_a, vgg_a, both within) is judged as usual."""
    inputs = write_inputs(tmp_path / "results")
    zoo_conditions(outside=("vgg_a_wsame",)).save(inputs["conditions"])
    rates = Table1Rates(*[analysis.Proportion.of(930, 1000)] * 3)
    Table1(DATASET, (Table1Row("res_a+vgg_a", None, 1.0, 1000, rates, {}, None),)).save(tmp_path / "t1.json")
    table2([("res_a+vgg_a", "y1", "resnet10_w8", 0.4)]).save(tmp_path / "t2.json")
    claims = [
        {"id": "S3.1", "figure": "Fig. 3", "claim": "c", "metric": "min_corr_fooled_same", "paper": "x", "test": ">=",
         "bound": {"smoke": -1.0}, "why": "w"},
        {"id": "S4.1", "reads": "pairs", "figure": "Table 1", "claim": "c", "metric": "table1_min_both", "paper": "x",
         "test": ">=", "bound": {"smoke": 0.5}, "why": "w"},
    ]  # fmt: skip
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump(claims_file(claims)))
    verify.run(verify.Config(profile="smoke", claims=tmp_path / "claims.yaml", transfer=inputs["transfer"],
                             distance=inputs["distance"], table1=tmp_path / "t1.json", table2=tmp_path / "t2.json",
                             conditions=inputs["conditions"], out=tmp_path / "claims.json",
                             table=tmp_path / "claims.md", metrics_dir=tmp_path / "metrics"))  # fmt: skip
    out = ClaimResults.load(tmp_path / "claims.json")
    s31, s41 = out.claims["S3.1"], out.claims["S4.1"]
    assert s31.verdict == OUTSIDE and s31.outside == ("vgg_a_wsame",) and s31.value is not None
    assert s31.ci_low is not None and "over the images the target got right" in s31.readings
    assert s41.verdict == "pass" and s41.outside == ()
    table = (tmp_path / "claims.md").read_text()
    assert "| not under the paper's conditions (vgg_a_wsame outside them) |" in table
    assert out.count(OUTSIDE) == 1
    headline = json.loads((tmp_path / "metrics" / "S03.01.json").read_text())
    assert headline["verdict"] == OUTSIDE
