"""METHODS entries for SAM and the CrAM family (CrAM Tables 6-10, 14-18).

The CrAM family is one class (:class:`~compressible.optim.cram.CrAM`, a SAM with a compressor)
and a table of presets: each member differs only in a few flags and in the keys it accepts.
The base optimizer is ``base``: SGD (momentum, weight decay; the default) or Adam (betas, eps,
weight decay; CrAM App. D, BERT on SQuAD); ``p_base`` is the probability that a step is a plain
base step instead of a CrAM step (p(Adam), Table 19). The prunable tensors form the param
group ``compress=True`` and the rest (BatchNorm, biases) ``compress=False``.
Top-K members take ``sparsity`` (one level, "-k70") or ``sparsities`` (Multi: one level sampled
per step); ``topk_scope`` is "global" (one threshold) or "uniform" (per tensor). Sparse gradients
("SG" in the paper's tables) are opt-in, except for C-SAM and Top-K+ whose definitions include
them (App. C.1, Eq. 13).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ..compress.base import AtLevel
from ..registry import COMPRESSORS, METHODS
from .baseline import ADAM, SGD, base_optimizer
from .cram import CrAM
from .errors import ParamError
from .sam import SAM

Prunable = list[tuple[str, nn.Parameter]]

# every base's keys (defaults: SGD's, the default base's; Adam's own keys: Adam's)
OPTIMIZER = {**SGD, "betas": ADAM["betas"], "eps": ADAM["eps"], "base": "sgd"}
PERTURBATION = {"rho": 0.05, "normalize": False, "adaptive": False}
MASKING = {"sparse_grad": False, "mask_every": 1}
TOPK = {"sparsity": 0.5, "sparsities": None, "topk_scope": "global", "dense_first_last": False,
        **MASKING}
MULTI = {"sparsities": [0.5, 0.7, 0.9], "topk_scope": "global", "dense_first_last": False, **MASKING}
NM = {"patterns": ["2:4", "4:8"], **MASKING}


def param_groups(model: nn.Module, prunable: Prunable) -> list[dict]:
    """Two groups: the prunable tensors (``compress=True``) and every other trainable one."""
    ids = {id(p) for _, p in prunable}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": [p for _, p in prunable], "compress": True}]
    return groups + ([{"params": rest, "compress": False}] if rest else [])


@dataclass(frozen=True)
class DenseEnds:
    """Uniform Top-K leaving the first and the last prunable tensor dense (App. C.4)."""

    inner: AtLevel

    @property
    def name(self) -> str:
        return f"{self.inner.name}:dense_ends"

    def __call__(self, tensors):
        values, masks = self.inner(list(tensors[1:-1]))
        ends = [torch.ones_like(t, dtype=torch.bool) for t in (tensors[0], tensors[-1])]
        n = len(tensors)
        return [tensors[0], *values, tensors[-1]][:n], [ends[0], *masks, ends[1]][:n]


def topk_compressors(p: dict) -> list:
    """One Top-K compressor per sparsity level (several levels: Multi, sampled uniformly)."""
    scope = p["topk_scope"]
    if scope not in ("global", "uniform"):
        raise ParamError("topk_scope", f"topk_scope must be 'global' or 'uniform', got {scope!r}")
    if p["dense_first_last"] and scope == "global":
        raise ParamError("dense_first_last", "dense_first_last applies to topk_scope='uniform' only")
    compressor = COMPRESSORS.get(f"{scope}_magnitude")
    bound = [compressor.at(level) for level in (p["sparsities"] or [p["sparsity"]])]
    return [DenseEnds(b) for b in bound] if p["dense_first_last"] else bound


COMPRESSOR_CHOICE = {
    "topk": topk_compressors,
    "nm": lambda p: [COMPRESSORS.get("nm").at(pattern) for pattern in p["patterns"]],
    "quantize": lambda p: [COMPRESSORS.get("quantize").at(p["bits"])],
}


@dataclass(frozen=True)
class CrAMPreset:
    """A member of the CrAM family: CrAM's flags, and the keys (with defaults) it accepts."""

    equation: str
    own: dict = field(repr=False)
    compressor: str = "topk"
    plus: bool = False
    perturb_from: str = "dense"
    extra_gradient: bool = True
    rho: Optional[float] = None  # fixed ρ (Top-K and Top-K+ have no perturbation)

    @property
    def params(self) -> dict:
        return {**OPTIMIZER, **self.own, "p_base": 0.0}

    def __call__(self, model: nn.Module, prunable: Prunable, *, seed: int, **params) -> CrAM:
        p = accepted(self.params, params)
        base, base_kwargs = base_optimizer(p["base"], params)
        return CrAM(param_groups(model, prunable), base, COMPRESSOR_CHOICE[self.compressor](p),
                    rho=p["rho"] if self.rho is None else self.rho, plus=self.plus,
                    sparse_grad=p.get("sparse_grad", False), mask_every=p.get("mask_every", 1),
                    normalize=p.get("normalize", False), adaptive=p.get("adaptive", False),
                    perturb_from=self.perturb_from, extra_gradient=self.extra_gradient, seed=seed,
                    p_base=p["p_base"], **base_kwargs)


def accepted(table: dict, params: dict) -> dict:
    """``params`` over the method's defaults; a key the method does not have is refused."""
    unknown = set(params) - set(table)
    if unknown:
        raise TypeError(f"unexpected parameter(s) {sorted(unknown)}; allowed: {sorted(table)}")
    return {**table, **params}


PRESETS = {
    # CrAM, Eq. 2: w ← w − η·∇L(C(w + ρg)); CrAM-k50
    "cram": CrAMPreset("Eq. 2", {**PERTURBATION, **TOPK}),
    # CrAM+, Eq. 4: w ← w − η·(∇L(C(w + ρg)) + g); CrAM+-k70, CrAM+-k95
    "cram_plus": CrAMPreset("Eq. 4", {**PERTURBATION, **TOPK, "sparsity": 0.7}, plus=True),
    # CrAM+-Multi: one sparsity sampled uniformly per step from `sparsities`
    "cram_plus_multi": CrAMPreset("Eq. 4, Multi", {**PERTURBATION, **MULTI}, plus=True),
    # CrAM+-N:M (App. C.5): 2:4 or 4:8 with probability 1/2 each per step
    "cram_plus_nm": CrAMPreset("App. C.5", {**PERTURBATION, **NM}, "nm", plus=True),
    # CrAM+-4Bits (App. C.7): C = symmetric per-channel k-bit round-to-nearest
    "cram_plus_quant": CrAMPreset("App. C.7", {**PERTURBATION, "bits": 4}, "quantize", plus=True),
    # C-SAM, Eq. 11: ascent from M ⊙ ∇L(C(w)) normalized, update with M ⊙ ∇L(C(w̃))
    "c_sam": CrAMPreset("Eq. 11", {**PERTURBATION, **TOPK, "sparse_grad": True, "normalize": True},
                        perturb_from="compressed"),
    # Top-K, Eq. 12: w ← w − η·∇L(C(w)), one pass, no extra-gradient step
    "topk": CrAMPreset("Eq. 12", TOPK, perturb_from="compressed", extra_gradient=False, rho=0.0),
    # Top-K+, Eq. 13: w ← w − η·(∇L(w) + M ⊙ ∇L(C(w))) = CrAM+ with ρ = 0 and SG
    "topk_plus": CrAMPreset("Eq. 13", {**TOPK, "sparse_grad": True}, plus=True, rho=0.0),
}
for _name, _preset in PRESETS.items():
    METHODS.register(_name)(_preset)


def build_sam(model: nn.Module, prunable: Prunable, *, seed: int, **params) -> SAM:
    """SAM (Foret et al.) over the ``base`` optimizer; ``adaptive`` gives ASAM's |w| scaling."""
    p = accepted(build_sam.params, params)
    base, base_kwargs = base_optimizer(p["base"], params)
    return SAM(param_groups(model, prunable), base, rho=p["rho"], adaptive=p["adaptive"], **base_kwargs)


build_sam.params = {**OPTIMIZER, "rho": 0.05, "adaptive": False}
METHODS.register("sam")(build_sam)
