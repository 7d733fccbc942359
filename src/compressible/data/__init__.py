"""Datasets (registered by name), in-memory splits and seeded batches."""
from __future__ import annotations

from pathlib import Path

from ..registry import DATASETS
from . import sources  # noqa: F401  (registration)
from .batches import calibration_batches, test_batches, train_batches
from .splits import ImageSplits, sha256

__all__ = ["ImageSplits", "calibration_batches", "test_batches", "train_batches", "build_splits", "load_splits", "sha256"]


def build_splits(dataset_cfg: dict) -> ImageSplits:
    """Materialize the config's dataset (download if allowed), whole."""
    root = Path(dataset_cfg.get("root", "resources/data"))
    return DATASETS.get(dataset_cfg["name"])(root, dataset_cfg.get("download", True))


def load_splits(path: str | Path, dataset_cfg: dict) -> ImageSplits:
    """The prepared dataset at ``path`` cut to the experiment's configured subsets.

    Subsets are cut here, not when preparing, so experiments share one prepared file.
    """
    splits = ImageSplits.load(path)
    return splits.subset(dataset_cfg.get("train_subset"), dataset_cfg.get("test_subset"))
