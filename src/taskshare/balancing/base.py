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
                  layer_grads: Tensor | None = None, global_losses: Tensor | None = None) -> Tensor:
        """`layer_grads` (T, *layer shape): each task's gradient on the last shared layer, for methods
        that declare `needs_layer_gradients`; `global_losses`: the losses over the whole batch when
        several processes share it (default: `losses`)."""
        _check_vector(losses, "losses")
        if not self.needs_layer_gradients:
            return self.loss(losses, step, history or [])
        if layer_grads is None or len(layer_grads) != len(losses):
            raise TaskshareError(f"{self.name}: needs each task's gradient on the last shared layer (layer_grads=, "
                                 f"one per task); train it through fit_multitask or a Balancing with model=")
        return self.layer_loss(losses, layer_grads, losses.detach() if global_losses is None else global_losses)

    def task_weights(self, gramian: Tensor) -> Tensor:
        if gramian.dim() != 2 or gramian.shape[0] != gramian.shape[1]:
            raise TaskshareError(f"{self.name}: expected a square (T, T) Gramian, got shape {tuple(gramian.shape)}")
        w = self.weights(gramian.double()).to(gramian.dtype)
        _check_vector(w, f"{self.name} weights")
        return w

    def direction(self, grads: Tensor) -> Tensor:
        if grads.dim() != 2:
            raise TaskshareError(f"{self.name}: expected a (tasks, parameters) gradient matrix, got {tuple(grads.shape)}")
        if self.needs == "gramian":
            return self.task_weights(grads @ grads.T) @ grads
        return self.combine(grads)

    # --- what subclasses implement ----------------------------------------------------------
    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        return losses.sum()

    def layer_loss(self, losses: Tensor, layer_grads: Tensor, global_losses: Tensor) -> Tensor:
        raise NotImplementedError

    def weights(self, gramian: Tensor) -> Tensor:
        raise NotImplementedError

    def combine(self, grads: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def observes_step(self) -> bool:
        """True when the method learns from the same batch's losses after the optimizer step."""
        return False

    def observe(self, losses_after: Tensor) -> None:
        """The task losses after the optimizer step (methods that declare `observes_step`)."""

    def losses_before_step(self) -> Tensor:
        """The task losses the last step started from, in the form `observe` compares them with: a
        trainer whose batch after the step lacks task t's labels passes entry t as that task's loss,
        which observe reads as no change (methods that declare `observes_step`)."""
        raise NotImplementedError(f"{self.name} does not observe steps (observes_step is False)")

    def extra_repr(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))  # type: ignore[arg-type]

    __repr__ = nn.Module.__repr__


def _check_vector(v: Tensor, what: str) -> None:
    if v.dim() != 1:
        raise TaskshareError(f"{what}: expected one value per task, got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise TaskshareError(f"{what} has NaN/Inf: {v.tolist()}")


BALANCERS: Registry[type[Balancer]] = Registry("balancing method", Balancer)


def balancer_dataclass(cls):
    """@dataclass that keeps nn.Module's __init__ chain working (eq=False keeps modules hashable)."""
    return dataclass(eq=False, repr=False)(cls)
