"""One-shot compression operators: every compression of the three papers, for any checkpoint.

Each paper table is "train once, compress one-shot at many levels, evaluate"; an operator is
registered in ONESHOT under its config name and offers what the config check and the DAG use:
``check(level)`` raises ValueError naming the allowed levels, and
``op(model, level, prunable) -> nn.Module`` compresses the tensors of ``prunable`` (the
(name, Parameter) pairs of the named prunable set). Pruned entries become exactly 0.
All operators are deterministic (ties are broken by position in the kernels).
"""
from __future__ import annotations

import numbers
from typing import Callable, Sequence

import torch
from torch import nn

from ..registry import ONESHOT
from . import lowrank, masks
from .prunable import conv_bn_pairs, owner_name

Prunable = Sequence[tuple[str, nn.Parameter]]


def _fraction(level: object, allowed: str, closed_right: bool = False) -> float:
    """A level that must be a real number in [0, 1) (or (0, 1] when ``closed_right``)."""
    ok = isinstance(level, numbers.Real) and not isinstance(level, bool)
    if ok and (0.0 < level <= 1.0 if closed_right else 0.0 <= level < 1.0):
        return float(level)
    raise ValueError(f"level {level!r} not allowed; allowed: {allowed}")


def _zero_outside(param: torch.Tensor, keep: torch.Tensor) -> None:
    param.masked_fill_(~keep, 0.0)  # +0.0 exactly, also where the weight was negative


def _uniform_magnitude_masks(weights: list[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    return masks.uniform_topk_masks([w.abs() for w in weights], sparsity)


class Magnitude:
    """Unstructured magnitude pruning; level = sparsity in [0, 1) over the prunable set.

    ``scope="global"``: one threshold across every prunable tensor (CrAM's global Top-K,
    SFW-pruning and compression-aware SFW's global pruning); ``scope="uniform"``: the same
    sparsity in each tensor. The first/last-layer policy is the prunable set's
    ("weights" keeps them in, "weights_inner" leaves both dense, as CrAM's uniform Top-K).
    """

    allowed = "a sparsity in [0, 1), e.g. 0.9"

    def __init__(self, scope: str):
        self.kernel = {"global": masks.global_magnitude_masks, "uniform": _uniform_magnitude_masks}[scope]

    def check(self, level: object) -> float:
        return _fraction(level, self.allowed)

    @torch.no_grad()
    def __call__(self, model: nn.Module, level: float, prunable: Prunable) -> nn.Module:
        params = [p for _, p in prunable]
        for param, keep in zip(params, self.kernel(params, self.check(level))):
            _zero_outside(param, keep)
        return model


class NM:
    """N:M semi-structured sparsity; level = "N:M" (e.g. "2:4", "4:8").

    Groups of M run along input channels (CrAM's convention, see ``masks.nm_mask``);
    tensors whose input dimension is not a multiple of M, and 1-D tensors, stay dense.
    """

    allowed = "a string 'N:M' with 0 < N <= M, e.g. '2:4' or '4:8' (quote it in YAML)"

    def check(self, level: object) -> tuple[int, int]:
        parts = level.split(":") if isinstance(level, str) else []
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            n, m = (int(p) for p in parts)
            if 0 < n <= m:
                return n, m
        hint = " (YAML reads an unquoted 2:4 as the base-60 integer 124)" if isinstance(level, int) else ""
        raise ValueError(f"level {level!r} not allowed; allowed: {self.allowed}{hint}")

    @torch.no_grad()
    def __call__(self, model: nn.Module, level: str, prunable: Prunable) -> nn.Module:
        n, m = self.check(level)
        for _, param in prunable:
            _zero_outside(param, masks.nm_mask(param, n, m))
        return model


class Filters:
    """Filter (output-channel) pruning by L1 filter norm; level = fraction of filters removed.

    Acts on the conv weights of the prunable set (Linear rows would be output classes).
    ``scope="layer"``: that fraction in every conv (compression-aware SFW's evaluation);
    ``scope="global"``: one threshold on size-normalized filter norms across convs.
    A pruned filter contributes nothing: its bias entry and the affine parameters of the
    BatchNorm fed directly by the conv are zeroed too, so the channel is exactly 0 after BN.
    """

    allowed = "a fraction of filters in [0, 1), e.g. 0.5"

    def __init__(self, scope: str, p: float = 1.0):
        self.scope, self.p = scope, p

    def check(self, level: object) -> float:
        return _fraction(level, self.allowed)

    def _row_masks(self, weights: list[torch.Tensor], level: float) -> list[torch.Tensor]:
        if self.scope == "global":
            return masks.global_filter_masks(weights, level, self.p)
        return [masks.filter_keep_mask(w, level, self.p) for w in weights]

    @torch.no_grad()
    def __call__(self, model: nn.Module, level: float, prunable: Prunable) -> nn.Module:
        convs = [(owner_name(n), p) for n, p in prunable if p.dim() == 4]
        rows = self._row_masks([p for _, p in convs], self.check(level))
        norms, modules = conv_bn_pairs(model), dict(model.named_modules())
        for (name, weight), keep in zip(convs, rows):
            _zero_outside(weight, masks.expand_rows(keep, weight))
            followers = [getattr(modules.get(name), "bias", None)]
            if name in norms:
                followers += [norms[name].weight, norms[name].bias]
            for tensor in (t for t in followers if t is not None):
                _zero_outside(tensor, keep)
        return model


class LowRankOperator:
    """Truncated-SVD decomposition of each prunable conv/linear weight.

    ``by="reduction"``: level = s in [0, 1), r = max(1, ⌊(1 − s)·rank⌋) (compression-aware SFW);
    ``by="energy"``: level = retained energy fraction in (0, 1], r = smallest rank whose top
    singular values hold that share of Σσ². Returns the model with factorized layers.
    """

    def __init__(self, by: str):
        self.by = by
        self.allowed = ("a rank reduction s in [0, 1), e.g. 0.5" if by == "reduction"
                        else "a retained energy fraction in (0, 1], e.g. 0.9")

    def check(self, level: object) -> float:
        return _fraction(level, self.allowed, closed_right=self.by == "energy")

    def rank_rule(self, level: float) -> Callable[[torch.Tensor], int]:
        """r from a layer's singular values (their count is the layer's full rank)."""
        if self.by == "reduction":
            return lambda sigma: lowrank.truncation_rank(sigma.numel(), level)
        return lambda sigma: lowrank.energy_rank(sigma, level)

    @torch.no_grad()
    def __call__(self, model: nn.Module, level: float, prunable: Prunable) -> nn.Module:
        rule = self.rank_rule(self.check(level))
        modules = dict(model.named_modules())
        for name in (owner_name(n) for n, _ in prunable if n.endswith("weight")):
            layer = modules.get(name)
            if layer is not None and lowrank.factorizable(layer):
                lowrank.replace_module(model, name, lowrank.factorize_module(layer, rule))
        return model


class Quantize:
    """Symmetric per-output-channel k-bit quantization, round to nearest; level = bits.

    CrAM's 4-bit variant (App. C.7); weights are stored as their dequantized float values,
    so at most 2^k − 1 distinct values remain per channel.
    """

    allowed = "an integer number of bits from 2 to 16, e.g. 4 or 8"

    def check(self, level: object) -> int:
        if isinstance(level, numbers.Integral) and not isinstance(level, bool) and 2 <= level <= 16:
            return int(level)
        raise ValueError(f"level {level!r} not allowed; allowed: {self.allowed}")

    @torch.no_grad()
    def __call__(self, model: nn.Module, level: int, prunable: Prunable) -> nn.Module:
        bits = self.check(level)
        for _, param in prunable:
            param.copy_(masks.quantize_symmetric(param, bits))
        return model


ONESHOT.register("global_magnitude")(Magnitude("global"))
ONESHOT.register("uniform_magnitude")(Magnitude("uniform"))
ONESHOT.register("nm")(NM())
ONESHOT.register("filters")(Filters("layer"))
ONESHOT.register("filters_global")(Filters("global"))
ONESHOT.register("lowrank")(LowRankOperator("reduction"))
ONESHOT.register("lowrank_energy")(LowRankOperator("energy"))
ONESHOT.register("quantize")(Quantize())
