"""The compressor interface: one object per compression operator C of the papers.

The same object serves CrAM during training (``at(level)`` is the C of Eqs. 2-4, 11-13, a pure
function of the prunable tensors) and the one-shot stage (``compressor(model, level,
prunable)`` compresses a checkpoint in place). It declares what its level means
(``level_kind``), so the config check, the figures and the tables need no list of names.
Pruned entries become exactly +0.0; every kernel breaks ties by position (deterministic).
A data-dependent compressor (``needs_gradients``: oBERT) is one-shot only and takes a gradient
source as a fourth argument, ``compressor(model, level, prunable, gradients)`` (see ``obert.py``).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..registry import COMPRESSORS

Tensors = Sequence[torch.Tensor]
Compressed = tuple[list[torch.Tensor], Optional[list[torch.Tensor]]]
Prunable = Sequence[tuple[str, nn.Parameter]]

# Level kinds that are the fraction of the model removed: plotted against sparsity, headed in %.
FRACTION_KINDS = ("sparsity", "filter fraction", "rank reduction")


def fraction(level: object, allowed: str, closed_right: bool = False) -> float:
    """A level that must be a real number in [0, 1) (or (0, 1] when ``closed_right``)."""
    ok = isinstance(level, numbers.Real) and not isinstance(level, bool)
    if ok and (0.0 < level <= 1.0 if closed_right else 0.0 <= level < 1.0):
        return float(level)
    raise ValueError(f"level {level!r} not allowed; allowed: {allowed}")


def apply_masks(tensors: Tensors, masks: Sequence[torch.Tensor]) -> Compressed:
    """Zero every tensor outside its mask (+0.0, also where a weight was negative)."""
    return [t.masked_fill(~m, 0.0) for t, m in zip(tensors, masks)], list(masks)


class Compressor:
    """A registered compression operator; subclasses set ``name``, ``level_kind``, ``allowed``.

    ``check(level)`` returns the parsed level or raises ValueError naming the allowed levels.
    Tensor-wise compressors implement ``compress(tensors, level) -> (values, masks)`` (masks
    None for quantization); model-level ones (filters with their BN channels, low rank's
    module surgery) override ``__call__`` instead and cannot be used during training.
    """

    name: str
    level_kind: str
    allowed: str
    needs_gradients = False  # True: __call__ also takes the loss gradients at the weights

    @property
    def removes_fraction(self) -> bool:
        return self.level_kind in FRACTION_KINDS

    def configured(self, **params: Any) -> "Compressor":
        """This compressor with a config's ``oneshot.N.params`` (only those that have settings,
        e.g. oBERT's, override this); none here."""
        if params:
            raise ValueError(f"compressor {self.name!r} takes no params, got {sorted(params)}")
        return self

    def check(self, level: object) -> Any:
        raise NotImplementedError

    def compress(self, tensors: Tensors, level: Any) -> Compressed:
        raise TypeError(f"compressor {self.name!r} acts on whole models: one-shot use only")

    def at(self, level: object) -> "AtLevel":
        """C at one level for CrAM: a pure function of the prunable tensors."""
        return AtLevel(self, self.check(level))

    @torch.no_grad()
    def __call__(self, model: nn.Module, level: object, prunable: Prunable) -> nn.Module:
        params = [p for _, p in prunable]
        values, _ = self.compress([p.detach() for p in params], self.check(level))
        for param, value in zip(params, values):
            param.copy_(value)
        return model


@dataclass(frozen=True)
class AtLevel:
    """A compressor at a fixed level; ``name`` keys its cached masks in CrAM's state (App. C.6)."""

    compressor: Compressor
    level: Any

    @property
    def name(self) -> str:
        level = ":".join(map(str, self.level)) if isinstance(self.level, tuple) else f"{self.level:g}"
        return f"{self.compressor.name}:{level}"

    def __call__(self, tensors: Tensors) -> Compressed:
        return self.compressor.compress(tensors, self.level)


def register(compressor: Compressor) -> Compressor:
    """Enter ``compressor`` in the COMPRESSORS registry under its own name."""
    return COMPRESSORS.register(compressor.name)(compressor)
