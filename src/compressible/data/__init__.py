"""Datasets (registered by name), in-memory or streamed splits and seeded batches."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..registry import DATASETS
from . import cifar, fashion_mnist, folders, sources, squad, tiny_imagenet  # noqa: F401  (registration)
from .batches import calibration_batches, test_batches, train_batches
from .checksums import IntegrityError
from .folders import StreamingSplits
from .splits import ImageSplits, sha256

__all__ = ["ImageSplits", "StreamingSplits", "calibration_batches", "test_batches", "train_batches",
           "build_splits", "load_splits", "save_prepared", "sha256"]


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


STREAMED = {"imagenet", "imagefolder"}
TEXT = {"squad"}  # tokenized text: no image keys; the files and the tokenizer folder are checked
TEXT_KEYS = ("tokenizer", "max_seq_length", "doc_stride", "sha256")


def missing_files(cfg: dict) -> str | None:
    """Why a streamed dataset's folders, or a text dataset's files, cannot be read here (None
    when they can, or for the other datasets): the message its preparation will stop with."""
    if cfg["name"] in TEXT:
        return squad.missing(cfg)
    if cfg["name"] not in STREAMED or "root" not in cfg:
        return None
    try:
        folders.dataset_root(cfg)
    except FileNotFoundError as err:
        return str(err)
    return None


def check_dataset_config(cfg: dict, check_files: bool = True) -> None:
    """What the schema cannot see, checked before any job runs (the message names the key).

    ``check_files=False`` leaves the existence of a streamed dataset's folders to its preparation,
    so that a dry run, or a check on a submit host without the data, needs only the config.
    """
    name = cfg["name"]
    if name in STREAMED and (check_files or missing_files(cfg) is None):
        folders.dataset_root(cfg)
    if name in TEXT:
        check_text_config(cfg, check_files)
        return
    for key in TEXT_KEYS:
        if key in cfg:
            raise ValueError(f"config key 'dataset.{key}': only for {', '.join(sorted(TEXT))}, not {name!r}")
    for key in ("image_size", "workers"):
        if key in cfg and name not in STREAMED:
            raise ValueError(f"config key 'dataset.{key}': only for {', '.join(sorted(STREAMED))}, not {name!r}")
    if "crop_padding" in cfg and name in STREAMED:
        raise ValueError(f"config key 'dataset.crop_padding': {name!r} uses RandomResizedCrop, not padded crops")
    if ("mean" in cfg) != ("std" in cfg) or len(cfg.get("mean", ())) != len(cfg.get("std", ())):
        raise ValueError("config keys 'dataset.mean' and 'dataset.std': give both, one value per channel")


def check_text_config(cfg: dict, check_files: bool) -> None:
    """SQuAD's keys: no image keys, a window longer than its stride, its files when asked."""
    image_keys = [k for k in ("mean", "std", "crop_padding", "image_size", "workers") if k in cfg]
    if image_keys:
        raise ValueError(f"config key 'dataset.{image_keys[0]}': an image setting; {cfg['name']!r} is text "
                         f"(allowed: {', '.join(TEXT_KEYS)}, root, train_subset, test_subset)")
    if "tokenizer" not in cfg:
        raise ValueError(squad.missing(cfg))
    length, stride = cfg.get("max_seq_length", squad.MAX_SEQ_LENGTH), cfg.get("doc_stride", squad.DOC_STRIDE)
    if stride >= length:
        raise ValueError(f"config key 'dataset.doc_stride': {stride} must be less than max_seq_length {length}")
    if check_files and squad.missing(cfg):
        raise FileNotFoundError(squad.missing(cfg))
