"""Domain adaptation: same task, shifted inputs, unlabelled target data."""
from . import cdan, dann, simple  # noqa: F401  (registers the methods)
from .base import ADAPTERS, DomainMethod, method_dataclass
from .cdan import CDAN
from .dann import DANN
from .grl import GradientReversal, dann_schedule, reverse_gradient
from .losses import coral, entropy, minimum_class_confusion, multi_kernel_mmd, pseudo_label
from .shift import domain_weights, proxy_a_distance
from .simple import CORAL, DAN, MCC, Entropy, PseudoLabel
from .train import PairedLoader, build_method, fit_adaptation

__all__ = ["ADAPTERS", "CDAN", "CORAL", "DAN", "DANN", "MCC", "DomainMethod", "Entropy", "GradientReversal",
           "PairedLoader", "PseudoLabel", "build_method", "coral", "dann_schedule", "domain_weights", "entropy",
           "fit_adaptation", "method_dataclass", "minimum_class_confusion", "multi_kernel_mmd", "proxy_a_distance",
           "pseudo_label", "reverse_gradient"]
