"""Data sources, one reader per file, registered by name: the same in YAML and Python.

    from taskshare.data.sources import read_source
    data = read_source({"image_folder": "photos", "image_size": 96})
    data = read_source({"csv": "table.csv", "labels": ["colour", "size"]})
"""
from . import csv, hf_dataset, image_folder, jsonl, npz, parquet  # noqa: F401  (each registers its reader)
from .base import SOURCES, SourceData, read_source
from .images import ImageFiles, decode, scan

__all__ = ["ImageFiles", "SOURCES", "SourceData", "decode", "read_source", "scan"]
