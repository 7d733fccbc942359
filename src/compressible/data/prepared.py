"""Preparing, saving and loading a dataset's splits; importing this module registers every
dataset (the DATASETS registry's owner)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..registry import DATASETS
from . import cifar, fashion_mnist, folders, sources, squad, tiny_imagenet  # noqa: F401  (registration)
from .checksums import IntegrityError
from .files import check_dataset_config
from .folders import StreamingSplits
from .splits import ImageSplits, sha256


def build_splits(dataset_cfg: dict) -> ImageSplits | StreamingSplits:
    """Materialize the config's dataset (download if allowed and possible): the images of an
    in-memory dataset, the file index of a streamed one."""
    builder = DATASETS.get(dataset_cfg["name"])
    check_dataset_config(dataset_cfg)
    return builder(dataset_cfg)


def load_splits(path: str | Path, dataset_cfg: dict) -> ImageSplits | StreamingSplits:
    """The prepared dataset at ``path`` for one experiment: cut to its configured subsets, with
    its normalization (``mean``, ``std``) and crop padding where the config overrides them.

    Subsets and overrides are applied here, not when preparing, so experiments share one file.
    """
    verify_prepared(path)
    payload = torch.load(path, weights_only=True)
    if squad.is_prepared(payload):
        splits = squad.from_payload(payload)
    elif folders.is_index(payload):
        splits = folders.from_index(payload, dataset_cfg)
    else:
        splits = with_overrides(ImageSplits(**payload), dataset_cfg)
    return splits.subset(dataset_cfg.get("train_subset"), dataset_cfg.get("test_subset"))


def save_prepared(splits: ImageSplits | StreamingSplits, path: str | Path, provenance: dict | None = None) -> str:
    """Write the prepared dataset atomically and, beside it, its sha256 (with ``provenance``),
    which every later load verifies; returns the sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    digest = splits.save(tmp)
    tmp.replace(path)
    info = dict(provenance or {}, sha256=digest, train=len(splits.train_labels), test=len(splits.test_labels))
    info_tmp = path.with_name(path.stem + ".json.partial")
    info_tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    info_tmp.replace(path.with_suffix(".json"))
    return digest


def verify_prepared(path: str | Path) -> None:
    """The prepared file must be the one its provenance describes (flipped bytes never train)."""
    path = Path(path)
    info = path.with_suffix(".json")
    rebuild = f"delete {path} and {info} and rerun the workflow to prepare it again"
    try:
        expected = json.loads(info.read_text())["sha256"]
    except (OSError, ValueError, KeyError) as err:
        raise IntegrityError(f"{info}: no readable sha256 for {path} ({err}); {rebuild}") from None
    if sha256(path) != expected:
        raise IntegrityError(f"{path}: sha256 differs from the one recorded in {info}; {rebuild}")


def with_overrides(splits: ImageSplits, cfg: dict) -> ImageSplits:
    changes = {k: tuple(cfg[k]) for k in ("mean", "std") if k in cfg}
    if "crop_padding" in cfg:
        changes["crop_padding"] = cfg["crop_padding"]
    for key in ("mean", "std"):
        if key in changes and len(changes[key]) != splits.in_channels:
            raise ValueError(f"config key 'dataset.{key}': {len(changes[key])} values for "
                             f"{splits.in_channels} image channels")
    return dataclasses.replace(splits, **changes) if changes else splits
