"""What a trainer plugs into train_loop, declared in one place: every hook has a default that leaves
plain training as it is, so the loop calls each one unconditionally instead of probing for it."""
from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn


class LoopHooks:
    """The default hooks; a trainer (BalancedStep, adaptation) overrides the ones it needs.

    `parameters`: trained along with the model (a balancing or adaptation method's own weights);
    `state`: named objects with state_dict / load_state_dict that run checkpoints keep."""

    def __init__(self, parameters: Sequence[Tensor] = (), state: dict[str, Any] | None = None):
        self._parameters, self._state = list(parameters), dict(state or {})

    def parameters(self) -> list[Tensor]:
        return self._parameters

    def state(self) -> dict[str, Any]:
        return self._state

    def backward(self, loss: Tensor, parts: dict[str, Tensor], scale: float = 1.0) -> None:
        """Write this micro-batch's gradients into .grad. `scale`: a grad scaler's factor (fp16), by
        which the written gradients are multiplied, for the scaler to unscale."""
        (loss * scale if scale != 1.0 else loss).backward()

    def after_step(self, model: nn.Module, x: Any, y: Any) -> None:
        """Runs after each optimizer step, on the same batch (methods that learn from a step's effect)."""

    def end_epoch(self, record: dict) -> None:
        """Runs at each epoch end with its record, before the caller's callbacks."""
