"""Divergence: a non-finite loss or non-finite weights end a run before anything is written.

The run stops with :class:`TrainingDiverged` (no checkpoint; the last resume state, saved
from finite weights, stays), so nothing NaN can reach the one-shot results or the summary.

The losses stay on the device and are read back every ``CHECK_EVERY`` steps, together with
one flag for the weights, in one host sync (:class:`LossWatch`): reading them every step would
make the host wait for the GPU at every step. Every save (end of epoch, stop signal) reads
first, so a state is only ever written from weights found finite. The run stops at the first
read that finds a non-finite value and names the first step whose loss was not finite (or, when
only the weights are, the steps since the last read), with that step's learning rate.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .stops import TrainingDiverged

CHECK_EVERY = 50  # steps between two reads: the host waits for the device once per read


def floating_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    named = [*model.named_parameters(), *model.named_buffers()]
    return [(n, t) for n, t in named if t.is_floating_point()]


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of the floating parameters and buffers holding a NaN or an infinity."""
    floats = floating_tensors(model)
    if not floats:
        return []
    finite = torch.stack([torch.isfinite(t).all() for _, t in floats]).tolist()  # one sync
    return [n for (n, _), ok in zip(floats, finite) if not ok]


def weights_finite(model: nn.Module) -> torch.Tensor:
    """A 0-d float64 tensor on the weights' device: 1 when every floating parameter and buffer
    is finite, else 0 (the largest |x| is finite exactly then; NaN propagates through max)."""
    tensors = [t.detach() for _, t in floating_tensors(model)]
    if not tensors:
        return torch.ones((), dtype=torch.float64)
    largest = torch.stack(torch._foreach_norm(tensors, float("inf"))).max()
    return torch.isfinite(largest).double()


def diverged(where: str, loss: float, model: nn.Module, lr: float) -> TrainingDiverged:
    bad = ([] if math.isfinite(loss) else ["loss"]) + non_finite_tensors(model)
    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return TrainingDiverged(
        f"{where}: training diverged, loss {loss} (non-finite: {shown}); no checkpoint written. "
        f"Lower the learning rate (lr {lr:g} at this step) or use warmup_epochs.")


class LossWatch:
    """The losses of the steps since the last read, on the device; :meth:`add` returns the
    losses as floats when it reads (every ``every`` steps), :meth:`read` reads now."""

    def __init__(self, model: nn.Module, every: int = CHECK_EVERY):
        self.model, self.every = model, every
        self.pending: list[tuple[torch.Tensor, str, float]] = []  # (loss, where, lr) per step

    def add(self, loss: torch.Tensor, where: str, lr: float) -> list[float]:
        self.pending.append((loss.detach().double().reshape(()), where, lr))  # float32 -> float64 is exact
        return self.read() if len(self.pending) >= self.every else []

    def read(self) -> list[float]:
        """One host sync: every pending loss and the weights' flag; raise on a non-finite one."""
        if not self.pending:
            return []
        losses = [loss for loss, _, _ in self.pending]
        flag = weights_finite(self.model).to(losses[0])
        *values, weights_ok = torch.stack([*losses, flag]).tolist()
        pending, self.pending = self.pending, []
        for value, (_, where, lr) in zip(values, pending):
            if not math.isfinite(value):
                raise diverged(where, value, self.model, lr)
        if not weights_ok:  # the weights went non-finite at one of these steps, the losses not
            last = pending[-1][1].rpartition(", ")[2]
            raise diverged(f"{pending[0][1]} to {last}", values[-1], self.model, pending[-1][2])
        return values
