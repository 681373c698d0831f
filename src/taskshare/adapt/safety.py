"""What keeps an adaptation term from wrecking the source task: its weight ramps up over training,
its pull on the features is bounded by the source loss's own pull, and a run whose source validation
score ends far below the source-only model's is reported with the method named."""
from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import Tensor

from .grl import dann_schedule

log = logging.getLogger("taskshare")


class _Bound(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, max_norm: Tensor, loss_scale: Callable[[], float]) -> Tensor:
        ctx.save_for_backward(max_norm)
        ctx.loss_scale = loss_scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (max_norm,) = ctx.saved_tensors
        # under fp16 the gradient arriving here is the scaled loss's (x 2**16, say); the limit was
        # measured on the unscaled loss, so it is scaled alike, read now: the scaler may have moved
        limit = max_norm * float(ctx.loss_scale())
        norm = grad.float().norm()
        scale = torch.clamp(limit / norm.clamp_min(1e-12), max=1.0)
        return grad * scale.to(grad.dtype), None, None


def bound_gradient(x: Tensor, max_norm: Tensor | float, loss_scale: Callable[[], float] | float = 1.0) -> Tensor:
    """Identity forward; backward, the gradient reaching `x` through this branch is rescaled so its
    (Frobenius) norm is at most `max_norm` times `loss_scale` (the factor the loss is multiplied by
    before backward, a grad scaler's; a callable is read at backward time), its direction kept."""
    scale = loss_scale if callable(loss_scale) else (lambda: loss_scale)
    return _Bound.apply(x, torch.as_tensor(max_norm, dtype=torch.float32, device=x.device).detach(), scale)


def source_pull(source_loss: Tensor, features: Tensor) -> Tensor:
    """The norm of the source loss's gradient at the features (one backward through the head only)."""
    if not source_loss.requires_grad:
        return torch.zeros((), device=features.device)
    (g,) = torch.autograd.grad(source_loss, features, retain_graph=True, allow_unused=True)
    return torch.zeros((), device=features.device) if g is None else g.detach().float().norm()


def ramp(progress: float, gamma: float = 10.0) -> float:
    """The adaptation weight's ramp-up, the DANN schedule 2 / (1 + exp(-gamma p)) - 1 (0 -> ~1): early
    on the features are random and the alignment has nothing meaningful to align."""
    return dann_schedule(progress, gamma)


class Progress:
    """The step counter behind the ramps and reversal schedules; saved with run checkpoints so a
    resumed run continues the schedule instead of restarting it from zero."""

    def __init__(self, total: int):
        self.step, self.total = 0, max(1, total)
        self.peak_pull = 0.0     # the largest source-loss gradient norm at the features seen so far
        self.loss_scale = 1.0    # the grad scaler's factor at this step's backward (fp16); 1 otherwise

    def limit(self, source_pull: Tensor, ratio: float) -> Tensor:
        """`ratio` times the larger of the source loss's pull now and its peak so far: while the source
        task is being learned the adaptation cannot out-pull it; once it is learned (its gradient near
        zero) the adaptation keeps the pull the source task had, not zero."""
        self.peak_pull = max(self.peak_pull, float(source_pull))
        return ratio * torch.clamp(source_pull, min=self.peak_pull)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total)

    def state_dict(self) -> dict:
        return {"step": self.step, "peak_pull": self.peak_pull}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.peak_pull = int(state["step"]), float(state["peak_pull"])


def check_source_score(method: str, score: float, reference: float | None, higher_is_better: bool,
                       num_classes: int | None, margin: float = 0.1) -> str | None:
    """A warning (also logged) when `method`'s selected source validation score is more than `margin`
    worse than the source-only model's `reference`, or, with no reference, a classifier within 1.5x
    of chance; None when the score looks healthy."""
    message = None
    if reference is not None and score == score:
        worse = reference - score if higher_is_better else score - reference
        if worse > margin:
            message = (f"{method}: source validation score {score:.3f} is {worse:.3f} worse than source-only's "
                       f"{reference:.3f}; the adaptation term drowned the source task: lower its weight")
    elif num_classes and num_classes > 1 and higher_is_better and score < 1.5 / num_classes:
        message = (f"{method}: source validation score {score:.3f} is near chance ({1 / num_classes:.3f}); "
                   f"the source task was not learned: lower the method's weight")
    if message:
        log.warning(message)
    return message
