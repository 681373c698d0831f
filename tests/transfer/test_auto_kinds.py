"""auto's paired evidence for binary, multi-label and regression targets: a per-example score that
tracks the main metric, refusal of a candidate clearly below scratch, and the second round without
classes to stratify by."""
import numpy as np
import pytest
import torch
from torch import nn

from taskshare import Task, TrainConfig, TrunkHead
from taskshare.data import ArrayDataset, Splits
from taskshare.transfer import run_strategy
from taskshare.transfer.auto_run import _strata_of, _untrainable
from taskshare.transfer.auto_scores import example_score

CFG = TrainConfig(epochs=15, batch_size=32, lr=1e-2, min_steps=40, patience=15, progress=False, device="cpu")


def test_the_per_example_score_tracks_each_kind_of_main_metric():
    binary = Task("b", "binary")
    out, y = torch.tensor([[2.0], [-1.0], [0.5], [3.0]]), torch.tensor([1.0, 1.0, float("nan"), 0.0])
    brier = example_score(binary)                     # AUROC has no per-example form
    assert brier.name == "brier" and not brier.higher_is_better and "no per-example form" in brier.describe()
    expected = [(torch.sigmoid(torch.tensor(v)) - t).pow(2).item() for v, t in ((2.0, 1), (-1.0, 1), (3.0, 0))]
    assert brier(out, y, binary) == pytest.approx(expected)            # the unknown label is skipped
    acc = Task("b", "binary", metric="binary_accuracy")
    assert example_score(acc)(out, y, acc) == [1.0, 0.0, 0.0]
    multi = Task("m", "multilabel", num_classes=3, metric="binary_accuracy")
    out = torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([[1.0, 0.0, 0.0], [1.0, -1.0, 0.0], [-1.0, -1.0, -1.0]])
    assert example_score(multi)(out, y, multi) == pytest.approx([2 / 3, 1 / 2])   # of its known labels
    reg = Task("r", "regression", num_outputs=2)
    targets = torch.tensor([[0.0, 0.0], [2.0, 20.0], [4.0, 40.0]])      # the second output 10x the spread
    sq = example_score(reg, targets)
    pred = targets + torch.tensor([[2.0, 0.0], [0.0, 20.0], [0.0, 0.0]])
    assert sq.name == "squared_error" and not sq.higher_is_better
    assert sq(pred, targets, reg) == pytest.approx([0.5, 0.5, 0.0])   # errors of one spread weigh the same
    # its mean is 1 - R² where the held-out targets have the pooled spread
    ss = ((pred - targets) ** 2).sum(0) / ((targets - targets.mean(0)) ** 2).sum(0) * 2 / 3
    assert float(np.mean(sq(pred, targets, reg))) == pytest.approx(float(ss.mean()))
    mae = Task("r", "regression", metric="mae")
    assert example_score(mae, targets[:, :1]).name == "absolute_error"
    f1 = Task("c", "multiclass", num_classes=3, metric="macro_f1")    # macro F1 is a set measure too
    logits, labels = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 9.0], [1.0, 1.0, 1.0]]), torch.tensor([0, 0, -1])
    assert example_score(f1)(logits, labels, f1) == pytest.approx([0.0, 1.0], abs=1e-3)   # halved: 0 to 1
    accuracy = Task("c", "multiclass", num_classes=3)
    assert example_score(accuracy)(logits, labels, accuracy) == [1.0, 0.0]


def test_later_rounds_stratify_by_label_or_not_at_all_and_keep_every_label_trainable():
    binary = Task("b", "binary")
    assert _strata_of(binary, torch.tensor([1.0, 0.0, float("nan"), 1.0])).tolist() == [1, 0, -1, 1]
    reg = Task("r", "regression")
    assert _strata_of(reg, torch.tensor([0.3, float("nan"), -1.0])).tolist() == [0, -1, 0]
    multi = Task("m", "multilabel", num_classes=3)
    y = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [-1.0, -1.0, -1.0]])
    # label 0 is positive 3 times, label 1 and label 2 once: each example goes with its rarest positive
    assert _strata_of(multi, y).tolist() == [1, 0, 3, 2, -1]
    # training on examples 1-2 would leave labels 1 and 2 without a positive; 0-3 keep every label
    assert "label 1, 2" in _untrainable(multi, y, np.array([1, 2]), n_train=4)
    assert _untrainable(multi, y, np.array([0, 2, 3]), n_train=4) == ""
    assert "needs 2" in _untrainable(reg, torch.tensor([0.3, float("nan")]), np.array([0, 1]), n_train=1)


def _dead_net(dim: int, out: int) -> TrunkHead:
    """A source whose every ReLU is dead: its features are constant, and no gradient reaches the trunk,
    so every strategy that keeps it predicts one value, while scratch learns the task."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Sequential(nn.Linear(dim, 32), nn.ReLU()), nn.Sequential(nn.Linear(32, 32), nn.ReLU()))
    net = TrunkHead(trunk, nn.Linear(32, out))
    with torch.no_grad():
        trunk[0][0].bias.fill_(-100.0)
    return net


def _arrays(n: int, seed: int, dim: int = 6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    return x, x[:, 0] + 0.5 * x[:, 1] - 0.5 * x[:, 2]


def test_auto_refuses_the_rules_choice_for_regression_where_it_is_clearly_below_scratch():
    x, target = _arrays(160, seed=0)
    task = Task("r", "regression")
    splits = Splits(ArrayDataset(x[:60], target[:60]), ArrayDataset(x[60:100], target[60:100]),
                    ArrayDataset(x[100:], target[100:]))
    _, auto = run_strategy(_dead_net(6, 1), task, splits, "auto", CFG)
    _, rule = run_strategy(_dead_net(6, 1), task, splits, {"name": "auto", "confirm": False}, CFG)
    assert rule.strategy == "auto(confirm=False) -> lp_ft"              # the rule: no classes, LP-FT
    assert auto.strategy == "auto -> scratch", auto.note
    assert auto.test["r2"] > rule.test["r2"] + 0.3
    assert "squared error over the targets' variance" in auto.note and "lp_ft" in auto.note.split("refused")[-1]
    assert "the size rule alone would say lp_ft" in auto.note.lower()


def test_auto_refuses_the_rules_choice_for_a_binary_task_on_the_brier_score():
    x, target = _arrays(200, seed=1)
    y = (target > 0).float()
    task = Task("b", "binary")
    splits = Splits(ArrayDataset(x[:60], y[:60]), ArrayDataset(x[60:120], y[60:120]), ArrayDataset(x[120:], y[120:]))
    _, auto = run_strategy(_dead_net(6, 1), task, splits, "auto", CFG)
    assert auto.strategy == "auto -> scratch", auto.note
    assert auto.test["auroc"] > 0.8
    assert "Brier score" in auto.note and "auroc has no per-example form" in auto.note
    assert "refused as clearly below scratch" in auto.note and "lp_ft" in auto.note.split("refused")[-1]


class _Lookup(nn.Module):
    """A scripted 'trained model': the input's first feature is the example's id, the output is the
    prediction the script gives that example."""

    def __init__(self, predictions: torch.Tensor):
        super().__init__()
        self.register_buffer("predictions", predictions)

    def forward(self, x):
        return self.predictions[x[:, 0].long()]


def _scripted(monkeypatch, task: Task, y: torch.Tensor, n_train: int, predictions):
    """auto on a split of `y` whose candidates' training is replaced by a script: `predictions(name,
    round_)` gives every example's output. Returns auto's result and what each round held out."""
    from taskshare.transfer import run as run_module
    from taskshare.transfer.run import TransferResult

    n = len(y)
    x = torch.stack([torch.arange(n, dtype=torch.float32), torch.zeros(n)], 1)
    splits = Splits(ArrayDataset(x[:n_train], y[:n_train]), ArrayDataset(x[n_train:], y[n_train:]))
    trained = []
    real_run = run_module.run_strategy

    def scripted(pretrained, task_, split, strategy, *args, **kwargs):
        if getattr(strategy, "name", strategy) == "auto":
            return real_run(pretrained, task_, split, strategy, *args, **kwargs)
        round_ = 0 if split is splits else 1
        trained.append((strategy.label(), round_, split.val.x[:, 0].long().tolist()))
        model = _Lookup(torch.as_tensor(predictions(strategy.label(), round_), dtype=torch.float32).reshape(n, -1))
        return model, TransferResult(strategy.label(), 0, None, {}, 0.0, 0.0, 1)

    monkeypatch.setattr(run_module, "run_strategy", scripted)
    net = TrunkHead(nn.Sequential(nn.Sequential(nn.Linear(2, 4), nn.ReLU())), nn.Linear(4, task.out_dim))
    _, result = real_run(net, task, splits, "auto", CFG)
    return result, trained


def _scripted_regression(monkeypatch, n_train: int, n_val: int, errors):
    y = torch.linspace(-1.0, 1.0, n_train + n_val)
    return _scripted(monkeypatch, Task("r", "regression"), y, n_train,
                     lambda name, round_: y + torch.as_tensor(errors(name, round_), dtype=torch.float32))


def test_a_regression_lead_on_few_examples_must_survive_an_unstratified_second_round(monkeypatch):
    """10 validation examples: gradual unfreezing predicts them exactly where scratch is off by 0.3-0.6,
    the others are off by 1. A lead on 10 examples cannot be resolved to max_se, so the contenders
    train again on the validation examples and are scored on 10 of the 16 training ones (no classes:
    unstratified, the least held out first); there gradual unfreezing is off by 1, and scratch is kept."""
    rng = np.random.default_rng(0)
    scratch_err = rng.uniform(0.3, 0.6, 26)
    swap_holds = {"value": False}

    def errors(name, round_):
        if name == "scratch":
            return scratch_err
        if name == "gradual_unfreeze" and (round_ == 0 or swap_holds["value"]):
            return np.zeros(26)
        return np.ones(26)

    result, trained = _scripted_regression(monkeypatch, 16, 10, errors)
    second = [(name, held) for name, round_, held in trained if round_ == 1]
    assert sorted(name for name, _ in second) == ["gradual_unfreeze", "scratch"]      # the others pruned
    held = second[0][1]
    assert len(held) == 10 and max(held) < 16 and held == second[1][1]             # training examples, paired
    assert result.strategy == "auto -> scratch", result.note
    assert "2 round(s)" in result.note and "unstratified" in result.note
    assert "gradual_unfreeze's lead over scratch rested on 10 examples" in result.note
    swap_holds["value"] = True                                                     # the lead confirmed
    result, _ = _scripted_regression(monkeypatch, 16, 10, errors)
    assert result.strategy == "auto -> gradual_unfreeze", result.note
    assert "squared error" in result.note


def test_a_multilabel_second_round_keeps_a_rare_labels_positives_in_training(monkeypatch):
    """12 training and 8 validation examples; label 2 is positive only in training examples 0 and 5.
    LP-FT's lead on 8 examples takes a second round, whose held-out examples are drawn per rarest
    positive label as validation's were: never 0 or 5, so the round's training still sees label 2."""
    y = torch.zeros(20, 3)
    y[::2, 0] = 1.0
    y[1::3, 1] = 1.0
    y[[0, 5], 2] = 1.0
    logit = (2 * y - 1) * 3.0                  # a confident, right prediction

    def predictions(name, round_):
        return logit if name == "lp_ft" else -logit if name != "scratch" else logit * 0.2

    result, trained = _scripted(monkeypatch, Task("m", "multilabel", num_classes=3), y, 12, predictions)
    second = [held for _, round_, held in trained if round_ == 1]
    assert second and all(len(h) == 8 and max(h) < 12 and not {0, 5} & set(h) for h in second), trained
    assert "rarest positive label" in result.note and "Brier score" in result.note
    assert result.strategy == "auto -> lp_ft", result.note


def test_without_class_counts_a_tie_keeps_scratch_not_the_rules_guess(monkeypatch):
    """Regression: LP-FT is level with scratch (one example better, one worse by half as much), the
    rest far below. For a multiclass task the size rule would settle such an unresolved tie; here it
    has no sizes to go by, so scratch is kept and the note says why."""
    scratch_err = np.random.default_rng(1).uniform(0.3, 0.6, 26)
    lp_ft_err = scratch_err.copy()
    lp_ft_err[16], lp_ft_err[17] = 0.0, scratch_err[17] + 0.1

    def errors(name, round_):
        return scratch_err if name == "scratch" else lp_ft_err if name == "lp_ft" else np.ones(26)

    result, _ = _scripted_regression(monkeypatch, 16, 10, errors)
    assert result.strategy == "auto -> scratch", result.note
    assert "lp_ft -0.0" in result.note.split("minus scratch")[1]               # its error lower: a lead
    assert "breaks no tie with scratch" in result.note


def test_regression_scores_with_unknown_outputs_average_to_the_metric():
    # a row missing one output still counts for the other; the rows' mean squared score is the mean over
    # outputs of each output's own MSE over its spread, which is what 1 - R2 averages per column
    reg = Task("r", "regression", num_outputs=2)
    nan = float("nan")
    targets = torch.tensor([[0.0, 1.0], [2.0, nan], [4.0, 5.0], [nan, 3.0], [1.0, 0.0]])
    pred = targets.nan_to_num(0.0) + torch.tensor([[1.0, 0.0], [0.0, 9.0], [-1.0, 2.0], [9.0, 1.0], [0.5, -1.0]])
    score = example_score(reg, targets)
    known = ~torch.isnan(targets)
    sd = torch.stack([targets[known[:, j], j].std() for j in range(2)])
    assert torch.allclose(score.scale, sd)                 # each output's spread over its own known entries
    terms = score(pred, targets, reg)
    assert len(terms) == 5                                 # rows 1 and 3 are kept
    per_column = [((pred - targets)[known[:, j], j] / sd[j]).pow(2).mean() for j in range(2)]
    assert float(np.mean(terms)) == pytest.approx(float(sum(per_column) / 2))
    full = targets[known.all(1)]                           # every output known: each row's mean, as before
    assert score(full + 1.0, full, reg) == pytest.approx((1.0 / sd.pow(2)).mean().item() * np.ones(3))
