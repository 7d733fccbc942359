"""Relative distance between a model and its compressed version (compression-aware SFW, Fig. 1).

d(w) = ‖w − C(w)‖₂ / ‖w‖₂ with w the concatenation of the compared parameters: 0 means the
compression changes nothing, 1 means it removes everything (e.g. every filter pruned).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .lowrank import LowRank
from .prunable import owner_name


def relative_distance_tensors(dense: Iterable[torch.Tensor], compressed: Iterable[torch.Tensor]) -> float:
    """‖w − C(w)‖ / ‖w‖ over paired tensors, accumulated in float64."""
    diff = norm = torch.zeros((), dtype=torch.float64)
    for w, c in zip(dense, compressed, strict=True):
        w, c = w.detach().double(), c.detach().double().to(w.device)
        diff, norm = diff + (w - c).pow(2).sum().cpu(), norm + w.pow(2).sum().cpu()
    return float(diff.sqrt() / norm.sqrt()) if norm > 0 else 0.0


def compressed_value(model: nn.Module, name: str) -> torch.Tensor:
    """The value ``model`` uses for parameter ``name``: the product of the factors for a
    layer replaced by its low-rank pair, the parameter itself otherwise."""
    params = dict(model.named_parameters())
    if name in params:
        return params[name]
    layer = model.get_submodule(owner_name(name))
    if isinstance(layer, LowRank) and name.endswith(".weight"):
        return layer.effective_weight()
    raise KeyError(f"{name!r} is neither a parameter nor a factorized weight of the model")


def relative_distance(dense_model: nn.Module, compressed_model: nn.Module,
                      names: Iterable[str] | None = None) -> float:
    """Relative distance over ``names`` (default: every parameter of ``dense_model``).

    Pass the prunable set's names to reproduce the paper's figure, which compares only the
    compressed tensors.
    """
    dense = dict(dense_model.named_parameters())
    names = list(dense if names is None else names)
    return relative_distance_tensors((dense[n] for n in names),
                                     (compressed_value(compressed_model, n) for n in names))
