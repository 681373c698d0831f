import math

import pytest
import torch

from taskshare.evaluate.metrics import auroc, binary_f1, macro_f1, r2


def test_auroc_by_hand_with_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4)(0.8>0.1)(0.4=0.4 -> 1/2)(0.4>0.1) = 3.5/4
    assert auroc(torch.tensor([0.8, 0.4, 0.4, 0.1]), torch.tensor([1, 1, 0, 0])) == pytest.approx(0.875)


def test_auroc_perfect_and_reversed():
    s = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert auroc(s, torch.tensor([0, 0, 1, 1])) == 1.0
    assert auroc(s, torch.tensor([1, 1, 0, 0])) == 0.0


def test_f1_and_macro_f1_by_hand():
    # tp=1 fp=1 fn=1 -> 2/(2+1+1)=0.5
    assert binary_f1(torch.tensor([1.0, 1.0, -1.0, -1.0]), torch.tensor([1.0, 0.0, 1.0, 0.0])) == pytest.approx(0.5)
    logits = torch.eye(3)[[0, 1, 1]]
    # class 0: f1 1; class 1: tp1 fp1 -> 2/3; class 2: tp0 -> 0
    assert macro_f1(logits, torch.tensor([0, 1, 2])) == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_r2_is_one_for_perfect_and_zero_for_mean():
    y = torch.tensor([1.0, 2.0, 3.0])
    assert r2(y, y) == pytest.approx(1.0)
    assert r2(torch.full_like(y, 2.0), y) == pytest.approx(0.0)
    assert math.isnan(r2(torch.tensor([1.0]), torch.tensor([2.0])))


@pytest.mark.parametrize("case", range(6))
def test_r2_follows_sklearn_with_constant_targets(case):
    # a constant target column is 1.0 when predicted exactly, else 0.0 (sklearn's force_finite): a NaN
    # there spread to every row's mean main metric and delta_m in multi-task tables
    from sklearn.metrics import r2_score
    g = torch.Generator().manual_seed(case)
    y = torch.randn(7, 3, generator=g)
    y[:, 1] = 2.5                                            # one constant column
    pred = y + 0.3 * torch.randn(7, 3, generator=g)
    if case % 2:
        pred[:, 1] = 2.5                                     # ... predicted exactly
    if case >= 4:
        y, pred = y[:, 1:2], pred[:, 1:2]                    # the constant column alone
    assert r2(pred, y) == pytest.approx(r2_score(y.numpy(), pred.numpy()), abs=1e-6)
    assert math.isfinite(r2(pred, y))
    assert r2(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 3.0])) == 0.0
    assert r2(torch.tensor([3.0, 3.0]), torch.tensor([3.0, 3.0])) == 1.0
