"""Loss weighting and gradient balancing: one small module per method, registered by name. Pure math:
the trainer (taskshare.train: fit_multitask, or Balancing in your own loop) computes what a method
declares it needs and writes .grad."""
from .aligned_mtl import AlignedMTL
from .base import ACROSS_PROCESSES, BALANCERS, NEEDS, Balancer, balancer_dataclass
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
from .loss_weighting import DWA, GLS, IMTLL, RLW, Equal, Fixed, LogScale, Uncertainty
from .mgda import MGDA
from .nash_mtl import NashMTL
from .pcgrad import PCGrad
from .upgrad import UPGrad

__all__ = ["ACROSS_PROCESSES", "BALANCERS", "DWA", "GLS", "IMTLL", "AlignedMTL", "CAGrad", "ConFIG", "DualProj", "Equal", "FAMO", "FairGrad", "GradDrop", "GradNorm", "GradVac", "NashMTL", "Fixed", "IMTLG", "LogScale", "MGDA", "NEEDS", "PCGrad", "RLW", "UPGrad", "Balancer",
           "Uncertainty", "balancer_dataclass", "build_balancer"]
