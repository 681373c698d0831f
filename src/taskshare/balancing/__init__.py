"""Loss weighting and gradient balancing: one small module per method, registered by name."""
from .aligned_mtl import AlignedMTL
from .base import BALANCERS, NEEDS, Balancer, balancer_dataclass
from .build import build_balancer
from .cagrad import CAGrad
from .config_method import ConFIG
from .dualproj import DualProj
from .fairgrad import FairGrad
from .famo import FAMO
from .graddrop import GradDrop
from .gradnorm import GradNorm
from .gradvac import GradVac
from .imtl_g import IMTLG
from .jacobian import (Buffers, feature_gradients, gramian_of, per_task_grads, sequential_jacobian, shared_jacobian,
                       write_grads, write_weighted)
from .loss_weighting import DWA, GLS, IMTLL, RLW, Equal, Fixed, LogScale, Uncertainty
from .mgda import MGDA
from .nash_mtl import NashMTL
from .pcgrad import PCGrad
from .upgrad import UPGrad
from .drop_in import Balancing, backward, graph_leaves, shared_leaves  # after the methods: it builds them

__all__ = ["BALANCERS", "Buffers", "DWA", "GLS", "IMTLL", "AlignedMTL", "CAGrad", "ConFIG", "DualProj", "Equal", "FAMO", "FairGrad", "GradDrop", "GradNorm", "GradVac", "NashMTL", "Fixed", "IMTLG", "LogScale", "MGDA", "NEEDS", "PCGrad", "RLW", "UPGrad", "Balancer",
           "Uncertainty", "balancer_dataclass", "Balancing", "backward", "build_balancer", "graph_leaves", "shared_leaves", "feature_gradients", "gramian_of", "per_task_grads", "write_weighted", "sequential_jacobian", "shared_jacobian", "write_grads"]
