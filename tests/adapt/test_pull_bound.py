"""The pull bound's two additions behind the plain-trunk cells: the norm of the adaptation gradient
summed over the batch is capped (a coherent gradient spread over many rows reaches the parameters
far stronger than its Frobenius norm says), and the gradient reaching the logits is bounded, so the
head no longer takes prediction-based terms (entropy, JAN) unbounded."""
import torch

from taskshare.adapt import bound_gradient
from taskshare.adapt.safety import Progress

from .conftest import late_objective


def test_the_batch_sum_of_a_coherent_gradient_is_capped():
    x = torch.ones(16, 4, requires_grad=True)
    upstream = torch.zeros(16, 4)
    upstream[:, 0] = 0.1                       # Frobenius norm 0.4, summed over the batch 1.6
    (bound_gradient(x, 1.0, max_sum=0.4) * upstream).sum().backward()
    assert torch.allclose(x.grad, upstream / 4)                # the sum bound bites: x 0.25
    y = torch.ones(16, 4, requires_grad=True)
    spread = torch.zeros(16, 4)
    spread[::2, 0], spread[1::2, 0] = 0.1, -0.1                # same Frobenius norm, sums to zero
    (bound_gradient(y, 1.0, max_sum=0.4) * spread).sum().backward()
    assert torch.equal(y.grad, spread)


def test_limits_keep_each_peak_per_place_and_resume():
    p = Progress(10)
    g = torch.zeros(4, 2)
    g[:, 0] = 1.0                               # norm 2, batch sum (4, 0): norm 4
    max_norm, max_sum = p.limits(g, 0.5)
    assert float(max_norm) == 1.0 and float(max_sum) == 2.0
    max_norm, max_sum = p.limits(g / 10, 0.5)   # the source is learned: the peaks stay
    assert float(max_norm) == 1.0 and float(max_sum) == 2.0
    assert float(p.limits(g / 2, 0.5, "logits")[0]) == 0.5      # its own peaks
    q = Progress(10)
    q.load_state_dict(p.state_dict())
    assert q.peaks == {"features": [2.0, 4.0], "logits": [1.0, 2.0]}


def _head_grad(weight: float, pull_limit):
    model, _, (loss, _) = late_objective("entropy", weight, pull_limit, n=32, dim=3, classes=3, shift=1.5)
    loss.backward()
    return model.head.weight.grad.clone()


def test_the_head_takes_a_bounded_share_of_a_prediction_term():
    source = _head_grad(0.0, 0.2)
    bounded, unbounded = _head_grad(100.0, 0.2) - source, _head_grad(100.0, None) - source
    # entropy at weight 100 out-pulls the source loss at the head; bounded at the logits, its share
    # of the head's gradient shrinks (before, the bound sat at the features only: the two were equal)
    assert bounded.norm() < 0.5 * unbounded.norm(), (bounded.norm(), unbounded.norm())
    assert bounded.norm() > 0
