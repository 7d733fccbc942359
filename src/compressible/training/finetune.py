"""The sparse finetune after one-shot pruning (CrAM Sec. 4.2 and App. D, Table 5's "one-shot
oBERT + fine-tune"): the pruned model is trained "with the fixed sparsity mask and Adam
optimizer", the embeddings frozen, for at most 2 epochs.

It is the run's own training (task loss, batches, schedule, step: ``train_step``) with method
``masked``, whose mask is the pruned model's zeros, for the entry's ``finetune.epochs``. The
paper's early stopping is left out: one model per level, taken after its last epoch.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch
from torch import nn

from ..config import Config, Method, OneShot
from ..device import memory_format
from ..evaluate import oneshot_run
from ..models import freeze
from ..runs import Experiment, Run, RunSpec
from ..tasks import Task
from .distributed import Processes
from .loop import build_optimizer, build_scheduler, train_step


def finetune_spec(cfg: Config, run: Run, entry: OneShot) -> RunSpec:
    """The run's spec with method ``masked`` (the entry's params) and the finetune's epochs and
    label smoothing (the run's where it gives none)."""
    spec, finetune = Experiment(cfg).spec(run), entry.finetune
    smoothing = spec.training.label_smoothing if finetune.label_smoothing is None else finetune.label_smoothing
    training = dataclasses.replace(spec.training, epochs=finetune.epochs, label_smoothing=smoothing)
    method = Method(f"{run.method} + fine-tune", "masked", dict(finetune.params), finetune.epochs)
    return dataclasses.replace(spec, method=method, training=training, prunable=entry.prunable or cfg.prunable)


def finetune_run(cfg: Config, run: Run, checkpoint: str | Path, data_path: str | Path, operator: str,
                 out: str | Path) -> None:
    """The oneshot job of ``operator`` with each pruned model finetuned before it is measured;
    one JSON file, its levels marked ``"finetune": true``."""
    tune = functools.partial(sparse_finetune, spec=finetune_spec(cfg, run, cfg.entry(operator)))
    oneshot_run(cfg, run, checkpoint, data_path, operator, out, tune)


def sparse_finetune(model: nn.Module, splits, task: Task, spec: RunSpec) -> nn.Module:
    """Train the pruned ``model`` in place, its zeros in the prunable tensors kept at +0.0; the
    data order and dropout are seeded by the run, so each level's finetune is reproducible on
    its own. Returns the model in eval mode."""
    training, device = spec.training, next(model.parameters()).device
    torch.manual_seed(spec.run.seed)
    freeze(model, spec.arch.name, training.freeze)
    optimizer = build_optimizer(spec, model)  # the mask: the prunable tensors' zeros now
    scheduler = build_scheduler(spec, optimizer, len(splits.train_labels) // training.batch_size, [])
    order, processes = torch.Generator().manual_seed(spec.run.seed), Processes(0, 1, device)
    layout = memory_format(device, model)
    model.train()
    for _ in range(training.epochs):
        for batch in task.train_batches(splits, training.batch_size, order, training.augment):
            train_step(model, optimizer, scheduler, batch, processes, False, training.precision, layout,
                       task, training.label_smoothing)
    return model.eval()
