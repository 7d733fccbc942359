"""The task interface (see the package docstring)."""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn


class Task:
    """Subclasses set ``name`` and ``metrics`` (the first is the headline) and implement the
    methods below; batches are whatever ``move`` and ``loss`` of the same task take."""

    name: str
    metrics: tuple[str, ...]
    input_dtype: torch.dtype | None = None  # of the accounting's dummy input (None: the weights')

    @property
    def primary(self) -> str:
        return self.metrics[0]

    def train_batches(self, splits, batch_size: int, generator: torch.Generator,
                      augment: bool) -> Iterator[Any]:
        raise NotImplementedError

    def move(self, batch: Any, device: torch.device, layout: torch.memory_format) -> Any:
        """The batch (this process's part of it) on ``device``."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any, label_smoothing: float = 0.0) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, splits, batch_size: int) -> tuple[dict[str, float], float]:
        """({metric: value in %}, mean loss) on the evaluation split, in eval mode."""
        raise NotImplementedError
