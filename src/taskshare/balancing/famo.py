from __future__ import annotations

import torch
from torch import Tensor

from ..errors import TaskshareError
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("famo")
@balancer_dataclass
class FAMO(Balancer):
    """FAMO, fast adaptive multitask optimisation (Liu, Liang, Stone & Liu, NeurIPS 2023): the model
    steps along sum_t c z_t / L_t grad L_t with z = softmax(xi) and c = 1 / sum_t (z_t / L_t) (one
    backward, like loss weighting); after the step, the observed log-loss decreases
    delta = log L(before) - log L(after) train the logits: xi <- Adam(xi, J_softmax(xi)^T delta +
    gamma xi), so tasks whose loss fell least gain weight. `extra_forward` re-evaluates the same batch
    after the step (the paper's rule: one extra forward pass per step); off, the next batch's losses
    are used instead (no extra cost, a noisier signal). `min_loss` is a lower bound of every task loss
(0 for the usual losses; FAMO works on L - min_loss). Logits and their Adam state are buffers, saved
    with checkpoints. A task absent from a batch (no known label) takes no part in that step: the
    weights are the softmax over the present tasks' logits, and its own logit, Adam moments and Adam
    step count stay: each task counts its own updates, so its bias correction counts only the steps
    it took part in (a task first labelled late starts with the full correction of a first step)."""

    name = "famo"
    needs = "losses"
    lr: float = 0.025
    gamma: float = 0.001
    extra_forward: bool = True
    num_tasks: int = 2
    min_loss: float = 0.0
    eps: float = 1e-8

    def setup(self) -> None:
        if self.lr <= 0 or self.gamma < 0:
            raise TaskshareError(f"famo: lr must be > 0 and gamma >= 0, got lr={self.lr!r}, gamma={self.gamma!r}")
        T = self.num_tasks
        self.register_buffer("logits", torch.zeros(T))
        self.register_buffer("adam_m", torch.zeros(T))
        self.register_buffer("adam_v", torch.zeros(T))
        self.register_buffer("adam_steps", torch.zeros(T, dtype=torch.long))   # per task: its own updates
        self.register_buffer("previous", torch.zeros(T))

    def current_weights(self) -> Tensor:
        return torch.softmax(self.logits, 0)

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        return self._objective(losses, None)

    def present_loss(self, losses: Tensor, step: int, history: list[Tensor], present: Tensor) -> Tensor:
        return self._objective(losses, present)

    def _objective(self, losses: Tensor, present: Tensor | None) -> Tensor:
        """FAMO on the present tasks alone: an absent task's logit, its previous loss and its Adam
        state stay as they were, and the others' weights are the softmax over the present logits."""
        if len(losses) != self.num_tasks:
            raise TaskshareError(f"famo: built for {self.num_tasks} tasks, got {len(losses)} losses")
        if not self.extra_forward and bool((self.previous > 0).all()):
            self.observe(losses.detach(), present)
        keep = _kept(present)
        D = (losses[keep] - self.min_loss).clamp_min(0) + self.eps
        z = torch.softmax(self.logits[keep], 0).to(losses.dtype)
        c = 1.0 / (z / D.detach()).sum()
        self.previous[keep] = D.detach().float()
        return (c * z * torch.log(D)).sum()

    @torch.no_grad()
    def observe(self, losses_after: Tensor, present: Tensor | None = None) -> None:
        """One update of the logits from the losses after the model's step (the present tasks' only)."""
        keep = _kept(present)
        logits, m, v = self.logits[keep], self.adam_m[keep], self.adam_v[keep]   # views when every task is present
        delta = torch.log(self.previous[keep]) - torch.log(
            (losses_after.float()[keep] - self.min_loss).clamp_min(0) + self.eps)
        z = torch.softmax(logits, 0)
        grad = z * (delta - z @ delta) + self.gamma * logits
        self.adam_steps[keep] += 1
        b1, b2 = 0.9, 0.999
        m.mul_(b1).add_(grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        steps = self.adam_steps[keep].tolist()
        m_hat, v_hat = m / _bias_correction(b1, steps, m), v / _bias_correction(b2, steps, v)
        logits.sub_(self.lr * m_hat / (v_hat.sqrt() + 1e-8))
        self.logits[keep], self.adam_m[keep], self.adam_v[keep] = logits, m, v   # copies back (a subset)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint written while the step count was shared holds one scalar: every task took part
        # in every one of those updates, so each task's count is that scalar
        key = prefix + "adam_steps"
        if key in state_dict and state_dict[key].dim() == 0:
            state_dict[key] = state_dict[key].expand(self.num_tasks).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def observes_step(self) -> bool:
        return self.extra_forward

    def losses_before_step(self) -> Tensor:
        return self.previous


def _kept(present: Tensor | None):
    """The entries to read and update: every task (a slice, so in-place updates reach the buffers)
    or the present ones."""
    return slice(None) if present is None else present.nonzero().squeeze(1)


def _bias_correction(beta: float, steps: list[int], like: Tensor) -> float | Tensor:
    """Adam's 1 - beta^k for each task's count k. One Python number when the counts agree (every task
    present from the start): the same arithmetic as a single shared count, bit for bit (on CUDA a
    scalar divisor is applied as a product with its reciprocal, a tensor one as a division)."""
    if len(set(steps)) == 1:
        return 1 - beta ** steps[0]
    return torch.tensor([1 - beta ** k for k in steps], dtype=like.dtype, device=like.device)
