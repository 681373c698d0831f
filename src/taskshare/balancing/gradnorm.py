from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("gradnorm")
@balancer_dataclass
class GradNorm(Balancer):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018): learned loss weights w_t whose
    weighted gradient norms on the last shared layer, G_t = |grad_W w_t L_t|, are pulled toward
    mean(G) r_t^alpha, r_t being task t's relative inverse training rate (L_t / L_t(0), divided by its
    mean over tasks): tasks that lag get larger weights. The weights are trained by the L1 gap, with
    the target held constant, and renormalised to sum to T (each clamped to >= 1e-6 first) before every
    step.
    L_t(0) is task t's first observed loss (a task absent from the first batches gets it from its
    first labelled one); until then, and in a batch without its labels, the task takes no part in the
    norm balancing and its weight stays at its value as of the last step it was present: its gradient
    is zero, but the optimizer's momentum (AdamW, as the trainer builds it) would move it still, so that
    move is undone before the renormalisation, which leaves an absent weight as it is and rescales the
    present ones to the rest of T. The weights, L_t(0) and the held values are saved with
    checkpoints. The trainer measures the layer gradients (T extra backward passes through the heads
    and that one layer) and, with several processes, hands over their global means."""

    name = "gradnorm"
    needs = "losses"
    needs_layer_gradients = True
    across_processes = "inputs"   # the target and norms need the global losses and layer gradients
    alpha: float = 1.5
    num_tasks: int = 2

    def setup(self) -> None:
        if self.alpha < 0:
            raise TaskshareError(f"gradnorm: alpha must be >= 0, got {self.alpha!r}")
        self.loss_weights = nn.Parameter(torch.ones(self.num_tasks))
        self.register_buffer("initial_losses", torch.zeros(self.num_tasks))
        # the weights as the last call left them, and which tasks had taken part in any call since
        # the optimizer last moved them: an absent task's move by the next step is undone from these
        self.register_buffer("held_weights", torch.ones(self.num_tasks))
        self.register_buffer("held_present", torch.ones(self.num_tasks, dtype=torch.bool))

    def layer_loss(self, losses: Tensor, layer_grads: Tensor, global_losses: Tensor,
                   present: Tensor | None = None) -> Tensor:
        if len(losses) != self.num_tasks:
            raise TaskshareError(f"gradnorm: built for {self.num_tasks} tasks, got {len(losses)} losses")
        seen = global_losses.detach()
        observed = seen > 0 if present is None else present.to(seen.device) & (seen > 0)
        with torch.no_grad():
            self._hold_absent(present)
            _renormalise(self.loss_weights, present)
            self.held_weights.copy_(self.loss_weights)
            if not bool((self.initial_losses > 0).all()):
                # L_t(0) is each task's first observed loss; an absent task (or a zero loss, which
                # no ratio can start from) waits for its first labelled batch
                first = observed.to(self.initial_losses.device) & ~(self.initial_losses > 0)
                self.initial_losses.copy_(torch.where(first, seen.float(), self.initial_losses))
        # only tasks observed now and before take part in the norm balancing; the others keep their
        # weights (an absent task's loss is zero anyway)
        active = observed & (self.initial_losses > 0).to(observed.device)
        w = self.loss_weights.to(losses.dtype)
        weighted = (w.detach() * losses).sum()
        if not bool(active.any()):
            return weighted
        keep = active.nonzero().squeeze(1)
        norms = torch.stack([layer_grads[i].norm() for i in keep.tolist()]).detach()
        weighted_norms = w[keep] * norms
        rate = seen[keep] / self.initial_losses.to(losses.dtype)[keep]
        target = (weighted_norms.mean() * (rate / rate.mean().clamp_min(1e-12)) ** self.alpha).detach()
        gradnorm_loss = (weighted_norms - target).abs().sum()
        return weighted + gradnorm_loss

    def _hold_absent(self, present: Tensor | None) -> None:
        """Undo what the optimizer did to the weights of tasks absent since its last step. Unchanged
        weights mean no step was taken since the last call (gradient accumulation: several batches
        per step), so the tasks present in any of those batches are counted together."""
        w, now = self.loss_weights, torch.ones_like(self.held_present)
        if present is not None:
            now = present.to(now.device)
        if torch.equal(w, self.held_weights):
            self.held_present |= now
            return
        absent = ~self.held_present
        w[absent] = self.held_weights[absent]
        self.held_present.copy_(now)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint written before the held values existed: its weights as they are, nothing to undo
        if prefix + "loss_weights" in state_dict and prefix + "held_weights" not in state_dict:
            state_dict[prefix + "held_weights"] = state_dict[prefix + "loss_weights"].detach().clone()
            state_dict[prefix + "held_present"] = torch.ones(self.num_tasks, dtype=torch.bool)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _renormalise(w: Tensor, present: Tensor | None) -> None:
    """The weights back to a total of T after the optimizer's step, in place, each clamped to >= 1e-6
    first (a weight at or below zero would silence or invert its task). An absent task's weight stays as it is
    (it takes no part in this step), but for that floor; the present tasks' weights are rescaled to
    share what the absent ones leave of T, i.e. what they summed to before the update."""
    T = len(w)
    if present is not None:
        present = present.to(w.device)
    if present is None or bool(present.all()):
        w.clamp_(min=1e-6).mul_(T / w.sum())
        return
    w[~present] = w[~present].clamp(min=1e-6)
    kept = w[present].clamp(min=1e-6)
    share = T - w[~present].sum()
    if share <= 1e-6 * len(kept):
        # the absent weights alone reach T (one grew past it on a step where it was present): no
        # positive share is left, so every weight is rescaled, as with every task present
        w.clamp_(min=1e-6).mul_(T / w.sum())
        return
    w[present] = kept * (share / kept.sum())
