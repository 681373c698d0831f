"""Multi-label metrics against scikit-learn: per label over its known entries, macro-averaged; ties
and missing entries included; the pooled (micro) figure only under its own name."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from taskshare import Task
from taskshare.evaluate.multilabel import average_precision, multilabel_metrics


def _case(seed, n=60, labels=5, ties=True):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < rng.uniform(0.1, 0.9, labels)).astype(np.float32)
    scores = y * rng.normal(0.7, 1, (n, labels)) + rng.normal(0, 1, (n, labels))
    if ties:
        scores = np.round(scores, 0)                   # many tied scores within each label
    y_missing = y.copy()
    y_missing[rng.random((n, labels)) < 0.3] = np.nan  # 30% unknown
    return scores.astype(np.float32), y, y_missing


def _reference(scores, y):
    aucs, aps = [], []
    for j in range(y.shape[1]):
        keep = ~np.isnan(y[:, j])
        t, s = y[keep, j], scores[keep, j]
        if len(np.unique(t)) < 2:
            continue
        aucs.append(roc_auc_score(t, s))
        aps.append(average_precision_score(t, s))
    known = ~np.isnan(y)
    return np.mean(aucs), np.mean(aps), roc_auc_score(y[known], scores[known]), y.shape[1] - len(aucs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [True, False])
def test_macro_auroc_map_and_micro_match_sklearn_with_ties_and_missing_entries(seed, ties):
    scores, _, y = _case(seed, ties=ties)
    task = Task("tags", "multilabel", num_classes=y.shape[1])
    got = task.metrics(torch.as_tensor(scores), torch.as_tensor(y))
    macro, mean_ap, micro, skipped = _reference(scores, y)
    assert got["auroc"] == pytest.approx(macro, abs=1e-9)
    assert got["map"] == pytest.approx(mean_ap, abs=1e-9)
    assert got["auroc_micro"] == pytest.approx(micro, abs=1e-9)
    assert got["labels_skipped"] == skipped == 0
    assert task.main_metric == "auroc"


def test_average_precision_matches_sklearn_on_heavy_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.integers(0, 2, 25)
        y[0], y[1] = 0, 1
        s = rng.integers(0, 3, 25).astype(np.float64)
        assert average_precision(torch.as_tensor(s), torch.as_tensor(y)) == pytest.approx(
            average_precision_score(y, s), abs=1e-12)


def test_a_label_with_one_class_is_skipped_and_counted():
    scores, _, y = _case(7)
    y[:, 2] = np.where(np.isnan(y[:, 2]), np.nan, 1.0)           # label 2: positives only among known
    got = Task("tags", "multilabel", num_classes=5).metrics(torch.as_tensor(scores), torch.as_tensor(y))
    macro, mean_ap, _, skipped = _reference(scores, y)
    assert skipped == 1 and got["labels_skipped"] == 1
    assert got["auroc"] == pytest.approx(macro) and got["map"] == pytest.approx(mean_ap)


def test_base_rates_alone_do_not_flatter_the_main_metric():
    """Constant scores per label equal to its prevalence know nothing about any example: macro AUROC
    0.5 exactly, while the pooled ranking (kept as auroc_micro) rewards them."""
    rng = np.random.default_rng(0)
    prevalence = np.linspace(0.05, 0.95, 10)
    y = (rng.random((2000, 10)) < prevalence).astype(np.float32)
    scores = np.tile(np.log(prevalence / (1 - prevalence)), (2000, 1)).astype(np.float32)
    got = multilabel_metrics(["auroc", "map", "auroc_micro"], torch.as_tensor(scores), torch.as_tensor(y),
                             torch.ones(y.shape, dtype=torch.bool))
    assert got["auroc"] == pytest.approx(0.5, abs=1e-9)
    assert got["map"] == pytest.approx(float(np.mean(y.astype(np.float64).mean(0))), abs=1e-9)   # AP of a constant = prevalence
    assert got["auroc_micro"] > 0.8
    assert roc_auc_score(y.reshape(-1), scores.reshape(-1)) == pytest.approx(got["auroc_micro"], abs=1e-9)


def test_every_label_unknown_gives_nan_not_an_error():
    y = torch.full((6, 3), float("nan"))
    got = Task("tags", "multilabel", num_classes=3).metrics(torch.randn(6, 3), y)
    assert math.isnan(got["auroc"]) and got["labels_skipped"] == 3
