"""Pipeline: stages trained on their own data compose; end-to-end fine-tuning reaches through the glue."""
import pytest
import torch
from torch import nn

from taskshare import Task, TaskshareError, TrainConfig, evaluate
from taskshare.experiments.pipeline import Pipeline, Stage, fit_end_to_end, fit_stage

CFG = TrainConfig(epochs=30, lr=1e-2, min_steps=0, progress=False, device="cpu")


@pytest.mark.slow
def test_stages_train_alone_compose_and_fine_tune():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=g)
    z = x[:, :2] * 2                                  # stage 1 target: an intermediate quantity
    y = (z.sum(1) > 0).long()                         # stage 2 reads it
    torch.manual_seed(0)
    pipe = Pipeline([Stage("first", nn.Linear(4, 2)), Stage("second", nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)))])
    fit_stage(pipe, "first", Task("z", "regression", num_outputs=2), (x, z), None, CFG)
    fit_stage(pipe, "second", Task("y", num_classes=2), (z, y), None, CFG)
    composed = evaluate(pipe, Task("y", num_classes=2), (x, y))["accuracy"]
    assert composed > 0.8                              # chance is 0.5; no (x, y) pair was used
    before = pipe.stage("first").weight.detach().clone()
    fit_end_to_end(pipe, Task("y", num_classes=2), (x, y), None, TrainConfig(epochs=3, lr=1e-3, min_steps=0, progress=False, device="cpu"))
    assert not torch.equal(before, pipe.stage("first").weight)   # gradients reached the first stage


def test_glue_sees_the_input_and_bad_pipelines_are_named():
    pipe = Pipeline([Stage("a", nn.Identity()), Stage("b", nn.Identity(), inputs=lambda x, prev: x + prev)])
    assert torch.equal(pipe(torch.ones(2, 3)), torch.full((2, 3), 2.0))
    with pytest.raises(TaskshareError, match="unique"):
        Pipeline([Stage("a", nn.Identity()), Stage("a", nn.Identity())])
    with pytest.raises(TaskshareError, match="no stage 'c'"):
        pipe.stage("c")


def test_fine_tuning_end_to_end_never_leaves_the_pipeline_below_its_start_on_validation():
    """A composed pipeline that already reads validation right, fine-tuned on a few pairs with wrong
    labels at a harmful rate: without the guard its validation accuracy falls; with it the pipeline
    keeps the weights it started with and says so."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=g)
    y = (x[:, 0] > 0).long()
    task = Task("y", num_classes=2)

    def composed():
        torch.manual_seed(0)
        first, second = nn.Linear(4, 1), nn.Linear(1, 2)
        with torch.no_grad():
            first.weight.copy_(torch.tensor([[1.0, 0, 0, 0]]))
            first.bias.zero_()
            second.weight.copy_(torch.tensor([[-5.0], [5.0]]))
            second.bias.zero_()
        return Pipeline([Stage("first", first), Stage("second", second)])

    val = (x[200:], y[200:])
    wrong = (x[:20], 1 - y[:20])                       # a few pairs, labels flipped
    cfg = TrainConfig(epochs=5, lr=0.5, min_steps=0, progress=False, device="cpu")
    start = evaluate(composed(), task, val)["accuracy"]
    assert start > 0.95
    unguarded = composed()
    fit_end_to_end(unguarded, task, wrong, val, cfg, keep_start=False)
    assert evaluate(unguarded, task, val)["accuracy"] < start - 0.2
    guarded = composed()
    history = fit_end_to_end(guarded, task, wrong, val, cfg)
    assert history.kept_start and evaluate(guarded, task, val)["accuracy"] == start
