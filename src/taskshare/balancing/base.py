"""The balancing contract. A method is pure math over what it declares it needs:

- needs = "losses": `loss(losses, step, history)` returns the scalar to differentiate (loss
  weighting; stateful methods own their parameters and buffers, created in __init__). A method that
  also reads each task's gradient on the last shared layer (GradNorm) declares
  `needs_layer_gradients` and implements `layer_loss`; the trainer measures those gradients.
- needs = "gramian": `weights(gramian)` returns task weights w; the update is w @ G.
- needs = "gradients": `combine(G)` returns the update direction over the shared parameters.

A method never calls backward(), never writes .grad and never touches the optimizer; the trainer
computes only what the method declares. Across processes the trainer supplies the reduction the
method declares (`across_processes`), so no method talks to a process group. A method that learns
from the effect of a step declares `observes_step`, gets `observe(losses_after)` and gives
`losses_before_step()` (a task the batch after the step lacks is filled from it). Inputs are
checked once here, for every subclass.

A task with no known label in a batch is absent: the trainer passes `present`, a (T,) bool mask, and
the method then behaves as it would on the present tasks alone. Loss weighting: the absent task adds
exactly zero, and neither moves the other tasks' weights nor its own state; by default `loss` runs on
the present tasks' losses and history (right for every method without per-task state), and a method
with per-task state implements `present_loss`. Gradient methods receive the present tasks' rows only,
with the mask, for a method whose state is per task (`present_weights`); one present task gets its
own gradient, whatever the method, and none gets a zero update (zero rows, no weights).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from ..registry import Registry

NEEDS = ("losses", "gramian", "gradients")
# "linearise": the trainer evaluates the objective at the global losses and weights each process's
# losses by its slope there (exact for any objective); "inputs": the trainer hands the method global
# inputs (losses, layer gradients) and the objective is linear in the local losses.
ACROSS_PROCESSES = ("linearise", "inputs")


class Balancer(nn.Module):
    """Base class; subclasses are dataclasses (hyperparameters as typed fields, echoed by repr)."""

    name: ClassVar[str] = ""
    needs: ClassVar[str] = "losses"
    representation_ok: ClassVar[bool] = True  # may run on gradients w.r.t. shared features
    needs_layer_gradients: ClassVar[bool] = False   # each task's gradient on the last shared layer
    across_processes: ClassVar[str] = "linearise"   # see ACROSS_PROCESSES

    def __post_init__(self) -> None:
        nn.Module.__init__(self)
        self.setup()

    def setup(self) -> None:
        """Create parameters and buffers (stateful methods)."""

    # --- checked entry points, used by the trainer -------------------------------------------
    def task_loss(self, losses: Tensor, step: int = 0, history: list[Tensor] | None = None,
                  layer_grads: Tensor | None = None, global_losses: Tensor | None = None,
                  present: Tensor | None = None) -> Tensor:
        """`layer_grads` (T, *layer shape): each task's gradient on the last shared layer, for methods
        that declare `needs_layer_gradients`; `global_losses`: the losses over the whole batch when
        several processes share it (default: `losses`); `present`: (T,) bool, False for a task with no
        known label in the batch (default: every task present)."""
        _check_vector(losses, "losses")
        present = check_present(present, len(losses), self.name)
        if present is not None and not bool(present.any()):
            return losses.sum() * 0.0          # no task labelled: nothing to weigh, no state moves
        if not self.needs_layer_gradients:
            if present is None:
                return self.loss(losses, step, history or [])
            return self.present_loss(losses, step, history or [], present)
        if layer_grads is None or len(layer_grads) != len(losses):
            raise TaskshareError(f"{self.name}: needs each task's gradient on the last shared layer (layer_grads=, "
                                 f"one per task); train it through fit_multitask or a Balancing with model=")
        seen = losses.detach() if global_losses is None else global_losses
        if present is None:    # a method written before `present` existed keeps working
            return self.layer_loss(losses, layer_grads, seen)
        return self.layer_loss(losses, layer_grads, seen, present)

    def task_weights(self, gramian: Tensor, present: Tensor | None = None, rounding: float | None = None) -> Tensor:
        """Weights for the present tasks' Gramian (every task's without `present`). `rounding`: the
        relative precision of the products it was computed from (default: its own dtype's); a trainer
        that accumulates float32 products in float64 passes float32's."""
        if gramian.dim() != 2 or gramian.shape[0] != gramian.shape[1]:
            raise TaskshareError(f"{self.name}: expected a square (T, T) Gramian, got shape {tuple(gramian.shape)}")
        present = check_present(present, None, self.name)
        if present is not None and int(present.sum()) != gramian.shape[0]:
            raise TaskshareError(f"{self.name}: {int(present.sum())} tasks present but a Gramian of "
                                 f"{gramian.shape[0]}; expected one row per present task")
        if gramian.shape[0] == 0:
            return gramian.new_zeros(0)        # no task labelled: no weight to give, a zero update
        if present is not None and gramian.shape[0] == 1:
            return gramian.new_ones(1)         # one task labelled: its own gradient, nothing to balance
        if rounding is None:
            rounding = torch.finfo(gramian.dtype).eps if gramian.is_floating_point() else 0.0
        w = self.solve_weights(gramian.double(), present, rounding).to(gramian.dtype)
        _check_vector(w, f"{self.name} weights")
        return w

    def direction(self, grads: Tensor, present: Tensor | None = None) -> Tensor:
        """The update from the present tasks' gradients (every task's without `present`)."""
        if grads.dim() != 2:
            raise TaskshareError(f"{self.name}: expected a (tasks, parameters) gradient matrix, got {tuple(grads.shape)}")
        if len(grads) == 0:
            check_present(present, None, self.name)
            return grads.new_zeros(grads.shape[1])   # no task labelled: nothing moves
        if self.needs == "gramian":
            return self.task_weights(grads @ grads.T, present) @ grads
        if present is not None and len(grads) == 1:
            return grads[0].clone()
        return self.combine(grads)

    # --- what subclasses implement ----------------------------------------------------------
    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        return losses.sum()

    def present_loss(self, losses: Tensor, step: int, history: list[Tensor], present: Tensor) -> Tensor:
        """The objective when some tasks are absent: the method on the present tasks alone (their
        losses, their entries of the loss history). A method with per-task state overrides this."""
        keep = present.nonzero().squeeze(1)
        return self.loss(losses[keep], step, [h.to(keep.device)[keep] for h in history])

    def solve_weights(self, gramian: Tensor, present: Tensor | None, rounding: float) -> Tensor:
        """Weights for a float64 Gramian; `rounding`: the relative precision it was computed in (a float32
        Gramian's entries are exact only to about 1e-7 of |g_i| |g_j|), for a method that reads quantities
        so small that this matters (CAGrad's |g_w| where the hull nearly holds the origin)."""
        if present is None or bool(present.all()):
            return self.weights(gramian)
        return self.present_weights(gramian, present)

    def present_weights(self, gramian: Tensor, present: Tensor) -> Tensor:
        """Weights for the present tasks' Gramian; a method with per-task state overrides this."""
        return self.weights(gramian)

    def layer_loss(self, losses: Tensor, layer_grads: Tensor, global_losses: Tensor,
                   present: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def weights(self, gramian: Tensor) -> Tensor:
        raise NotImplementedError

    def combine(self, grads: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def observes_step(self) -> bool:
        """True when the method learns from the same batch's losses after the optimizer step."""
        return False

    def observe(self, losses_after: Tensor, present: Tensor | None = None) -> None:
        """The task losses after the optimizer step (methods that declare `observes_step`); `present`
        marks the tasks the step's batch labelled."""

    def losses_before_step(self) -> Tensor:
        """The task losses the last step started from, in the form `observe` compares them with: a
        trainer whose batch after the step lacks task t's labels passes entry t as that task's loss,
        which observe reads as no change (methods that declare `observes_step`)."""
        raise NotImplementedError(f"{self.name} does not observe steps (observes_step is False)")

    def extra_repr(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))  # type: ignore[arg-type]

    __repr__ = nn.Module.__repr__


def check_present(present: Tensor | None, num_tasks: int | None, name: str) -> Tensor | None:
    """`present` as a bool vector (one entry per task), or None when every task is present."""
    if present is None:
        return None
    present = torch.as_tensor(present)
    if present.dim() != 1 or present.dtype != torch.bool or (num_tasks is not None and len(present) != num_tasks):
        want = f"{num_tasks} " if num_tasks is not None else ""
        raise TaskshareError(f"{name}: present must be a bool vector of {want}entries (one per task), got "
                             f"{present.dtype} of shape {tuple(present.shape)}")
    return present


def _check_vector(v: Tensor, what: str) -> None:
    if v.dim() != 1:
        raise TaskshareError(f"{what}: expected one value per task, got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise TaskshareError(f"{what} has NaN/Inf: {v.tolist()}")


BALANCERS: Registry[type[Balancer]] = Registry("balancing method", Balancer)


def balancer_dataclass(cls):
    """@dataclass that keeps nn.Module's __init__ chain working (eq=False keeps modules hashable)."""
    return dataclass(eq=False, repr=False)(cls)
