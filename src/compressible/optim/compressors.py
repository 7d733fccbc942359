"""Training-time compressors C for CrAM (PAPERS.md §1): Top-K (global, uniform), N:M, k-bit.

A compressor is a pure callable on the list of prunable tensors that returns
``(compressed values, masks)``; ``masks`` is the 0/1 support of C where C is a sparsifier
(needed for the sparse gradient M ⊙ ∇L(w̃), App. C.2, and for reusing masks, App. C.6) and
``None`` for quantization. Every kernel comes from :mod:`compressible.compress.masks`.
Each compressor has a ``name`` that keys its cached masks in the optimizer state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..compress.masks import global_topk_masks, nm_mask, quantize_symmetric, uniform_topk_masks
from ..registry import TRAIN_COMPRESSORS

Tensors = Sequence[torch.Tensor]
Compressed = tuple[list[torch.Tensor], Optional[list[torch.Tensor]]]


def apply_masks(tensors: Tensors, masks: Sequence[torch.Tensor]) -> Compressed:
    """Zero every tensor outside its mask; the masks are returned unchanged."""
    return [t * m for t, m in zip(tensors, masks)], list(masks)


@TRAIN_COMPRESSORS.register("topk_global")
@dataclass(frozen=True)
class GlobalTopK:
    """Magnitude pruning with one threshold over all prunable tensors (the CrAM default)."""

    sparsity: float

    @property
    def name(self) -> str:
        return f"topk_global:{self.sparsity:g}"

    def __call__(self, tensors: Tensors) -> Compressed:
        return apply_masks(tensors, global_topk_masks([t.abs() for t in tensors], self.sparsity))


@TRAIN_COMPRESSORS.register("topk_uniform")
@dataclass(frozen=True)
class UniformTopK:
    """Magnitude pruning at the same sparsity in every tensor (App. C.4).

    ``dense_ends`` leaves the first and the last tensor of the list dense ("keeping the first
    and last layers dense"); the prunable set ``weights_inner`` achieves the same upstream.
    """

    sparsity: float
    dense_ends: bool = False

    @property
    def name(self) -> str:
        return f"topk_uniform:{self.sparsity:g}" + (":dense_ends" if self.dense_ends else "")

    def __call__(self, tensors: Tensors) -> Compressed:
        inner = list(tensors[1:-1]) if self.dense_ends else list(tensors)
        masks = uniform_topk_masks([t.abs() for t in inner], self.sparsity)
        if self.dense_ends:
            ends = [torch.ones_like(t, dtype=torch.bool) for t in (tensors[0], tensors[-1])]
            masks = [ends[0], *masks, ends[1]][: len(tensors)]
        return apply_masks(tensors, masks)


@TRAIN_COMPRESSORS.register("nm")
@dataclass(frozen=True)
class NMSparsity:
    """Keep N of every M consecutive input-channel weights (App. C.5; 2:4 and 4:8).

    Tensors whose input dimension is not a multiple of M stay dense (``nm_mask``).
    """

    n: int
    m: int

    @property
    def name(self) -> str:
        return f"nm:{self.n}:{self.m}"

    def __call__(self, tensors: Tensors) -> Compressed:
        return apply_masks(tensors, [nm_mask(t, self.n, self.m) for t in tensors])


@TRAIN_COMPRESSORS.register("quant")
@dataclass(frozen=True)
class SymmetricQuant:
    """Symmetric per-output-channel k-bit quantization, round to nearest (App. C.7)."""

    bits: int

    @property
    def name(self) -> str:
        return f"quant:{self.bits}"

    def __call__(self, tensors: Tensors) -> Compressed:
        return [quantize_symmetric(t, self.bits) for t in tensors], None


def parse_nm(pattern: str) -> NMSparsity:
    """``"2:4"`` -> ``NMSparsity(2, 4)``."""
    n, m = (int(x) for x in pattern.split(":"))
    return NMSparsity(n, m)
