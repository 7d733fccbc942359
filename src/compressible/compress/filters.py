"""Filter (output-channel) pruning by L1 filter norm (Li et al.; compression-aware SFW Sec. 4.2).

Acts on the conv weights of the prunable set (Linear rows would be output classes).
``filters``: the same fraction in every conv (compression-aware SFW's evaluation);
``filters_global``: one threshold on size-normalized filter norms across convs. A pruned filter
contributes nothing: its bias entry and the affine parameters of the BatchNorm fed directly by
the conv are zeroed too, so the channel is exactly 0 after BN. ``filters_weights_only`` zeroes
the filters alone and leaves bias and BN as they are, as the compression-aware SFW authors'
evaluation does (the pruned channel then carries the BN shift β). Level: fraction of filters.
"""
from __future__ import annotations

import torch
from torch import nn

from . import masks
from .base import Compressor, Prunable, fraction, register
from .prunable import conv_bn_pairs, owner_name


class Filters(Compressor):
    level_kind = "filter fraction"
    allowed = "a fraction of filters in [0, 1), e.g. 0.5"

    def __init__(self, name: str, scope: str, p: float = 1.0, zero_followers: bool = True):
        self.name, self.scope, self.p, self.zero_followers = name, scope, p, zero_followers

    def check(self, level: object) -> float:
        return fraction(level, self.allowed)

    def _row_masks(self, weights: list[torch.Tensor], level: float) -> list[torch.Tensor]:
        if self.scope == "global":
            return masks.global_filter_masks(weights, level, self.p)
        return [masks.filter_keep_mask(w, level, self.p) for w in weights]

    @torch.no_grad()
    def __call__(self, model: nn.Module, level: object, prunable: Prunable) -> nn.Module:
        convs = [(owner_name(n), p) for n, p in prunable if p.dim() == 4]
        rows = self._row_masks([p for _, p in convs], self.check(level))
        norms, modules = conv_bn_pairs(model), dict(model.named_modules())
        for (name, weight), keep in zip(convs, rows):
            weight.masked_fill_(~masks.expand_rows(keep, weight), 0.0)
            if not self.zero_followers:
                continue
            followers = [getattr(modules.get(name), "bias", None)]
            if name in norms:
                followers += [norms[name].weight, norms[name].bias]
            for tensor in (t for t in followers if t is not None):
                tensor.masked_fill_(~keep, 0.0)
        return model


register(Filters("filters", "layer"))
register(Filters("filters_global", "global"))
register(Filters("filters_weights_only", "layer", zero_followers=False))
