"""Unstructured magnitude pruning (Top-K): CrAM's C, and every paper's unstructured evaluation.

``global_magnitude``: one |w| threshold across every prunable tensor (CrAM's global Top-K,
SFW-pruning's and compression-aware SFW's global pruning); ``uniform_magnitude``: the same
sparsity in each tensor (CrAM App. C.4). The first/last-layer policy is the prunable set's
("weights" keeps them in, "weights_inner" leaves both dense). Level: sparsity in [0, 1);
exactly ⌊s·n⌋ entries are zeroed.
"""
from __future__ import annotations

from . import masks
from .base import Compressed, Compressor, Tensors, apply_masks, fraction, register


class Magnitude(Compressor):
    level_kind = "sparsity"
    allowed = "a sparsity in [0, 1), e.g. 0.9"

    def __init__(self, name: str, scope: str):
        self.name, self.scope = name, scope

    def check(self, level: object) -> float:
        return fraction(level, self.allowed)

    def compress(self, tensors: Tensors, level: float) -> Compressed:
        if self.scope == "global":
            return apply_masks(tensors, masks.global_topk_masks(tensors, level, magnitude=True))
        return apply_masks(tensors, masks.uniform_topk_masks([t.abs() for t in tensors], level))


register(Magnitude("global_magnitude", "global"))
register(Magnitude("uniform_magnitude", "uniform"))
