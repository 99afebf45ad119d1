"""classaware evaluate, behind the core: every number summary.csv gives equals the labels-in
functions on the same labels, each published denominator equals its tool's formula written out,
the paired comparison, the samples round trip and the API's examples."""

from __future__ import annotations

import doctest
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from classaware.evaluation import compare as compare_module
from classaware.evaluation import result as result_module
from classaware.evaluation import tables
from classaware.evaluation.compare import compare_sets, mcnemar_exact, paired_interval
from classaware.evaluation.result import Evaluation
from classaware.evaluation.samples import AdversarialLabels, Samples, SetKey, from_csv, to_csv
from classaware.metrics import Proportion, class_aware_transfer, difference_interval, fooled_set


@st.composite
def label_sets(draw, max_n=40):
    """Random labels of one evaluation: C classes, N images, M targets, maybe targeted."""
    c = draw(st.integers(2, 5))
    n = draw(st.integers(0, max_n))
    m = draw(st.integers(1, 3))
    labels = st.lists(st.integers(0, c - 1), min_size=n, max_size=n)
    y = torch.tensor(draw(labels), dtype=torch.int64)
    src_clean, src_adv = torch.tensor(draw(labels), dtype=torch.int64), torch.tensor(draw(labels), dtype=torch.int64)
    tgt_clean = torch.tensor([draw(labels) for _ in range(m)], dtype=torch.int64).view(m, n)
    tgt_adv = torch.tensor([draw(labels) for _ in range(m)], dtype=torch.int64).view(m, n)
    t = None
    if draw(st.booleans()):
        t = (y + torch.tensor(draw(st.lists(st.integers(1, c - 1), min_size=n, max_size=n)), dtype=torch.int64)) % c
    key = SetKey("toy", 1.0, "targeted" if t is not None else "untargeted")
    s = AdversarialLabels(key, t, src_adv, tgt_adv)
    return Samples("toy data", "F1", tuple(f"F2_{j}" for j in range(m)), c, None, y, src_clean, tgt_clean, (s,))


@given(label_sets())
def test_every_number_of_the_summary_equals_class_aware_transfer_on_the_same_labels(samples):
    s = samples.sets[0]
    expected = class_aware_transfer(samples.y, samples.source_clean, s.source_adv, s.target_adv, target_classes=s.t)
    rows = {(r.target, r.metric): r for r in tables.summary(samples)}
    for name, r in zip(samples.targets, expected, strict=True):
        for metric in ("unfooled", "different", "same", "fooled"):
            assert rows[(name, metric)].count == getattr(r, metric).count
            assert rows[(name, metric)].n == r.n
            assert rows[(name, metric)].value == getattr(r, metric).ratio
            assert (rows[(name, metric)].ci_low, rows[(name, metric)].ci_high) == (
                getattr(r, metric).ci_low,
                getattr(r, metric).ci_high,
            )
        if s.t is not None:
            assert rows[(name, "target_hit")].count == r.target_class_hit.count
            split = [rows[(name, f"split:{p}")].count for p in ("restored", "source_class", "other")]
            assert rows[(name, "split:restored")].count == r.unfooled.count
            assert rows[(name, "target_hit")].count + sum(split) == r.n
    fooled = fooled_set(samples.y, samples.source_clean, s.source_adv)
    assert rows[("F1", "source_fooled")].count == int(fooled.sum())


@given(label_sets(max_n=25))
def test_per_class_rows_are_class_aware_transfer_on_each_class(samples):
    s = samples.sets[0]
    rows = tables.per_class(samples)
    for row in rows:
        values = {"true_class": samples.y, "source_class": s.source_adv, "target_class": s.t}[row.group_by]
        sel = values == row.class_index
        if row.group_by == "source_class":
            sel &= fooled_set(samples.y, samples.source_clean, s.source_adv)
        j = samples.targets.index(row.target)
        r = class_aware_transfer(samples.y[sel], samples.source_clean[sel], s.source_adv[sel], s.target_adv[j, sel])
        assert (row.n_images, row.n, row.unfooled, row.different, row.same) == (
            int(sel.sum()),
            r.n,
            r.unfooled.count,
            r.different.count,
            r.same.count,
        )
    # every D'_F1 image is in exactly one true-class row per target
    total = sum(r.n for r in rows if r.group_by == "true_class" and r.target == samples.targets[0])
    assert total == int(fooled_set(samples.y, samples.source_clean, s.source_adv).sum())


@given(label_sets(max_n=30))
def test_the_pairs_count_the_different_mistakes(samples):
    s = samples.sets[0]
    rows = tables.pairs(samples)
    r = class_aware_transfer(samples.y, samples.source_clean, s.source_adv, s.target_adv)
    for j, name in enumerate(samples.targets):
        mine = [p for p in rows if p.target == name]
        assert len(mine) == samples.num_classes * (samples.num_classes - 1)  # dense: every pair, zeros too
        assert sum(p.count for p in mine) == r[j].different.count
        for p in mine:  # count by hand
            mask = fooled_set(samples.y, samples.source_clean, s.source_adv) & (s.source_adv == p.y1)
            assert p.n == int(mask.sum())
            assert p.count == int((mask & (s.target_adv[j] == p.y2) & (s.target_adv[j] != samples.y)).sum())


def test_pairs_above_twenty_classes_are_the_top_ones():
    y = torch.arange(30)
    src_adv = (y + 1) % 30
    tgt = torch.stack([(y + 2) % 30])
    tgt[0, :5] = 7  # five images whose different mistake is y1 -> 7
    s = AdversarialLabels(SetKey("a", None, "untargeted"), None, src_adv, tgt)
    samples = Samples("d", "F1", ("F2",), 30, None, y, y.clone(), y[None].clone(), (s,))
    rows = tables.pairs(samples, top=3)
    assert len(rows) == 3 and all(r.count == 1 for r in rows)
    assert sum(r.count for r in tables.pairs(samples, top=100)) == 30


# ----------------------------------------------------------------------------- published denominators
def _one(samples):
    return {(r.target, r.metric): r for r in tables.summary(samples)}


@given(label_sets())
def test_each_published_denominator_is_its_tools_formula(samples):
    """Each tool's own code, written out: TransferAttack main.py's eval (and TA-Bench's
    evaluation.py, TransferAttackEval, TransferBench's evaluate_success, foolbox's 1 - accuracy),
    TransferAttack#101's, torchattack's FoolingRateMeter, ART's compute_success."""
    s = samples.sets[0]
    rows = _one(samples)
    y = samples.y.numpy()
    for j, name in enumerate(samples.targets):
        pred_adv, pred_clean = s.target_adv[j].numpy(), samples.target_clean[j].numpy()
        total = len(y)
        if s.t is None:
            # TransferAttack main.py: correct += (labels == pred).sum(); asr = (1 - correct / total) * 100
            correct = (y == pred_adv).sum()
            transferattack = (1 - correct / total) * 100 if total else None
            # TA-Bench evaluation.py: n_correct += (label != pred).sum(); suc_rate = 100 * n_correct / n_img
            tabench = 100 * (y != pred_adv).sum() / total if total else None
            # torchattack FoolingRateMeter: (cln_count - adv_count) / cln_count
            cln, adv = (pred_clean == y).sum(), (pred_adv == y).sum()
            torchattack = (cln - adv) / cln if cln else None
            # ART compute_success: mean(adv_preds != preds), preds = classifier.predict(x_clean)
            art = (pred_adv != pred_clean).mean() if total else None
            right = pred_clean == y
            issue101 = (pred_adv[right] != y[right]).mean() if right.any() else None
        else:
            t = s.t.numpy()
            transferattack = (
                100 * (t == pred_adv).sum() / total if total else None
            )  # labels = labels[1]; asr = correct / total * 100
            tabench = transferattack
            torchattack = (pred_adv == t).sum() / total if total else None  # targeted_count / all_count
            art = (pred_adv == t).mean() if total else None  # adv_preds == argmax(labels)
            right = pred_clean == y
            issue101 = (pred_adv[right] == t[right]).mean() if right.any() else None
        got = {
            m: rows[(name, f"success:{m}")].value
            for m in ("all_images", "target_correct", "torchattack_fooling_rate", "art_prediction_changed")
        }
        for value, expected in ((got["all_images"], None if transferattack is None else transferattack / 100),
                                (got["all_images"], None if tabench is None else tabench / 100),
                                (got["torchattack_fooling_rate"], torchattack), (got["art_prediction_changed"], art),
                                (got["target_correct"], issue101)):  # fmt: skip
            assert (value is None) == (expected is None)
            if value is not None:
                assert value == pytest.approx(float(expected), abs=1e-12)


def test_torchattacks_fooling_rate_meter_itself_agrees():
    """torchattack's own FoolingRateMeter, fed logits whose argmax are our labels."""
    meter_module = pytest.importorskip("torchattack.evaluate.meter")
    g = torch.Generator().manual_seed(1)
    y, clean, adv = (torch.randint(0, 4, (50,), generator=g) for _ in range(3))
    t = (y + torch.randint(1, 4, (50,), generator=g)) % 4
    for targeted in (False, True):
        meter = meter_module.FoolingRateMeter(targeted)
        meter.update((y, t) if targeted else y, torch.eye(4)[clean], torch.eye(4)[adv])
        expected = float(meter.compute()[2])
        s = AdversarialLabels(
            SetKey("a", None, "targeted" if targeted else "untargeted"), t if targeted else None, y.clone(), adv[None]
        )
        rows = _one(Samples("d", "F1", ("F2",), 4, None, y, y.clone(), clean[None], (s,)))
        assert rows[("F2", "success:torchattack_fooling_rate")].value == pytest.approx(expected)


# ----------------------------------------------------------------------------- the paired comparison
@given(st.integers(0, 30), st.integers(0, 30))
def test_mcnemar_exact_is_the_two_sided_binomial_test(b, c):
    scipy_stats = pytest.importorskip("scipy.stats")
    expected = 1.0 if b + c == 0 else scipy_stats.binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(min(1.0, expected), rel=1e-9)


@given(st.integers(0, 25), st.integers(0, 25), st.integers(0, 25), st.integers(0, 25))
def test_paired_interval_is_newcombes_method_10(a, b, c, d):
    n = a + b + c + d
    got = paired_interval(a, b, c, d)
    if n == 0:
        assert got is None
        return
    # Newcombe (1998), method 10, written out from the Wilson limits of the two marginals
    p1, p2 = (a + b) / n, (a + c) / n
    w1, w2 = Proportion.of(a + b, n), Proportion.of(a + c, n)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denom) if denom else 0.0
    dl = math.sqrt(
        max(0.0, (p1 - w1.ci_low) ** 2 - 2 * phi * (p1 - w1.ci_low) * (w2.ci_high - p2) + (w2.ci_high - p2) ** 2)
    )
    du = math.sqrt(
        max(0.0, (w1.ci_high - p1) ** 2 - 2 * phi * (w1.ci_high - p1) * (p2 - w2.ci_low) + (p2 - w2.ci_low) ** 2)
    )
    assert got == pytest.approx((max(-1.0, p1 - p2 - dl), min(1.0, p1 - p2 + du)))
    assert got[0] <= p1 - p2 <= got[1]


def test_with_no_correlation_the_paired_interval_is_the_independent_one():
    # a d = b c: phi = 0, so it is metrics.difference_interval of the two marginals
    a, b, c, d = 6, 3, 4, 2
    assert paired_interval(a, b, c, d) == pytest.approx(
        difference_interval(Proportion.of(a + b, 15), Proportion.of(a + c, 15))
    )


def test_comparing_two_attacks_counts_the_discordant_images():
    y = torch.zeros(10, dtype=torch.int64)
    key = SetKey("x", None, "untargeted")
    a = AdversarialLabels(key, None, torch.ones(10, dtype=torch.int64), torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0, 0, 0]]))
    b = AdversarialLabels(key, None, torch.ones(10, dtype=torch.int64), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0, 0, 1]]))
    samples = Samples("d", "F1", ("F2",), 2, None, y, y.clone(), y[None].clone(), (a,))
    (every, fooled) = compare_sets(samples, a, samples, b)
    assert (every.both, every.only_a, every.only_b, every.neither) == (2, 4, 1, 3)
    assert every.difference == pytest.approx(0.3)
    assert every.mcnemar_p == pytest.approx(mcnemar_exact(4, 1)) and every.mcnemar_p == pytest.approx(0.375)
    assert fooled.n == 10  # F1 fooled on every image by both


# ----------------------------------------------------------------------------- per-image labels, round trips
@given(label_sets(max_n=20))
def test_samples_survive_npz_and_csv(tmp_path_factory, samples):
    folder = tmp_path_factory.mktemp("samples")
    samples.save(folder / "samples.npz")
    back = Samples.load(folder / "samples.npz")
    assert tables.summary(back) == tables.summary(samples)
    to_csv(samples, folder / "predictions.csv")
    if len(samples.y):
        from_labels = from_csv(folder / "predictions.csv", samples.num_classes, samples.dataset, samples.source)
        assert [r.count for r in tables.summary(from_labels)] == [r.count for r in tables.summary(samples)]


def test_doctests_of_the_public_api():
    for module in (result_module, compare_module, __import__("classaware.evaluation.api", fromlist=["api"])):
        failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failed == 0, module.__name__


def test_an_evaluation_from_samples_gives_the_same_tables(tmp_path):
    y = torch.tensor([0, 1, 2, 0, 1])
    s = AdversarialLabels(
        SetKey("pgd", 1.0, "untargeted"), None, torch.tensor([1, 2, 0, 0, 0]), torch.tensor([[1, 0, 1, 0, 2]])
    )
    ev = Evaluation(Samples("toy", "F1", ("F2",), 3, None, y, y.clone(), y[None].clone(), (s,)))
    ev.save(tmp_path, draw=False)
    back = Evaluation.from_samples(tmp_path / "samples.npz")
    assert back.table() == ev.table() and back.per_class() == ev.per_class() and back.pairs() == ev.pairs()
    assert (tmp_path / "summary.csv").read_text().count("\n") == len(ev.table()) + 1
