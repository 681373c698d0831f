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
    def forward(ctx, x: Tensor, max_norm: Tensor, max_sum: Tensor, loss_scale: Callable[[], float]) -> Tensor:
        ctx.save_for_backward(max_norm, max_sum)
        ctx.loss_scale = loss_scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        max_norm, max_sum = ctx.saved_tensors
        # under fp16 the gradient arriving here is the scaled loss's (x 2**16, say); the limit was
        # measured on the unscaled loss, so it is scaled alike, read now: the scaler may have moved
        factor = float(ctx.loss_scale())
        g = grad.float()
        scale = torch.clamp(max_norm * factor / g.norm().clamp_min(1e-12), max=1.0)
        if max_sum.isfinite():
            scale = torch.minimum(scale, max_sum * factor / g.sum(0).norm().clamp_min(1e-12))
        return grad * scale.to(grad.dtype), None, None, None


def bound_gradient(x: Tensor, max_norm: Tensor | float, loss_scale: Callable[[], float] | float = 1.0,
                   max_sum: Tensor | float = float("inf")) -> Tensor:
    """Identity forward; backward, the gradient reaching `x` through this branch is rescaled so its
    (Frobenius) norm is at most `max_norm` times `loss_scale` (the factor the loss is multiplied by
    before backward, a grad scaler's; a callable is read at backward time), its direction kept, and
    so is the norm of its sum over the batch (dim 0) at most `max_sum` times `loss_scale`.

    Why the sum: the parameters below `x` receive the rows' gradients summed. A gradient spread evenly
    and coherently over 2n rows (an alignment term's) adds up to about sqrt(2n) times what a gradient
    of the same Frobenius norm concentrated on a few rows (a source loss near convergence: the
    misclassified samples) does, so a bound on the Frobenius norm alone let the alignment out-pull
    the source task at the parameters while staying under the limit at the features."""
    scale = loss_scale if callable(loss_scale) else (lambda: loss_scale)
    as_tensor = lambda v: torch.as_tensor(v, dtype=torch.float32, device=x.device).detach()   # noqa: E731
    return _Bound.apply(x, as_tensor(max_norm), as_tensor(max_sum), scale)


def source_gradient(source_loss: Tensor, *at: Tensor) -> list[Tensor]:
    """The source loss's gradient at each of `at` (the features, the logits: one backward through the
    head only), detached; zeros where the loss does not depend on one."""
    if not source_loss.requires_grad:
        return [torch.zeros_like(x, dtype=torch.float32) for x in at]
    grads = torch.autograd.grad(source_loss, list(at), retain_graph=True, allow_unused=True)
    return [torch.zeros_like(x, dtype=torch.float32) if g is None else g.detach().float() for x, g in zip(at, grads)]


def source_pull(source_loss: Tensor, features: Tensor) -> Tensor:
    """The norm of the source loss's gradient at the features."""
    return source_gradient(source_loss, features)[0].norm()


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
        self.peaks: dict[str, list[float]] = {}   # limits(): per place, the peak norm and the peak batch-sum norm
        self.loss_scale = 1.0    # the grad scaler's factor at this step's backward (fp16); 1 otherwise

    def limit(self, source_pull: Tensor, ratio: float) -> Tensor:
        """`ratio` times the larger of the source loss's pull now and its peak so far: while the source
        task is being learned the adaptation cannot out-pull it; once it is learned (its gradient near
        zero) the adaptation keeps the pull the source task had, not zero."""
        self.peak_pull = max(self.peak_pull, float(source_pull))
        return ratio * torch.clamp(source_pull, min=self.peak_pull)

    def limits(self, source_grad: Tensor, ratio: float, where: str = "features") -> tuple[Tensor, Tensor]:
        """(max_norm, max_sum) for `bound_gradient` at `where`: `ratio` times the larger of the source
        gradient's norm there now and its peak so far, and the same for the norm of its sum over the
        batch, each peak kept per place."""
        now = [source_grad.norm(), source_grad.sum(0).norm()]
        peaks = self.peaks.setdefault(where, [0.0, 0.0])
        for i, value in enumerate(now):
            peaks[i] = max(peaks[i], float(value))
        return ratio * torch.clamp(now[0], min=peaks[0]), ratio * torch.clamp(now[1], min=peaks[1])

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total)

    def state_dict(self) -> dict:
        return {"step": self.step, "peak_pull": self.peak_pull, "peaks": {k: list(v) for k, v in self.peaks.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.peak_pull = int(state["step"]), float(state["peak_pull"])
        self.peaks = {k: [float(a), float(b)] for k, (a, b) in state.get("peaks", {}).items()}   # absent before the sum bound


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
