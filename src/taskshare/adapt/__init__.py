"""Domain adaptation: same task, shifted inputs, unlabelled target data."""
# registers the methods, in the order the reports list them
from . import dann, cdan, simple, jan, mdd, mcd, afn, bsp, pada  # noqa: F401, I001
from .afn import AFN, adaptive_feature_norm
from .base import ADAPTERS, DomainMethod, method_dataclass
from .bsp import BSP, batch_spectral_penalty
from .cdan import CDAN
from .dann import DANN
from .grl import GradientReversal, dann_schedule, reverse_gradient
from .jan import JAN, joint_mmd
from .losses import (coral, entropy, gaussian_kernels, information_maximization, minimum_class_confusion, multi_kernel_mmd,
                     pseudo_label)
from .mcd import MCD, classifier_discrepancy
from .mdd import MDD, margin_disparity
from .pada import PADA
from .safety import bound_gradient, check_source_score, ramp
from .selection import dev_score, importance_weighted_loss, iwv_score
from .shift import domain_weights, proxy_a_distance
from .shot import centroid_pseudo_labels, fit_source_free
from .simple import CORAL, DAN, MCC, Entropy, PseudoLabel
from .train import PairedLoader, build_method, fit_adaptation

__all__ = ["ADAPTERS", "AFN", "BSP", "CDAN", "CORAL", "DAN", "DANN", "JAN", "MCC", "MCD", "MDD", "PADA", "DomainMethod",
           "Entropy", "GradientReversal", "PairedLoader", "PseudoLabel", "adaptive_feature_norm",
           "batch_spectral_penalty", "bound_gradient", "build_method", "centroid_pseudo_labels", "check_source_score",
           "classifier_discrepancy", "coral", "dann_schedule", "dev_score", "domain_weights", "entropy",
           "fit_adaptation", "fit_source_free", "gaussian_kernels", "importance_weighted_loss",
           "information_maximization", "iwv_score", "joint_mmd", "margin_disparity", "method_dataclass",
           "minimum_class_confusion", "multi_kernel_mmd", "proxy_a_distance", "pseudo_label", "ramp",
           "reverse_gradient"]
