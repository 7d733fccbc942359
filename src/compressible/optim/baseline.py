"""The dense baseline: SGD with momentum and weight decay (the papers' "Baseline" rows)."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import METHODS


@METHODS.register("sgd")
def build_sgd(model: nn.Module, prunable: list, *, seed: int, lr: float = 0.1,
              momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False) -> torch.optim.Optimizer:
    """Plain SGD; ``step(closure)`` runs the trainer's single forward-backward pass."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay, nesterov=nesterov)


build_sgd.uses_prunable = False  # its training reads no prunable set (it enters no run hash)
