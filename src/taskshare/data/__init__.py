"""Data in from arrays, tensors or Datasets; splits; loaders; bundled benchmark builders."""
from .arrays import ArrayDataset, as_tensor, check_finite, labels_of, to_dataset
from .loaders import TensorLoader, make_loader
from .splits import Splits, few_shot, per_class, split, stratified_indices

__all__ = ["ArrayDataset", "Splits", "TensorLoader", "as_tensor", "check_finite", "few_shot", "labels_of",
           "make_loader", "per_class", "split", "stratified_indices", "to_dataset"]
