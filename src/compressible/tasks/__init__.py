"""Tasks: what a training step's loss and an evaluation's metrics are for one kind of dataset.

A dataset names its task (``task`` on its registered builder; image datasets are
``classification``), so a config selects a task by its dataset and the DAG stays the same:
prepare -> train -> one-shot -> aggregate. A task gives the batches, the loss, the evaluation
({metric: value}, loss) and its metric names (the first is the one tables and figures show).
"""
from __future__ import annotations

from ..registry import DATASETS, TASKS
from . import classification, question_answering  # noqa: F401  (registration)
from .base import Task

__all__ = ["Task", "task_of", "task_of_dataset"]


def task_of_dataset(name: str) -> Task:
    """The task of the registered dataset ``name`` (classification for a name the registry does
    not hold: splits handed over directly, as tests do; the config check refuses such names)."""
    builder = DATASETS.get(name) if name in DATASETS else None
    return TASKS.get(getattr(builder, "task", "classification"))


def task_of(dataset_cfg: dict) -> Task:
    return task_of_dataset(dataset_cfg["name"])
