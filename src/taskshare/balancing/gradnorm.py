from __future__ import annotations

import torch
from torch import Tensor, nn

from ..distributed import mean_across
from ..errors import TaskshareError
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("gradnorm")
@balancer_dataclass
class GradNorm(Balancer):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018): learned loss weights w_t whose
    weighted gradient norms on the last shared layer, G_t = |grad_W w_t L_t|, are pulled toward
    mean(G) r_t^alpha, r_t being task t's relative inverse training rate (L_t / L_t(0), divided by its
    mean over tasks): tasks that lag get larger weights. The weights are trained by the L1 gap, with
    the target held constant, and renormalised to sum to T before every step; they and L_t(0) are
    saved with checkpoints. Costs T extra backward passes through the heads and that one layer."""

    name = "gradnorm"
    needs = "losses"
    reduces_itself = True   # several processes: reads its local graph, averages the layer gradients itself
    alpha: float = 1.5
    num_tasks: int = 2

    def setup(self) -> None:
        if self.alpha < 0:
            raise TaskshareError(f"gradnorm: alpha must be >= 0, got {self.alpha!r}")
        self.loss_weights = nn.Parameter(torch.ones(self.num_tasks))
        self.register_buffer("initial_losses", torch.zeros(self.num_tasks))
        self.layer: list[Tensor] = []

    def attach(self, model: nn.Module) -> None:
        """Pick the last shared layer's weight (the last trainable trunk parameter with 2+ dims)."""
        trunk = getattr(model, "trunk", None)
        if trunk is None:
            raise TaskshareError(f"gradnorm needs a shared trunk (a HardSharing model), got {type(model).__name__}")
        weights = [p for p in trunk.parameters() if p.requires_grad and p.dim() >= 2]
        if not weights:
            raise TaskshareError("gradnorm: the trunk has no trainable weight matrix to measure gradients on")
        self.layer = [weights[-1]]

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        if len(losses) != self.num_tasks:
            raise TaskshareError(f"gradnorm: built for {self.num_tasks} tasks, got {len(losses)} losses")
        if not self.layer:
            raise TaskshareError("gradnorm: no shared layer attached; train it through fit_multitask")
        share = getattr(self, "share", 1.0)      # this process's share of the global batch (set by the trainer)
        seen = mean_across(losses.detach(), share)   # the global losses when there are several processes
        with torch.no_grad():
            w = self.loss_weights
            w.clamp_(min=1e-6).mul_(self.num_tasks / w.sum())
            if not bool((self.initial_losses > 0).all()):
                self.initial_losses.copy_(torch.where(self.initial_losses > 0, self.initial_losses,
                                                      seen.float().clamp_min(1e-12)))
        w = self.loss_weights.to(losses.dtype)
        norms = torch.stack([mean_across(self._layer_grad(loss), share).norm() for loss in losses]).detach()
        weighted_norms = w * norms
        rate = seen / self.initial_losses.to(losses.dtype)
        target = (weighted_norms.mean() * (rate / rate.mean().clamp_min(1e-12)) ** self.alpha).detach()
        gradnorm_loss = (weighted_norms - target).abs().sum()
        return (w.detach() * losses).sum() + gradnorm_loss

    def _layer_grad(self, loss: Tensor) -> Tensor:
        """d loss / d (last shared layer); zeros where the loss does not reach it."""
        grad = torch.autograd.grad(loss, self.layer, retain_graph=True, allow_unused=True)[0] \
            if loss.requires_grad else None
        return torch.zeros_like(self.layer[0]) if grad is None else grad
