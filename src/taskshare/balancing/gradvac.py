from __future__ import annotations

import torch
from torch import Tensor

from ..errors import TaskshareError
from .base import BALANCERS, Balancer, balancer_dataclass
from .pcgrad import adjust_in_turn


@BALANCERS.register("gradvac")
@balancer_dataclass
class GradVac(Balancer):
    """Gradient Vaccine (Wang, Tsvetkov, Firat & Cao, ICLR 2021): each task gradient g_i, in turn, is
    moved toward every other g_j (random order) whose cosine phi_ij falls below a target phi^_ij, by
    g_i += |g_i| (phi^ sqrt(1 - phi^2) - phi sqrt(1 - phi^^2)) / (|g_j| sqrt(1 - phi^^2)) g_j, which
    sets their cosine to the target exactly; the targets follow the observed cosines by an exponential
    moving average (rate `beta`, from 0). PCGrad is the special case of a fixed target 0. Computed in
    the Gramian's coordinates over the whole shared parameter vector; the targets are saved with
    checkpoints. In a step some tasks are absent from, only the pairs of present tasks act and move."""

    name = "gradvac"
    needs = "gramian"
    beta: float = 0.01
    num_tasks: int = 2

    def setup(self) -> None:
        if not 0 <= self.beta <= 1:
            raise TaskshareError(f"gradvac: beta must be in [0, 1], got {self.beta!r}")
        self.register_buffer("targets", torch.zeros(self.num_tasks, self.num_tasks, dtype=torch.float64))

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        if T != self.num_tasks:
            raise TaskshareError(f"gradvac: built for {self.num_tasks} tasks, got {T}")
        return self.present_weights(gramian, None)

    def present_weights(self, gramian: Tensor, present: Tensor | None) -> Tensor:
        """The present tasks' pairs only: an absent task's targets neither act nor move."""
        if present is not None and len(present) != self.num_tasks:
            raise TaskshareError(f"gradvac: built for {self.num_tasks} tasks, got a mask of {len(present)}")
        keep = slice(None) if present is None else present.nonzero().squeeze(1).to(self.targets.device)
        pairs = (keep, keep) if present is None else (keep[:, None], keep[None, :])
        targets = self.targets[pairs].to(gramian)
        norms = gramian.diagonal().clamp_min(1e-30).sqrt()

        def move_toward_target(c: Tensor, i: int, j: int) -> None:
            norm_i = (c @ gramian @ c).clamp_min(1e-30).sqrt()
            cos = (c @ gramian[:, j]) / (norm_i * norms[j])
            target = targets[i, j]
            if cos < target:
                c[j] += norm_i * (target * (1 - cos ** 2).clamp_min(0).sqrt()
                                  - cos * (1 - target ** 2).clamp_min(0).sqrt()) \
                    / (norms[j] * (1 - target ** 2).clamp_min(1e-30).sqrt())
            targets[i, j] = (1 - self.beta) * target + self.beta * cos

        total = adjust_in_turn(gramian, move_toward_target)
        self.targets[pairs] = targets.to(self.targets)
        return total
