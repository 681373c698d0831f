"""FAMO counts each task's own Adam steps: a task absent from a batch does not advance its bias
correction, every task present gives exactly what one shared count gave, and a checkpoint written
with the shared (scalar) count still loads."""
import pytest
import torch
from torch import nn

from taskshare.balancing import FAMO
from taskshare.train import Balancing


class SharedCountFAMO:
    """FAMO's logit update as it was with one step count for every task (every task present): the
    reference the per-task counts must reproduce bit for bit."""

    def __init__(self, num_tasks, lr=0.025, gamma=0.001, eps=1e-8):
        self.lr, self.gamma, self.eps = lr, gamma, eps
        self.logits, self.m, self.v = torch.zeros(num_tasks), torch.zeros(num_tasks), torch.zeros(num_tasks)
        self.steps, self.previous = torch.zeros((), dtype=torch.long), torch.zeros(num_tasks)

    def before(self, losses):
        self.previous = losses.clamp_min(0) + self.eps

    def after(self, losses):
        delta = torch.log(self.previous) - torch.log(losses.clamp_min(0) + self.eps)
        z = torch.softmax(self.logits, 0)
        grad = z * (delta - z @ delta) + self.gamma * self.logits
        self.steps += 1
        self.m.mul_(0.9).add_(grad, alpha=0.1)
        self.v.mul_(0.999).addcmul_(grad, grad, value=1 - 0.999)
        k = float(self.steps)
        m_hat, v_hat = self.m / (1 - 0.9 ** k), self.v / (1 - 0.999 ** k)
        self.logits.sub_(self.lr * m_hat / (v_hat.sqrt() + 1e-8))

    def state_dict(self):
        return {"logits": self.logits.clone(), "adam_m": self.m.clone(), "adam_v": self.v.clone(),
                "adam_steps": self.steps.clone(), "previous": self.previous.clone()}


def _losses(steps, num_tasks, seed):
    g = torch.Generator().manual_seed(seed)
    before = torch.rand(steps, num_tasks, generator=g) * 3 + 0.1
    return before, before * (0.5 + torch.rand(steps, num_tasks, generator=g))   # some fall, some rise


def _run(famo, reference, before, after):
    for b, a in zip(before, after):
        famo.task_loss(b)
        famo.observe(a)
        reference.before(b)
        reference.after(a)


def test_every_task_present_gives_the_shared_counts_logits_bit_for_bit():
    famo, reference = FAMO(num_tasks=3), SharedCountFAMO(3)
    before, after = _losses(40, 3, seed=0)
    _run(famo, reference, before, after)
    assert torch.equal(famo.logits, reference.logits)
    assert torch.equal(famo.adam_m, reference.m) and torch.equal(famo.adam_v, reference.v)
    assert famo.adam_steps.tolist() == [40, 40, 40]
    assert not torch.equal(famo.logits, torch.zeros(3))                # the logits did move


def test_a_task_first_present_late_gets_a_first_steps_bias_correction():
    """Adam's first step moves a parameter by lr (m_hat = g, v_hat = g^2) whatever g is; with a
    count shared with the steps task 1 missed, its first step was 0.58 lr after 3 absent steps."""
    famo = FAMO(num_tasks=3)
    absent = torch.tensor([True, False, True])
    before, after = _losses(4, 3, seed=1)
    for b, a in zip(before[:3], after[:3]):
        famo.task_loss(b, present=absent)
        famo.observe(a, absent)
    assert famo.adam_steps.tolist() == [3, 0, 3]
    logit = float(famo.logits[1])
    famo.task_loss(before[3])
    famo.observe(after[3])
    assert famo.adam_steps.tolist() == [4, 1, 4]
    assert abs(float(famo.logits[1]) - logit) == pytest.approx(famo.lr, rel=1e-5)


def test_a_checkpoint_with_the_shared_scalar_count_loads_as_that_count_for_every_task():
    before, after = _losses(30, 2, seed=2)
    reference = SharedCountFAMO(2)
    _run(FAMO(num_tasks=2), reference, before[:10], after[:10])
    old = reference.state_dict()
    assert old["adam_steps"].dim() == 0                                # saved the old way
    famo = FAMO(num_tasks=2)
    famo.load_state_dict(old)
    assert famo.adam_steps.tolist() == [10, 10]
    _run(famo, reference, before[10:], after[10:])                     # and it carries on as it would have
    assert torch.equal(famo.logits, reference.logits)


def test_the_scalar_count_loads_inside_a_larger_module_and_through_balancing():
    old = SharedCountFAMO(3)
    _run(FAMO(num_tasks=3), old, *_losses(5, 3, seed=3))
    holder = nn.Module()
    holder.method = FAMO(num_tasks=3)
    holder.load_state_dict({f"method.{k}": v for k, v in old.state_dict().items()})
    assert holder.method.adam_steps.tolist() == [5, 5, 5]
    bal = Balancing("famo", 3)
    state = bal.state_dict()
    state["balancer"] = old.state_dict()
    bal.load_state_dict(state)
    assert bal.method.adam_steps.tolist() == [5, 5, 5] and torch.equal(bal.method.logits, old.logits)
