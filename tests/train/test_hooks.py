"""The loop calls the hooks a trainer declares (LoopHooks): its backward, its parameters, a step
after each optimizer step, the epoch end; the defaults leave plain training as it is."""
import torch
from torch import nn

from taskshare.train import LoopHooks, LoopOptions, TrainConfig
from taskshare.train.loop import train_loop


class Counting(LoopHooks):
    def __init__(self, extra):
        super().__init__([extra], {"counter": self})
        self.backwards, self.after, self.epochs = 0, 0, []

    def backward(self, loss, parts, scale=1.0):
        self.backwards += 1
        super().backward(loss, parts, scale)

    def after_step(self, model, x, y):
        self.after += 1

    def end_epoch(self, record):
        self.epochs.append(record["epoch"])

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _run(hooks, scale, accumulate=1):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)

    def objective(m, xb, yb):
        loss = ((m(xb) * scale - yb) ** 2).mean()
        return loss, {"y": loss}

    config = TrainConfig(epochs=2, min_steps=0, accumulate=accumulate, progress=False, device="cpu", lr=1e-2)
    history = train_loop(model, loader, objective, None, config, LoopOptions(label="t"), hooks)
    return model, history


def test_the_loop_calls_every_declared_hook():
    extra = nn.Parameter(torch.ones(()))
    hooks = Counting(extra)
    _, history = _run(hooks, extra, accumulate=2)
    assert hooks.backwards == 8                 # every micro-batch: 4 per epoch, 2 epochs
    assert hooks.after == 4 == history.steps    # once per optimizer step (windows of 2)
    assert hooks.epochs == [0, 1]
    assert extra.item() != 1.0                  # the hooks' parameters are trained with the model


def test_default_hooks_are_plain_training():
    plain, _ = _run(LoopHooks(), torch.ones(()))
    frozen = nn.Parameter(torch.ones(()), requires_grad=False)
    hooked, _ = _run(Counting(frozen), frozen)
    for a, b in zip(plain.parameters(), hooked.parameters()):
        assert torch.equal(a, b)
