"""BatchNorm running-statistics helpers shared by the two-pass optimizers and BNT."""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside use batch statistics but leave running statistics untouched.

    In train mode a BatchNorm with ``track_running_stats=False`` normalizes with the batch
    statistics and updates neither the running mean/var nor ``num_batches_tracked``; this is
    what SAM/CrAM need for their perturbed pass (PAPERS.md §1, "BatchNorm").
    """
    norms = [m for m in batch_norms(model) if m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
