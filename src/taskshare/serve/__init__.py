"""Using a run's result: load it, predict on new files, export it with its preprocessing inside."""
from .export import export
from .load import LoadedRun, load
from .predict import predict_rows, write_predictions

__all__ = ["LoadedRun", "export", "load", "predict_rows", "write_predictions"]
