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
    with checkpoints."""

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
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("previous", torch.zeros(T))

    def current_weights(self) -> Tensor:
        return torch.softmax(self.logits, 0)

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        if len(losses) != self.num_tasks:
            raise TaskshareError(f"famo: built for {self.num_tasks} tasks, got {len(losses)} losses")
        if not self.extra_forward and bool((self.previous > 0).all()):
            self.observe(losses.detach())
        D = (losses - self.min_loss).clamp_min(0) + self.eps
        z = self.current_weights().to(losses.dtype)
        c = 1.0 / (z / D.detach()).sum()
        self.previous.copy_(D.detach().float())
        return (c * z * torch.log(D)).sum()

    @torch.no_grad()
    def observe(self, losses_after: Tensor) -> None:
        """One update of the logits from the losses after the model's step."""
        delta = torch.log(self.previous) - torch.log((losses_after.float() - self.min_loss).clamp_min(0) + self.eps)
        z = self.current_weights()
        grad = z * (delta - z @ delta) + self.gamma * self.logits
        self.adam_steps += 1
        b1, b2 = 0.9, 0.999
        self.adam_m.mul_(b1).add_(grad, alpha=1 - b1)
        self.adam_v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        k = float(self.adam_steps)
        m_hat, v_hat = self.adam_m / (1 - b1 ** k), self.adam_v / (1 - b2 ** k)
        self.logits.sub_(self.lr * m_hat / (v_hat.sqrt() + 1e-8))

    @property
    def observes_step(self) -> bool:
        return self.extra_forward

    def losses_before_step(self) -> Tensor:
        return self.previous
