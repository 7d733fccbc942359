"""METHODS entries for SAM and the CrAM family (CrAM Tables 6-10, 14-18).

Every builder returns a :class:`~compressible.optim.sam.SAM` or
:class:`~compressible.optim.cram.CrAM` around SGD (momentum, weight decay) whose param groups
mark the prunable tensors ``compress=True`` and the rest (BatchNorm, biases) ``False``.
Top-K builders take ``sparsity`` (one level, "-k70") or ``sparsities`` (a list: Multi, one
level sampled per step); ``topk_scope`` is "global" (one threshold) or "uniform" (per tensor).
Defaults follow the equations: sparse gradients ("SG" in the paper's tables) are opt-in except
for C-SAM and Top-K+, whose definitions include them (App. C.1).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..registry import METHODS, TRAIN_COMPRESSORS
from .compressors import parse_nm
from .cram import CrAM
from .sam import SAM

Prunable = list[tuple[str, nn.Parameter]]


def param_groups(model: nn.Module, prunable: Prunable) -> list[dict]:
    """Two groups: the prunable tensors (``compress=True``) and every other trainable one."""
    ids = {id(p) for _, p in prunable}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": [p for _, p in prunable], "compress": True}]
    return groups + ([{"params": rest, "compress": False}] if rest else [])


def topk_compressors(sparsity: float, sparsities: Optional[list[float]], topk_scope: str,
                     dense_first_last: bool) -> list:
    """One Top-K compressor per sparsity level (several levels: Multi, sampled uniformly)."""
    if topk_scope not in ("global", "uniform"):
        raise ValueError(f"topk_scope must be 'global' or 'uniform', got {topk_scope!r}")
    if dense_first_last and topk_scope == "global":
        raise ValueError("dense_first_last applies to topk_scope='uniform' only")
    extra = {"dense_ends": True} if dense_first_last else {}
    build = TRAIN_COMPRESSORS.get(f"topk_{topk_scope}")
    return [build(level, **extra) for level in (sparsities or [sparsity])]


def _sgd(lr: float, momentum: float, weight_decay: float) -> dict:
    return dict(lr=lr, momentum=momentum, weight_decay=weight_decay)


def _cram(model: nn.Module, prunable: Prunable, compressors: list, seed: int, sgd: dict,
          **options) -> CrAM:
    return CrAM(param_groups(model, prunable), torch.optim.SGD, compressors, seed=seed,
                **options, **sgd)


@METHODS.register("sam")
def build_sam(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
              momentum: float = 0.9, weight_decay: float = 5e-4, rho: float = 0.05,
              adaptive: bool = False) -> SAM:
    """SAM (Foret et al.) with SGD; ``adaptive`` gives ASAM's |w| scaling."""
    return SAM(param_groups(model, prunable), torch.optim.SGD, rho=rho, adaptive=adaptive,
               **_sgd(lr, momentum, weight_decay))


@METHODS.register("cram")
def build_cram(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
               momentum: float = 0.9, weight_decay: float = 5e-4, rho: float = 0.05,
               sparsity: float = 0.5, sparsities: Optional[list[float]] = None,
               topk_scope: str = "global", dense_first_last: bool = False,
               sparse_grad: bool = False, mask_every: int = 1, normalize: bool = False,
               adaptive: bool = False) -> CrAM:
    """CrAM with Top-K (Eq. 2): w ← w − η·∇L(C(w + ρg)); CrAM-k50, CrAM-Multi."""
    return _cram(model, prunable, topk_compressors(sparsity, sparsities, topk_scope, dense_first_last),
                 seed, _sgd(lr, momentum, weight_decay), rho=rho, sparse_grad=sparse_grad,
                 mask_every=mask_every, normalize=normalize, adaptive=adaptive)


@METHODS.register("cram_plus")
def build_cram_plus(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
                    momentum: float = 0.9, weight_decay: float = 5e-4, rho: float = 0.05,
                    sparsity: float = 0.7, sparsities: Optional[list[float]] = None,
                    topk_scope: str = "global", dense_first_last: bool = False,
                    sparse_grad: bool = False, mask_every: int = 1, normalize: bool = False,
                    adaptive: bool = False) -> CrAM:
    """CrAM+ with Top-K (Eq. 4): w ← w − η·(∇L(C(w + ρg)) + g); CrAM+-k70, CrAM+-k95."""
    return _cram(model, prunable, topk_compressors(sparsity, sparsities, topk_scope, dense_first_last),
                 seed, _sgd(lr, momentum, weight_decay), rho=rho, plus=True,
                 sparse_grad=sparse_grad, mask_every=mask_every, normalize=normalize,
                 adaptive=adaptive)


@METHODS.register("cram_plus_multi")
def build_cram_plus_multi(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
                          momentum: float = 0.9, weight_decay: float = 5e-4, rho: float = 0.05,
                          sparsities: list[float] = [0.5, 0.7, 0.9],  # noqa: B006 (never mutated)
                          topk_scope: str = "global", dense_first_last: bool = False,
                          sparse_grad: bool = False, mask_every: int = 1, normalize: bool = False,
                          adaptive: bool = False) -> CrAM:
    """CrAM+-Multi: one sparsity level sampled uniformly per step from ``sparsities``."""
    return build_cram_plus(model, prunable, seed=seed, lr=lr, momentum=momentum,
                           weight_decay=weight_decay, rho=rho, sparsities=list(sparsities),
                           topk_scope=topk_scope, dense_first_last=dense_first_last,
                           sparse_grad=sparse_grad, mask_every=mask_every, normalize=normalize,
                           adaptive=adaptive)


@METHODS.register("cram_plus_nm")
def build_cram_plus_nm(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
                       momentum: float = 0.9, weight_decay: float = 5e-4, rho: float = 0.05,
                       patterns: list[str] = ["2:4", "4:8"],  # noqa: B006 (never mutated)
                       sparse_grad: bool = False, mask_every: int = 1, normalize: bool = False,
                       adaptive: bool = False) -> CrAM:
    """CrAM+-N:M (App. C.5): 2:4 or 4:8 with probability 1/2 each per step."""
    return _cram(model, prunable, [parse_nm(p) for p in patterns], seed,
                 _sgd(lr, momentum, weight_decay), rho=rho, plus=True, sparse_grad=sparse_grad,
                 mask_every=mask_every, normalize=normalize, adaptive=adaptive)


@METHODS.register("cram_plus_quant")
def build_cram_plus_quant(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
                          momentum: float = 0.9, weight_decay: float = 5e-4, rho: float = 0.05,
                          bits: int = 4, normalize: bool = False, adaptive: bool = False) -> CrAM:
    """CrAM+-4Bits (App. C.7): C = symmetric per-channel k-bit round-to-nearest."""
    return _cram(model, prunable, [TRAIN_COMPRESSORS.get("quant")(bits)], seed,
                 _sgd(lr, momentum, weight_decay), rho=rho, plus=True, normalize=normalize,
                 adaptive=adaptive)


@METHODS.register("c_sam")
def build_c_sam(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
                momentum: float = 0.9, weight_decay: float = 5e-4, rho: float = 0.05,
                sparsity: float = 0.5, sparsities: Optional[list[float]] = None,
                topk_scope: str = "global", dense_first_last: bool = False,
                sparse_grad: bool = True, mask_every: int = 1, normalize: bool = True,
                adaptive: bool = False) -> CrAM:
    """C-SAM (Eq. 11): ascent from M ⊙ ∇L(C(w)) normalized, update with M ⊙ ∇L(C(w̃))."""
    return _cram(model, prunable, topk_compressors(sparsity, sparsities, topk_scope, dense_first_last),
                 seed, _sgd(lr, momentum, weight_decay), rho=rho, sparse_grad=sparse_grad,
                 mask_every=mask_every, normalize=normalize, adaptive=adaptive,
                 perturb_from="compressed")


@METHODS.register("topk")
def build_topk(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
               momentum: float = 0.9, weight_decay: float = 5e-4, sparsity: float = 0.5,
               sparsities: Optional[list[float]] = None, topk_scope: str = "global",
               dense_first_last: bool = False, sparse_grad: bool = False,
               mask_every: int = 1) -> CrAM:
    """Top-K (Eq. 12): w ← w − η·∇L(C(w)), one pass (no extra-gradient step)."""
    return _cram(model, prunable, topk_compressors(sparsity, sparsities, topk_scope, dense_first_last),
                 seed, _sgd(lr, momentum, weight_decay), rho=0.0, sparse_grad=sparse_grad,
                 mask_every=mask_every, perturb_from="compressed", extra_gradient=False)


@METHODS.register("topk_plus")
def build_topk_plus(model: nn.Module, prunable: Prunable, *, seed: int, lr: float = 0.1,
                    momentum: float = 0.9, weight_decay: float = 5e-4, sparsity: float = 0.5,
                    sparsities: Optional[list[float]] = None, topk_scope: str = "global",
                    dense_first_last: bool = False, sparse_grad: bool = True,
                    mask_every: int = 1) -> CrAM:
    """Top-K+ (Eq. 13): w ← w − η·(∇L(w) + M ⊙ ∇L(C(w))) = CrAM+ with ρ = 0 and SG."""
    return _cram(model, prunable, topk_compressors(sparsity, sparsities, topk_scope, dense_first_last),
                 seed, _sgd(lr, momentum, weight_decay), rho=0.0, plus=True,
                 sparse_grad=sparse_grad, mask_every=mask_every)
