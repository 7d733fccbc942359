"""BatchNorm running statistics: frozen in the perturbed pass of the two-pass optimizers, and
re-estimated after compression by Batch Norm Tuning (BNT; CrAM, Sec. 3.3 and App. C.3).

After one-shot compression the running statistics describe the dense model's activations; BNT
resets them and re-estimates them from forward passes over a few calibration batches (1000
training images with training augmentation in the paper). No parameter changes.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch
from torch import nn


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside use batch statistics but leave running statistics untouched.

    In train mode a BatchNorm with ``track_running_stats=False`` normalizes with the batch
    statistics and updates neither the running mean/var nor ``num_batches_tracked``; this is
    what SAM/CrAM need for their perturbed pass (CrAM, Sec. 3.3: "we only track the BN statistics on the dense model").
    """
    norms = [m for m in batch_norms(model) if m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def _images(batch: object) -> torch.Tensor:
    """A calibration batch may be images alone or an (images, labels) pair."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


@torch.no_grad()
def batch_norm_tuning(model: nn.Module, batches: Iterable[torch.Tensor],
                      momentum: float | None = None) -> nn.Module:
    """Re-estimate every BatchNorm's running mean/variance on ``batches``; return ``model``.

    ``momentum=None`` gives the cumulative average (every batch weighs the same);
    ``momentum=0.1`` is PyTorch's exponential average, as in the CrAM authors' code.
    The whole model runs in train mode (as when the statistics were first collected)
    under no_grad, and is left in eval mode; each BatchNorm's own momentum is restored.
    """
    norms = [m for m in batch_norms(model) if m.track_running_stats]
    saved = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = momentum
    device = next(model.parameters()).device
    seen = 0
    try:
        model.train()
        for batch in batches:
            model(_images(batch).to(device, non_blocking=True))
            seen += 1
    finally:
        for norm, value in zip(norms, saved):
            norm.momentum = value
        model.eval()
    if norms and seen == 0:
        raise ValueError("batch_norm_tuning needs at least one calibration batch")
    return model
