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
