"""Low-rank decomposition by truncated SVD, and the module surgery that installs it.

Compression-aware SFW (Sec. 4.3) evaluates robustness to low rank by replacing each conv
with a k×k conv to r channels followed by a 1×1 conv (a Linear by two Linears), where
r = max(1, ⌊(1 − s)·rank⌋). A conv weight is seen as the c_out × (c_in·kh·kw) matrix, as in
the spectral-k-support LMO (Lemma 3.1).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .matrices import as_matrix, svd


def truncation_rank(full_rank: int, s: float) -> int:
    """r = max(1, ⌊(1 − s)·rank⌋) for a rank reduction ``s`` in [0, 1)."""
    if not 0.0 <= s < 1.0:
        raise ValueError(f"rank reduction s must lie in [0, 1), got {s}")
    return max(1, math.floor((1.0 - s) * full_rank))


def energy_rank(singular_values: torch.Tensor, energy: float) -> int:
    """Smallest r whose top-r singular values hold at least ``energy`` of Σσ²."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"retained energy must lie in (0, 1], got {energy}")
    squares = singular_values.double() ** 2
    cumulative = squares.cumsum(0) / squares.sum().clamp_min(torch.finfo(torch.float64).tiny)
    # the tolerance keeps energy=1 at full rank despite rounding in the cumulative sum
    return min(int((cumulative < energy - 1e-12).sum()) + 1, singular_values.numel())


def factorize(matrix: torch.Tensor, rank: int | Callable[[torch.Tensor], int]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(left (m×r), right (r×n)) with left @ right the best rank-r approximation.

    ``rank`` is r, or a rule choosing r from the singular values (one SVD either way).
    The singular values are split as √σ on both sides so neither factor dominates in scale.
    """
    u, sigma, vh = svd(matrix)
    r = rank(sigma) if callable(rank) else rank
    root = sigma[:r].sqrt()
    left, right = u[:, :r] * root, root[:, None] * vh[:r]
    return left.to(matrix.dtype), right.to(matrix.dtype)


class LowRank(nn.Sequential):
    """``reduce`` (to ``rank`` channels) followed by ``expand`` (to the original outputs)."""

    def __init__(self, reduce: nn.Module, expand: nn.Module):
        super().__init__()
        self.reduce, self.expand = reduce, expand

    @property
    def rank(self) -> int:
        return self.expand.weight.shape[1]

    def effective_weight(self) -> torch.Tensor:
        """The dense weight this pair computes (expand ∘ reduce), shaped like the original."""
        product = as_matrix(self.expand.weight) @ as_matrix(self.reduce.weight)
        return product.view(-1, *self.reduce.weight.shape[1:])


def factorize_module(layer: nn.Conv2d | nn.Linear, rank: int | Callable[[torch.Tensor], int]) -> LowRank:
    """The low-rank pair replacing ``layer`` (rank as in :func:`factorize`); the bias moves to
    the second factor, the first keeps the conv's kernel, stride, padding and dilation."""
    left, right = factorize(as_matrix(layer.weight.detach()), rank)
    rank = left.shape[1]
    has_bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        reduce = nn.Linear(layer.in_features, rank, bias=False)
        expand = nn.Linear(rank, layer.out_features, bias=has_bias)
    else:
        reduce = nn.Conv2d(layer.in_channels, rank, layer.kernel_size, layer.stride, layer.padding,
                           layer.dilation, bias=False, padding_mode=layer.padding_mode)
        expand = nn.Conv2d(rank, layer.out_channels, 1, bias=has_bias)
    pair = LowRank(reduce, expand).to(layer.weight.device, layer.weight.dtype)
    with torch.no_grad():
        reduce.weight.copy_(right.view_as(reduce.weight))
        expand.weight.copy_(left.view_as(expand.weight))
        if has_bias:
            expand.bias.copy_(layer.bias)
    return pair


def factorizable(layer: nn.Module) -> bool:
    """Linear layers and ungrouped 2-D convs (a grouped conv is not one matrix)."""
    return isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.groups == 1)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Install ``new`` at the dotted path ``name`` of ``model``."""
    if not name:
        raise ValueError("cannot replace the root module; wrap the layer in nn.Sequential")
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)
