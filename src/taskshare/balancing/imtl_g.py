from __future__ import annotations

import torch
from torch import Tensor

from .base import BALANCERS, Balancer, balancer_dataclass

# A task whose squared gradient norm is below this share of the largest one has no direction (a task
# with no known label in the batch has exactly zero): its unit gradient is undefined, so it takes no part.
ZERO_SHARE = 1e-20


@BALANCERS.register("imtl_g")
@balancer_dataclass
class IMTLG(Balancer):
    """IMTL-G (Liu et al., ICLR 2021): the weights (summing to 1) for which the update has equal
    projections on every task's unit gradient. From the Gramian: with M[i, j] = g_j . u_i (u the unit
    gradients), solve M w = c 1 and sum(w) = 1 for (w, c). This is the paper's closed form, written
    symmetrically in the tasks; its minimum-norm solution also covers the degenerate case of
    identical gradients (equal weights).

    Tasks with a zero gradient get weight 0 and the others are solved alone: a zero row would
    otherwise force c = 0 (its projection is 0 whatever the update) and with it a zero update."""

    name = "imtl_g"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        sq = gramian.diagonal()
        live = sq > ZERO_SHARE * sq.max().clamp_min(0)
        if not bool(live.any()):
            return gramian.new_full((T,), 1.0 / T)     # every gradient zero: any weights give 0
        out = gramian.new_zeros(T)
        out[live] = _equal_projection_weights(gramian[live][:, live])
        return out


def _equal_projection_weights(gramian: Tensor) -> Tensor:
    T = gramian.shape[0]
    if T == 1:
        return gramian.new_ones(1)
    norms = gramian.diagonal().sqrt()
    M = gramian / norms.unsqueeze(1)  # M[i, j] = g_i . g_j / |g_i| = u_i . g_j
    A = torch.zeros(T + 1, T + 1, dtype=gramian.dtype, device=gramian.device)
    A[:T, :T], A[:T, T], A[T, :T] = M, -1.0, 1.0
    b = torch.zeros(T + 1, 1, dtype=gramian.dtype, device=gramian.device)
    b[T] = 1.0
    return torch.linalg.lstsq(A, b, driver="gelsd" if A.device.type == "cpu" else None).solution[:T, 0]
