"""Where each dataset's files must be and which dataset keys fit it: the checks that read no
tensor, torch-free (the Snakefile asks ``missing_files`` at parse time)."""
from __future__ import annotations

from pathlib import Path

from .checksums import missing_root

STREAMED = {"imagenet", "imagefolder"}
TEXT = {"squad"}  # tokenized text: no image keys; the files and the tokenizer folder are checked
TEXT_KEYS = ("tokenizer", "max_seq_length", "doc_stride", "sha256")
# SQuAD v1.1's official files, the tokenizer folder's files and CrAM App. D's windows
SQUAD_FILES = {"train": "train-v1.1.json", "dev": "dev-v1.1.json"}
MAX_SEQ_LENGTH, DOC_STRIDE = 384, 128  # CrAM App. D
TOKENIZER_FILES = ("config.json", "vocab.txt")


def dataset_root(cfg: dict) -> Path:
    """``dataset.root`` with ``train/`` and ``val/`` class folders; never downloaded."""
    if "root" not in cfg:
        raise ValueError(f"config key 'dataset.root': required for {cfg['name']!r}, the folder holding "
                         "train/<class>/ and val/<class>/ (it is never downloaded)")
    root = Path(cfg["root"])
    for split in ("", "train", "val"):
        if not (root / split).is_dir():
            raise missing_root("dataset.root", root / split, "expected train/<class>/ and val/<class>/ folders")
        if split and not any(p.is_dir() for p in (root / split).iterdir()):
            raise FileNotFoundError(f"config key 'dataset.root': {root / split} holds no class folders "
                                    "(ILSVRC-2012's val images must be sorted into <wnid>/ folders)")
    return root


def squad_files(cfg: dict) -> dict[str, Path]:
    root = Path(cfg.get("root", "resources/data/squad"))
    return {split: root / name for split, name in SQUAD_FILES.items()}


def squad_missing(cfg: dict) -> str | None:
    """What is missing to prepare SQuAD with ``cfg`` (None when nothing is)."""
    if "tokenizer" not in cfg:
        return "config key 'dataset.tokenizer': required for squad (the BERT folder whose tokenizer is used)"
    folder = Path(cfg["tokenizer"])
    absent = [str(folder / f) for f in TOKENIZER_FILES if not (folder / f).is_file()]
    if absent:
        return f"config key 'dataset.tokenizer': {', '.join(absent)} does not exist (a Transformers BERT folder)"
    for path in squad_files(cfg).values():
        if not path.is_file():
            return str(missing_root("dataset.root", path, "the official SQuAD v1.1 JSON files belong there"))
    return None


def missing_files(cfg: dict) -> str | None:
    """Why a streamed dataset's folders, or a text dataset's files, cannot be read here (None
    when they can, or for the other datasets): the message its preparation will stop with."""
    if cfg["name"] in TEXT:
        return squad_missing(cfg)
    if cfg["name"] not in STREAMED or "root" not in cfg:
        return None
    try:
        dataset_root(cfg)
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
        dataset_root(cfg)
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
        raise ValueError(squad_missing(cfg))
    length, stride = cfg.get("max_seq_length", MAX_SEQ_LENGTH), cfg.get("doc_stride", DOC_STRIDE)
    if stride >= length:
        raise ValueError(f"config key 'dataset.doc_stride': {stride} must be less than max_seq_length {length}")
    if check_files and squad_missing(cfg):
        raise FileNotFoundError(squad_missing(cfg))
