"""Loss weighting and gradient balancing: one small module per method, registered by name."""
from .aligned_mtl import AlignedMTL
from .base import BALANCERS, NEEDS, Balancer
from .cagrad import CAGrad
from .config_method import ConFIG
from .dualproj import DualProj
from .fairgrad import FairGrad
from .graddrop import GradDrop
from .imtl_g import IMTLG
from .jacobian import (feature_gradients, gramian_of, per_task_grads, sequential_jacobian, shared_jacobian,
                       write_grads, write_weighted)
from .loss_weighting import DWA, GLS, IMTLL, RLW, Equal, Fixed, LogScale, Uncertainty
from .mgda import MGDA
from .nash_mtl import NashMTL
from .pcgrad import PCGrad
from .upgrad import UPGrad

__all__ = ["BALANCERS", "DWA", "GLS", "IMTLL", "AlignedMTL", "CAGrad", "ConFIG", "DualProj", "Equal", "FairGrad", "GradDrop", "NashMTL", "Fixed", "IMTLG", "LogScale", "MGDA", "NEEDS", "PCGrad", "RLW", "UPGrad", "Balancer",
           "Uncertainty", "feature_gradients", "gramian_of", "per_task_grads", "write_weighted", "sequential_jacobian", "shared_jacobian", "write_grads"]
