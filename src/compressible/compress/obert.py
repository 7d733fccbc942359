"""oBERT, the Optimal BERT Surgeon (Kurtic et al., EMNLP 2022): one-shot second-order pruning.

The loss near w is modelled by the empirical Fisher, block-diagonal over blocks of B consecutive
weights of each flattened tensor (Kurtic et al., Sec. 3):

    F = λI + (1/m) Σᵢ gᵢ gᵢᵀ            (m gradients of the loss at w, dampening λ)
    ρ_q = w_q² / (2 [F⁻¹]_qq)           (saliency: the loss increase of removing w_q alone)
    δw = −F⁻¹_{:,Q} (F⁻¹_{QQ})⁻¹ w_Q    (OBS update of a block for its pruned set Q: δ_Q = −w_Q)

The weights of smallest saliency are pruned over all prunable tensors together (global), then
each block gets its joint OBS update and the pruned entries are set to exactly +0.0. The target
is reached in ``recomputations`` equal sparsity steps, the Fisher rebuilt each time from fresh
gradients at the pruned-and-updated weights. Defaults are the oBERT settings CrAM adopts (App. D):
m = 1024 gradients, block size B = 50, 4 recomputations, global sparsity; λ = 1e-7, the
dampening of the oBERT authors' published pruning setup.

Interface (a data-dependent compressor; ``needs_gradients`` is True):

    compressor(model, level, prunable, gradients)   # the one-shot stage: prunes ``prunable`` in place
    compressor.apply(tensors, level, gradients)     # the same on bare tensors; returns the kept masks

``gradients`` is a callable without arguments returning an iterable over gradient samples at the
current weights: each item a sequence of tensors shaped like the prunable tensors (same order),
the loss gradient of one sample or one mini-batch. It is called once per recomputation, after
the previous step pruned and updated the weights; at most ``samples`` items are read per call
(m = the number read). Memory: the inverse Fisher holds B numbers per prunable weight.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from . import masks
from .base import Compressor, Prunable, Tensors, fraction, register

Gradients = Callable[[], Iterable[Sequence[torch.Tensor]]]
CHUNK = 1 << 14  # blocks inverted or solved at once (float64 working copies stay small)
SAMPLES_AT_ONCE = 16  # gradients added to the Fisher in one batched product (one pass over F per 16)


def as_blocks(tensor: torch.Tensor, block_size: int) -> torch.Tensor:
    """The flattened tensor as (blocks, B), zero-padded: the padding's Fisher rows are λI
    (its gradients are zero), so it couples to nothing and no padded entry is ever pruned."""
    flat = tensor.reshape(-1)
    return nn.functional.pad(flat, (0, (-flat.numel()) % block_size)).view(-1, block_size)


def block_fishers(tensors: Tensors, samples: Iterable[Sequence[torch.Tensor]], block_size: int,
                  dampening: float, limit: int) -> list[torch.Tensor]:
    """F = λI + (1/m) Σ g gᵀ per block, from at most ``limit`` gradient samples."""
    fishers = [t.new_zeros(as_blocks(t, block_size).shape + (block_size,)) for t in tensors]
    m = 0
    for batch in _batched(itertools.islice(samples, limit), SAMPLES_AT_ONCE):
        for i, fisher in enumerate(fishers):
            stacked = torch.stack([as_blocks(grads[i].detach().to(fisher.dtype), block_size) for grads in batch], 1)
            fisher.baddbmm_(stacked.transpose(1, 2), stacked)  # Σ g gᵀ over the batch, per block
        m += len(batch)
    if m == 0:
        raise ValueError("oBERT needs at least one gradient sample; the gradient source gave none")
    for fisher in fishers:
        fisher.div_(m).diagonal(dim1=1, dim2=2).add_(dampening)
    return fishers


def _batched(items: Iterable, size: int) -> Iterable[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def invert_(fishers: list[torch.Tensor]) -> list[torch.Tensor]:
    """F⁻¹ per block, in place, through float64 (λ is tiny: F is barely positive definite)."""
    for fisher in fishers:
        for part in fisher.split(CHUNK):
            part.copy_(torch.linalg.inv(part.double()))
    return fishers


def saliencies(tensors: Tensors, inverses: list[torch.Tensor]) -> list[torch.Tensor]:
    """ρ = w² / (2 [F⁻¹]_qq), shaped like each tensor."""
    out = []
    for t, inverse in zip(tensors, inverses):
        diagonal = inverse.diagonal(dim1=1, dim2=2).reshape(-1)[: t.numel()].view_as(t)
        out.append(t.detach().to(inverse.dtype) ** 2 / (2 * diagonal))
    return out


def obs_update(tensor: torch.Tensor, inverse: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    """w + δw with δw = −F⁻¹_{:,Q} (F⁻¹_{QQ})⁻¹ w_Q in every block, then w_Q = +0.0 exactly.

    (F⁻¹_{QQ})⁻¹ w_Q comes from one batched solve: in each block the matrix is F⁻¹ on Q × Q and
    the identity elsewhere, the right side w on Q and 0 elsewhere, so the solution is zero off Q."""
    block_size = inverse.shape[-1]
    w = as_blocks(tensor.detach(), block_size).double()
    q = as_blocks(pruned, block_size)
    rows = q.any(1).nonzero().squeeze(1)
    for part in rows.split(CHUNK):
        inv, qd = inverse[part].double(), q[part].double()
        system = inv * qd.unsqueeze(2) * qd.unsqueeze(1) + torch.diag_embed(1.0 - qd)
        z = torch.linalg.solve(system, (w[part] * qd).unsqueeze(2))
        w[part] -= torch.bmm(inv, z).squeeze(2)
    w = w.masked_fill(q, 0.0).reshape(-1)[: tensor.numel()]
    return w.view_as(tensor).to(tensor.dtype).masked_fill(pruned, 0.0)


class OBERT(Compressor):
    name = "obert"
    level_kind = "sparsity"
    allowed = "a sparsity in [0, 1), e.g. 0.8"
    needs_gradients = True

    def __init__(self, block_size: int = 50, dampening: float = 1e-7, samples: int = 1024,
                 recomputations: int = 4):
        self.block_size, self.dampening = block_size, dampening
        self.samples, self.recomputations = samples, recomputations

    def configured(self, **params) -> "OBERT":
        """``oneshot.N.params``: samples, block_size, dampening, recomputations."""
        allowed = {"samples": int, "block_size": int, "dampening": float, "recomputations": int}
        for key, value in params.items():
            if key not in allowed:
                raise ValueError(f"obert has no param {key!r}; allowed: {', '.join(allowed)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
                    or (allowed[key] is int and not isinstance(value, int)):
                raise ValueError(f"obert param {key!r}: {value!r} not allowed; allowed: a positive "
                                 f"{'integer' if allowed[key] is int else 'number'}")
        settings = dict(block_size=self.block_size, dampening=self.dampening, samples=self.samples,
                        recomputations=self.recomputations)
        return OBERT(**{**settings, **params})

    def check(self, level: object) -> float:
        return fraction(level, self.allowed)

    def schedule(self, level: float) -> list[float]:
        """The sparsity after each recomputation: equal steps up to ``level``."""
        return [level * (k + 1) / self.recomputations for k in range(self.recomputations)]

    @torch.no_grad()
    def apply(self, tensors: Sequence[torch.Tensor], level: object, gradients: Gradients) -> list[torch.Tensor]:
        """Prune ``tensors`` in place to ``level`` (global); returns the masks of kept entries."""
        level = self.check(level)
        pruned = [torch.zeros_like(t, dtype=torch.bool) for t in tensors]
        for sparsity in self.schedule(level):
            fishers = block_fishers(tensors, gradients(), self.block_size, self.dampening, self.samples)
            inverses = invert_(fishers)
            scores = [s.masked_fill(p, -torch.inf) for s, p in zip(saliencies(tensors, inverses), pruned)]
            pruned = [~kept for kept in masks.global_topk_masks(scores, sparsity)]
            for t, inverse, p in zip(tensors, inverses, pruned):
                t.copy_(obs_update(t, inverse, p))
            del fishers, inverses
        return [~p for p in pruned]

    def __call__(self, model: nn.Module, level: object, prunable: Prunable,
                 gradients: Gradients | None = None) -> nn.Module:
        if gradients is None:
            raise TypeError("compressor 'obert' needs gradients of the loss on training batches "
                            "(a gradient source): the one-shot stage passes one")
        self.apply([p for _, p in prunable], level, gradients)
        return model


register(OBERT())
