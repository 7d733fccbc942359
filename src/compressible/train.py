"""One training run: (dataset, arch, method, seed) -> checkpoint + provenance JSON.

Every optimizer is driven the same way, ``optimizer.step(closure)``: one-pass methods (SGD, SFW)
call the closure once, two-pass methods (SAM, CrAM) twice, asking for frozen BatchNorm
statistics in the perturbed pass. So the loop has no per-batch branching on the method.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .bn import frozen_bn_stats
from .checkpoint import save_checkpoint
from .compress.prunable import prunable_parameters
from .data import ImageSplits, load_splits, train_batches
from .evaluate import evaluate
from .models import build_arch
from .optim.schedules import lr_factor
from .provenance import provenance, write_json_atomic
from .registry import METHODS
from .runs import RunSpec
from .runtime import make_deterministic


def model_for(spec: RunSpec, splits: ImageSplits) -> nn.Module:
    """The run's architecture at its width, with its ``pretrained`` weights when given."""
    return build_arch(dataclasses.asdict(spec.arch), splits.num_classes, splits.in_channels)


def make_closure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer):
    """Forward + backward on one batch; ``track_bn_stats=False`` leaves BN running stats alone."""
    def closure(track_bn_stats: bool = True) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=False)
        if track_bn_stats:
            loss = F.cross_entropy(model(x), y)
        else:
            with frozen_bn_stats(model):
                loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    return closure


def build_optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    prunable = prunable_parameters(model, spec.prunable)
    return METHODS.get(spec.method.name)(model, prunable, seed=spec.run.seed, **spec.method.params)


def build_scheduler(spec: RunSpec, optimizer, steps_per_epoch: int, epoch_losses: list[float]):
    """LambdaLR over optimizer steps; ``epoch_losses`` (appended by the loop) feeds schedules
    that adapt to the training loss (SFW-pruning's)."""
    t = spec.training
    factor = lr_factor(t.schedule, steps_per_epoch * t.epochs, round(t.warmup_epochs * steps_per_epoch),
                       t.milestones, steps_per_epoch, t.schedule_unit == "epoch", epoch_losses)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_run(spec: RunSpec, data_path: str | Path, checkpoint: str | Path) -> dict:
    """Train one run and write ``checkpoint`` (+ ``.json`` with provenance and curves)."""
    start = time.perf_counter()
    training, seed = spec.training, spec.run.seed
    make_deterministic(seed, training.threads)
    splits = load_splits(data_path, spec.dataset)
    model = model_for(spec, splits)
    optimizer = build_optimizer(spec, model)
    epoch_losses: list[float] = []
    scheduler = build_scheduler(spec, optimizer, len(splits.train_labels) // training.batch_size, epoch_losses)
    data_order = torch.Generator().manual_seed(seed)
    curves = []
    for epoch in range(training.epochs):
        model.train()
        losses = []
        for x, y in train_batches(splits, training.batch_size, data_order, training.augment):
            losses.append(optimizer.step(make_closure(model, x, y, optimizer)).item())
            scheduler.step()
        epoch_losses.append(float(np.mean(losses)))
        accuracy, test_loss = evaluate(model, splits, training.eval_batch_size)
        curves.append({"epoch": epoch + 1, "train_loss": epoch_losses[-1],
                       "test_accuracy": accuracy, "test_loss": test_loss})
    # the checkpoint rebuilds its model from name and width (the pretrained file is not needed)
    arch = {"name": spec.arch.name, "width": spec.arch.width}
    save_checkpoint(model, arch, splits.num_classes, splits.in_channels, checkpoint)
    info = provenance(spec.as_dict(), seed, time.perf_counter() - start, "cpu")
    info.update(run=spec.run.identity(), curves=curves, final_test_accuracy=curves[-1]["test_accuracy"])
    write_json_atomic(Path(checkpoint).with_suffix(".json"), info)
    return info
