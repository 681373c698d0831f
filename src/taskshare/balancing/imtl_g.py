from __future__ import annotations

import torch
from torch import Tensor

from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("imtl_g")
@balancer_dataclass
class IMTLG(Balancer):
    """IMTL-G (Liu et al., ICLR 2021): the weights (summing to 1) for which the update has equal
    projections on every task's unit gradient. From the Gramian: with M[i, j] = g_j . u_i (u the unit
    gradients), solve M w = c 1 and sum(w) = 1 for (w, c). This is the paper's closed form, written
    symmetrically in the tasks; its minimum-norm solution also covers the degenerate case of
    identical gradients (equal weights)."""

    name = "imtl_g"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        if T == 1:
            return gramian.new_ones(1)
        norms = gramian.diagonal().clamp_min(1e-30).sqrt()
        M = gramian / norms.unsqueeze(1)  # M[i, j] = g_i . g_j / |g_i| = u_i . g_j
        A = torch.zeros(T + 1, T + 1, dtype=gramian.dtype, device=gramian.device)
        A[:T, :T], A[:T, T], A[T, :T] = M, -1.0, 1.0
        b = torch.zeros(T + 1, 1, dtype=gramian.dtype, device=gramian.device)
        b[T] = 1.0
        return torch.linalg.lstsq(A, b, driver="gelsd" if A.device.type == "cpu" else None).solution[:T, 0]
