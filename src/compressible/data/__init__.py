"""Datasets (registered by name), in-memory or streamed splits and seeded batches.

Importing the package reads no tensor module: the Snakefile asks ``missing_files`` at parse
time without torch. The splits, batches and prepared files load on first use (PEP 562); the
datasets register when ``prepared`` is imported (the DATASETS registry does it on first use).
"""
from __future__ import annotations

import importlib

from .checksums import IntegrityError
from .files import STREAMED, TEXT, TEXT_KEYS, check_dataset_config, check_text_config, missing_files

_LAZY = {  # name -> the submodule that defines it
    "ImageSplits": "splits", "sha256": "splits", "StreamingSplits": "folders",
    "calibration_batches": "batches", "test_batches": "batches", "train_batches": "batches",
    "build_splits": "prepared", "load_splits": "prepared", "save_prepared": "prepared",
    "verify_prepared": "prepared", "with_overrides": "prepared",
}

__all__ = ["IntegrityError", "STREAMED", "TEXT", "TEXT_KEYS", "check_dataset_config", "check_text_config",
           "missing_files", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
