"""Loss-weighting methods: each returns the scalar the trainer differentiates once."""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ..errors import TaskshareError
from .base import BALANCERS, Balancer, balancer_dataclass


@balancer_dataclass
class _LearnedPerTask(Balancer):
    """A loss weighting with one learned number per task, zero at the start, trained with the model.
    `learned` names the parameter: its attribute and its state_dict key, the one saved checkpoints
    hold, so each method keeps its own name."""

    learned: ClassVar[str] = ""
    num_tasks: int = 2

    def setup(self) -> None:
        setattr(self, self.learned, nn.Parameter(torch.zeros(self.num_tasks)))

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        self._check_size(losses)
        return self.weigh(losses, getattr(self, self.learned).to(losses.dtype))

    def present_loss(self, losses: Tensor, step: int, history: list[Tensor], present: Tensor) -> Tensor:
        # an absent task's learned value is left out of the objective: it gets no gradient at all
        self._check_size(losses)
        keep = present.nonzero().squeeze(1)
        return self.weigh(losses[keep], getattr(self, self.learned).to(losses.dtype)[keep])

    def _check_size(self, losses: Tensor) -> None:
        if len(losses) != self.num_tasks:
            raise TaskshareError(f"{self.name}: built for {self.num_tasks} tasks, got {len(losses)} losses")

    def weigh(self, losses: Tensor, s: Tensor) -> Tensor:
        """The scalar to differentiate, from the losses and the learned values `s` in their dtype."""
        raise NotImplementedError


@BALANCERS.register("equal")
@balancer_dataclass
class Equal(Balancer):
    """Sum of task losses, every weight 1: the baseline every method is compared with."""

    name = "equal"


@BALANCERS.register("fixed")
@balancer_dataclass
class Fixed(Balancer):
    """User weights, in task order."""

    name = "fixed"
    values: list[float] = None  # type: ignore[assignment]

    def setup(self) -> None:
        if not self.values or any(w < 0 for w in self.values):
            raise TaskshareError(f"fixed: weights must be a non-empty list of numbers >= 0, got {self.values!r}")

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        return (losses * self._values(losses)).sum()

    def present_loss(self, losses: Tensor, step: int, history: list[Tensor], present: Tensor) -> Tensor:
        keep = present.nonzero().squeeze(1)
        return (losses[keep] * self._values(losses)[keep]).sum()

    def _values(self, losses: Tensor) -> Tensor:
        if len(self.values) != len(losses):
            raise TaskshareError(f"fixed: {len(self.values)} weights for {len(losses)} tasks")
        return losses.new_tensor(self.values)


@BALANCERS.register("uncertainty")
@balancer_dataclass
class Uncertainty(_LearnedPerTask):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018): sum_t exp(-s_t) L_t + s_t
    with learned log-variances s_t (created for the number of tasks, trained with the model)."""

    name = "uncertainty"
    learned = "log_vars"

    def weigh(self, losses: Tensor, s: Tensor) -> Tensor:
        return (torch.exp(-s) * losses + s).sum()


@BALANCERS.register("dwa")
@balancer_dataclass
class DWA(Balancer):
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019): w_t = T softmax(r_t / temperature),
    r_t = L_t(epoch-1) / L_t(epoch-2) from the per-epoch mean losses; 1 for the first two epochs, and
    for a task whose history has a gap (no labelled batch in one of those epochs: NaN)."""

    name = "dwa"
    temperature: float = 2.0

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        if len(history) < 2:
            return losses.sum()
        ratio = torch.nan_to_num(history[-1].to(losses) / history[-2].to(losses).clamp_min(1e-12), nan=1.0)
        w = len(losses) * torch.softmax(ratio / self.temperature, 0)
        return (w.detach() * losses).sum()


@BALANCERS.register("rlw")
@balancer_dataclass
class RLW(Balancer):
    """Random loss weighting (Lin et al., TMLR 2022): w = softmax(z), z ~ N(0, I) drawn every step from
    the global generator (seeded by the trainer), scaled to sum to T."""

    name = "rlw"

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        w = len(losses) * torch.softmax(torch.randn(len(losses), device=losses.device, dtype=losses.dtype), 0)
        return (w * losses).sum()


@BALANCERS.register("gls")
@balancer_dataclass
class GLS(Balancer):
    """Geometric loss strategy (Chennupati et al., CVPR-W 2019): the geometric mean of the task losses,
    (prod_t L_t)^(1/T), computed in log space; insensitive to each loss's scale."""

    name = "gls"

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        return torch.exp(torch.log(losses.clamp_min(1e-12)).mean())


@BALANCERS.register("imtl_l")
@balancer_dataclass
class IMTLL(_LearnedPerTask):
    """IMTL-L (Liu et al., ICLR 2021): learned scales, sum_t exp(s_t) L_t - s_t, which drives every
    scaled loss toward 1 (the loss half of IMTL)."""

    name = "imtl_l"
    learned = "scales"

    def weigh(self, losses: Tensor, s: Tensor) -> Tensor:
        return (torch.exp(s) * losses - s).sum()


@BALANCERS.register("log_scale")
@balancer_dataclass
class LogScale(Balancer):
    """DB-MTL's loss-scale balancing (Lin et al., 2023): sum_t log(L_t + eps), so every task's gradient
    is divided by its own loss and scale differences between tasks vanish."""

    name = "log_scale"
    eps: float = 1e-8

    def loss(self, losses: Tensor, step: int, history: list[Tensor]) -> Tensor:
        return torch.log(losses + self.eps).sum()
