"""Loss weighting and gradient balancing: one small module per method, registered by name."""
from .base import BALANCERS, NEEDS, Balancer
from .imtl_g import IMTLG
from .jacobian import feature_gradients, sequential_jacobian, shared_jacobian, write_grads
from .loss_weighting import DWA, RLW, Equal, Fixed, Uncertainty
from .mgda import MGDA
from .pcgrad import PCGrad
from .upgrad import UPGrad

__all__ = ["BALANCERS", "DWA", "Equal", "Fixed", "IMTLG", "MGDA", "NEEDS", "PCGrad", "RLW", "UPGrad", "Balancer",
           "Uncertainty", "feature_gradients", "sequential_jacobian", "shared_jacobian", "write_grads"]
