import math

import pytest
import torch
import torch.nn.functional as F

from taskshare import Task, TaskshareError


def test_multiclass_loss_skips_missing_labels_and_normalises_by_known_count():
    task = Task("t", "multiclass", num_classes=3)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    y = torch.tensor([0, -1, 2])
    expected = (F.cross_entropy(logits[0:1], y[0:1]) + F.cross_entropy(logits[2:3], y[2:3])) / 2
    assert torch.allclose(task.loss(logits, y), expected)


def test_multilabel_loss_matches_hand_sum_over_known_entries():
    task = Task("m", "multilabel", num_classes=2)
    z = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    y = torch.tensor([[1.0, float("nan")], [0.0, -1.0]])
    sig = torch.sigmoid
    hand = -(math.log(sig(torch.tensor(1.0))) + math.log(1 - sig(torch.tensor(0.5)))) / 2
    assert task.loss(z, y).item() == pytest.approx(hand, rel=1e-6)


def test_all_missing_gives_zero_loss_with_graph():
    task = Task("r", "regression")
    out = torch.randn(4, 1, requires_grad=True)
    loss = task.loss(out, torch.full((4,), float("nan")))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(out.grad, torch.zeros_like(out))



def test_regression_target_of_minus_one_is_a_value_and_only_nan_is_unknown():
    task = Task("r", "regression")
    y = torch.tensor([-1.0, float("nan"), 2.0])
    assert task.known(y).tolist() == [True, False, True]
    out = torch.tensor([[0.0], [5.0], [2.0]])
    assert task.loss(out, y).item() == pytest.approx(0.5)     # (0 - (-1))^2 and 0 over two known rows
    assert task.metrics(out, y)["mae"] == pytest.approx(0.5)


def test_binary_and_multilabel_keep_minus_one_as_unknown():
    assert Task("b", "binary").known(torch.tensor([1.0, -1.0, float("nan"), 0.0])).tolist() == [True, False, False, True]
    assert Task("m", "multilabel", num_classes=2).known(torch.tensor([[-1, 1]])).tolist() == [[False, True]]


def test_a_regression_column_of_minus_ones_counts_as_known_labels():
    import numpy as np

    from taskshare.validate import check_training_labels, known_count
    task = Task("r", "regression")
    assert known_count(task, np.array([-1.0, -1.0, np.nan])) == 2
    check_training_labels(task, np.array([-1.0, -1.0]))      # not "every label is unknown"
    with pytest.raises(TaskshareError, match="every label"):
        check_training_labels(task, np.array([np.nan, np.nan]))
    assert known_count(Task("b", "binary"), np.array([-1.0, 1.0, np.nan])) == 1


def test_multitask_batches_keep_minus_one_as_a_regression_value_and_nan_as_unknown():
    import numpy as np

    from taskshare import MultiTaskDataset
    from taskshare.data.multitask import MultiTaskLoader
    data = MultiTaskDataset(np.zeros((3, 2), np.float32), {"r": np.array([-1.0, np.nan, 1.0], np.float32)})
    (_, labels), = list(MultiTaskLoader(data, batch_size=3, shuffle=False))
    task = Task("r", "regression")
    assert task.known(task.prepare_target(labels["r"])).reshape(-1).tolist() == [True, False, True]
    assert task.loss(torch.zeros(3, 1), labels["r"]).item() == pytest.approx(1.0)   # (1 + 1) / 2 known rows

@pytest.mark.parametrize("kind,size,head_out", [("multiclass", 4, 4), ("binary", None, 1), ("multilabel", 3, 3), ("regression", None, 1)])
def test_head_width_follows_task(kind, size, head_out):
    task = Task("t", kind, num_classes=size)
    assert task.make_head(7).out_features == head_out


def test_label_outside_classes_is_named():
    task = Task("digits", "multiclass", num_classes=5)
    with pytest.raises(TaskshareError, match=r"'digits'.*label 7.*\[0, 4\]"):
        task.check_labels(torch.tensor([0, 1, 7]))


def test_bad_task_definitions():
    with pytest.raises(TaskshareError, match="kind 'ordinal'"):
        Task("t", "ordinal")
    with pytest.raises(TaskshareError, match="num_classes >= 2"):
        Task("t", "multiclass")
    with pytest.raises(TaskshareError, match="metric 'r2'"):
        Task("t", "multiclass", num_classes=3, metric="r2")


def test_metrics_skip_unknown_labels():
    task = Task("t", "multiclass", num_classes=2)
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    m = task.metrics(logits, torch.tensor([0, -1, 1]))
    assert m["accuracy"] == pytest.approx(0.5)


def test_multi_output_regression_metrics_read_each_output_over_its_known_entries():
    import numpy as np
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 3)) * [1.0, 5.0, 0.2]
    pred = y + rng.normal(size=(40, 3)) * [0.5, 2.0, 0.3]
    y[rng.random((40, 3)) < 0.25] = np.nan                    # scattered unknown entries
    task = Task("r", "regression", num_outputs=3)
    got = task.metrics(torch.tensor(pred, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    cols = [(y[~np.isnan(y[:, j]), j], pred[~np.isnan(y[:, j]), j]) for j in range(3)]
    assert got["r2"] == pytest.approx(np.mean([r2_score(t, p) for t, p in cols]), abs=1e-5)
    assert got["mae"] == pytest.approx(np.mean([mean_absolute_error(t, p) for t, p in cols]), rel=1e-5)
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean([mean_squared_error(t, p) for t, p in cols])), rel=1e-5)
    # every entry known: sklearn's uniform average for R2 and MAE, the pooled root mean square for RMSE
    full = rng.normal(size=(30, 2))
    guess = full + rng.normal(size=(30, 2))
    got = Task("r", "regression", num_outputs=2).metrics(torch.tensor(guess), torch.tensor(full))
    assert got["r2"] == pytest.approx(r2_score(full, guess), abs=1e-6)        # targets are float32
    assert got["mae"] == pytest.approx(mean_absolute_error(full, guess), rel=1e-6)
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(full.ravel(), guess.ravel())), rel=1e-6)
    one = Task("r", "regression")                              # one output: its known rows, as before
    t1 = torch.tensor([1.0, float("nan"), 3.0, 0.0])
    p1 = torch.tensor([1.5, 9.0, 2.0, 0.0])
    assert one.metrics(p1, t1)["mae"] == pytest.approx(0.5)
