"""Low-rank compression (compression-aware SFW Sec. 4.3, Fig. 3): truncated SVD of each
prunable conv/linear weight, installed by module surgery (``lowrank.py``).

``lowrank``: level = rank reduction s in [0, 1), r = max(1, ⌊(1 − s)·rank⌋);
``lowrank_energy``: level = retained energy in (0, 1], r = the smallest rank whose top singular
values hold that share of Σσ². The compressed model has factorized layers.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from . import lowrank
from .base import Compressor, Prunable, fraction, register
from .prunable import owner_name


class LowRankCompressor(Compressor):
    def __init__(self, name: str, by: str):
        self.name, self.by = name, by
        self.level_kind = "rank reduction" if by == "reduction" else "energy"
        self.allowed = ("a rank reduction s in [0, 1), e.g. 0.5" if by == "reduction"
                        else "a retained energy fraction in (0, 1], e.g. 0.9")

    def check(self, level: object) -> float:
        return fraction(level, self.allowed, closed_right=self.by == "energy")

    def rank_rule(self, level: float) -> Callable[[torch.Tensor], int]:
        """r from a layer's singular values (their count is the layer's full rank)."""
        if self.by == "reduction":
            return lambda sigma: lowrank.truncation_rank(sigma.numel(), level)
        return lambda sigma: lowrank.energy_rank(sigma, level)

    @torch.no_grad()
    def __call__(self, model: nn.Module, level: object, prunable: Prunable) -> nn.Module:
        rule = self.rank_rule(self.check(level))
        modules = dict(model.named_modules())
        for name in (owner_name(n) for n, _ in prunable if n.endswith("weight")):
            layer = modules.get(name)
            if layer is not None and lowrank.factorizable(layer):
                lowrank.replace_module(model, name, lowrank.factorize_module(layer, rule))
        return model


register(LowRankCompressor("lowrank", "reduction"))
register(LowRankCompressor("lowrank_energy", "energy"))
