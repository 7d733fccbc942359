"""BERT for extractive question answering (CrAM Sec. 4.2, App. D: bert-base-uncased on SQuAD v1.1).

The pretrained model is a local Transformers folder (``archs[i].pretrained``; the
``bert-base-uncased`` layout: config.json, vocab.txt, model.safetensors), loaded with
``BertForQuestionAnswering``: the encoder's pretrained weights and a new span head (two logits
per token), drawn from the run's seeded generator. Nothing is downloaded. A checkpoint keeps the
folder's config beside the weights, so it rebuilds without the folder.

``transformers`` is imported inside the builders only: the workflow parses without it.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..registry import MODELS

FOLDER_FILES = ("config.json", "model.safetensors")
# Parts a config may freeze (``training.freeze``): the name -> the module, as the model names it.
FREEZABLE = {"embeddings": "bert.embeddings"}


def check_folder(folder: str | Path | None, key: str = "archs.pretrained") -> Path:
    """The folder, or a FileNotFoundError naming the config key and what is missing."""
    if not folder:
        raise FileNotFoundError(f"config key '{key}': bert needs a Transformers model folder "
                                "(e.g. models/bert-base-uncased with config.json and model.safetensors)")
    folder = Path(folder)
    absent = [str(folder / f) for f in FOLDER_FILES if not (folder / f).is_file()]
    if absent:
        raise FileNotFoundError(f"config key '{key}': {', '.join(absent)} does not exist "
                                "(a Transformers BERT folder, e.g. bert-base-uncased)")
    return folder


@MODELS.register("bert")
def bert(num_classes=None, in_channels=None, width=None, *, pretrained=None, config=None) -> nn.Module:
    """BertForQuestionAnswering from the folder ``pretrained``, or untrained from a ``config``
    mapping (a checkpoint's). The image arguments do not apply: their defaults only."""
    if width is not None:
        raise ValueError("config key 'archs.width': bert has no width setting (its folder's config.json sets it)")
    from transformers import BertConfig, BertForQuestionAnswering
    from transformers.utils import logging

    logging.disable_progress_bar()  # job logs hold the project's lines, not a loading bar
    if config is not None:
        return BertForQuestionAnswering(BertConfig.from_dict(config))
    folder = check_folder(pretrained)
    return BertForQuestionAnswering.from_pretrained(str(folder), local_files_only=True)


def checkpoint_arch(model: nn.Module) -> dict:
    """What rebuilds the model from its checkpoint: the name and the folder's config."""
    return {"name": "bert", "width": None, "config": model.config.to_dict()}


bert.task = "question_answering"
bert.pretrained_folder = True  # ``pretrained`` is the folder the model is built from
bert.freezable = FREEZABLE
bert.checkpoint_arch = checkpoint_arch
