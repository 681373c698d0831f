import pytest
import torch
from torch import nn

from taskshare import NonFiniteError, Task, TrainConfig, fit
from taskshare.data import split
from taskshare.train.schedule import lr_multiplier

from ..conftest import blobs, small_mlp


@pytest.mark.slow
def test_fit_learns_separable_blobs_and_restores_best_weights(task3):
    x, y = blobs()
    s = split((x, y), 0.25, seed=0)
    model = small_mlp()
    history = fit(model, task3, s.train, s.val, TrainConfig(epochs=15, batch_size=16, lr=1e-2, progress=False))
    scores = [e["val_accuracy"] for e in history.epochs]
    assert history.best_score == max(scores) >= 0.9
    from taskshare import evaluate
    assert evaluate(model, task3, s.val)["accuracy"] == pytest.approx(history.best_score)


def test_early_stopping_stops_after_patience(task3):
    x, y = blobs()
    s = split((x, y), 0.25, seed=0)
    history = fit(small_mlp(), task3, s.train, s.val,
                  TrainConfig(epochs=200, lr=1e-6, patience=2, schedule="constant", warmup=0, min_steps=0, progress=False))
    assert history.stopped_early and len(history.epochs) < 200
    assert len(history.epochs) - 1 - history.best_epoch == 2


@pytest.mark.slow
def test_same_seed_same_weights_different_seed_different(task3):
    x, y = blobs()

    def run(seed):
        torch.manual_seed(123)
        model = small_mlp()
        fit(model, task3, (x, y), None, TrainConfig(epochs=2, seed=seed, progress=False))
        return torch.cat([p.flatten() for p in model.parameters()])

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)

    def forward(self, x):
        out = self.lin(x)
        return out * float("nan") if (x[:, 0] > 100).any() else out


def test_nonfinite_loss_stops_with_batch_named_or_is_skipped(task3):
    x, y = blobs(n_per_class=8)
    x[5, 0] = 1000.0  # makes the model output NaN on the batch holding it
    with pytest.raises(NonFiniteError, match=r"loss is nan at epoch 0, batch \d"):
        fit(Exploding(), task3, (x, y), None, TrainConfig(epochs=1, batch_size=4, progress=False))
    history = fit(Exploding(), task3, (x, y), None, TrainConfig(epochs=1, batch_size=4, nonfinite="skip", min_steps=0, progress=False))
    assert history.skipped_steps == 1


def test_schedules():
    assert lr_multiplier(0, 100, "cosine", 0.1) < 0.2
    assert lr_multiplier(10, 100, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_multiplier(99, 100, "cosine", 0.1) < 0.01
    assert lr_multiplier(30, 100, "onecycle", 0) == pytest.approx(1.0)
    assert lr_multiplier(0, 100, "onecycle", 0) == pytest.approx(0.04)
    assert lr_multiplier(50, 100, "constant", 0.0) == 1.0


def test_bad_train_config_values_are_named():
    from taskshare import ConfigError
    with pytest.raises(ConfigError, match=r"train.schedule = 'linear'; expected one of"):
        TrainConfig(schedule="linear")
    with pytest.raises(ConfigError, match=r"train.lr = -1"):
        TrainConfig(lr=-1)


def test_fully_frozen_model_is_refused(task3):
    model = small_mlp()
    for p in model.parameters():
        p.requires_grad_(False)
    from taskshare import TaskshareError
    with pytest.raises(TaskshareError, match="every parameter"):
        fit(model, task3, blobs(), None, TrainConfig(epochs=1, progress=False))


def test_accumulating_two_half_batches_equals_one_full_batch():
    import torch
    from torch import nn

    from taskshare import Task, TrainConfig, fit
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    y = (x[:, 0] > 0).long()

    def train(batch, accumulate):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
        # no shuffling differences: the half batches of one order are the full batches of the other
        cfg = TrainConfig(epochs=2, batch_size=batch, accumulate=accumulate, min_steps=0, progress=False, device="cpu")
        class InOrder:                 # a loader without shuffling
            def __len__(self):
                return 128 // batch

            def __iter__(self):
                return iter([(x[i:i + batch], y[i:i + batch]) for i in range(0, 128, batch)])

        fit(model, Task("a", num_classes=2), InOrder(), None, cfg)
        return list(model.parameters())

    for a, b in zip(train(32, 1), train(16, 2)):
        assert torch.allclose(a, b, atol=1e-6)
