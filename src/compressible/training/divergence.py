"""Divergence: a non-finite loss or non-finite weights end a run before anything is written.

The run stops with :class:`TrainingDiverged` (no checkpoint; the last resume state, saved
from finite weights, stays), so nothing NaN can reach the one-shot results or the summary.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .stops import TrainingDiverged


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of the floating parameters and buffers holding a NaN or an infinity."""
    named = [*model.named_parameters(), *model.named_buffers()]
    floats = [(n, t) for n, t in named if t.is_floating_point()]
    if not floats:
        return []
    finite = torch.stack([torch.isfinite(t).all() for _, t in floats]).tolist()  # one sync
    return [n for (n, _), ok in zip(floats, finite) if not ok]


def check_finite(loss: float, model: nn.Module, where: str, lr: float) -> None:
    """Raise with the run, epoch, step and loss when the step left anything non-finite."""
    bad = [] if math.isfinite(loss) else ["loss"]
    bad += non_finite_tensors(model)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise TrainingDiverged(
            f"{where}: training diverged, loss {loss} (non-finite: {shown}); no checkpoint written. "
            f"Lower the learning rate (lr {lr:g} at this step) or use warmup_epochs.")
