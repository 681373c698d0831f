from __future__ import annotations

import torch
from torch import Tensor

from .base import BALANCERS, Balancer, balancer_dataclass


@BALANCERS.register("aligned_mtl")
@balancer_dataclass
class AlignedMTL(Balancer):
    """Aligned-MTL (Senushkin et al., CVPR 2023): make the task gradients orthogonal and of equal norm
    by setting every singular value of G to the smallest one, G' = sigma_min U V^T, then take the mean.
    In the Gramian's eigenbasis K = U diag(lambda) U^T this is w = sqrt(lambda_min) U diag(lambda^-1/2)
    U^T (1/T); directions with zero eigenvalue (linearly dependent tasks) are dropped, and all-zero
    gradients give a zero update."""

    name = "aligned_mtl"
    needs = "gramian"

    def weights(self, gramian: Tensor) -> Tensor:
        T = gramian.shape[0]
        lam, U = torch.linalg.eigh(gramian)
        keep = lam > lam.max().clamp_min(1e-30) * 1e-10
        lam, U = lam[keep], U[:, keep]
        if len(lam) == 0:               # every task gradient is zero: nothing to align, no update
            return gramian.new_zeros(T)
        mean = gramian.new_full((T,), 1.0 / T)
        return lam.min().sqrt() * (U @ ((U.T @ mean) / lam.sqrt()))
