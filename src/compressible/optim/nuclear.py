"""Proximal SGD with nuclear-norm regularization: the low-rank baseline of compression-aware SFW.

Objective L(W) + lambda * sum_l ||W_l||_* over conv/linear weights seen as
c_out x (c_in*kh*kw). After each SGD step (momentum, weight decay) the proximal operator of
lr * lambda ||.||_* soft-thresholds the singular values:

    W <- U diag(max(sigma - lr * lambda, 0)) V^T.

This needs the whole spectrum of every regularized weight at every step, which is the cost the
spectral-k-support LMO (top-k triplets only, Lemma 3.1) avoids. It is computed from the Gram
matrix of the smaller side (c_out x c_out for a conv): with M M^T = U diag(sigma^2) U^T,
U diag(max(sigma - t, 0)) V^T = U diag(max(1 - t/sigma, 0)) U^T M, one small eigendecomposition
and two products instead of an SVD of the c_out x (c_in*kh*kw) matrix.
"""
from __future__ import annotations

import torch

from ..compress.matrices import TINY, as_matrix


def singular_value_soft_threshold(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """prox of threshold * ||.||_* at ``weight`` (seen as a matrix), same shape as ``weight``;
    in float64 through the Gram matrix of the smaller side (see the module's docstring)."""
    m = as_matrix(weight).double()
    wide = m.shape[0] <= m.shape[1]
    side = m if wide else m.T
    evals, u = torch.linalg.eigh(side @ side.T)
    sigma = evals.clamp_min(0).sqrt()
    # directions with sigma <= threshold are dropped whatever their (inexact) sigma
    shrink = torch.where(sigma > max(threshold, TINY), 1 - threshold / sigma.clamp_min(TINY), 0.0)
    out = (u * shrink) @ (u.T @ side)
    return (out if wide else out.T).reshape(weight.shape).to(weight.dtype)


class NuclearProxSGD(torch.optim.SGD):
    """SGD followed by singular value soft-thresholding of the groups with ``nuclear`` > 0.

    Args:
        params: parameters or param groups; a group's ``nuclear`` is its lambda (default
            ``nuclear``; 0 leaves the group a plain SGD group).
        lr, momentum, weight_decay, nesterov: as :class:`torch.optim.SGD`.
        nuclear: default lambda of the nuclear-norm penalty.
    """

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, nuclear: float = 0.0):
        if nuclear < 0:
            raise ValueError(f"nuclear must be >= 0, got {nuclear}")
        self._nuclear_default = nuclear  # read by add_param_group during SGD.__init__
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        self.defaults["nuclear"] = nuclear

    def add_param_group(self, param_group: dict) -> None:
        param_group.setdefault("nuclear", self._nuclear_default)
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        """SGD step, then the proximal step on every regularized tensor that has a gradient."""
        loss = super().step(closure)
        for group in self.param_groups:
            if group["nuclear"] > 0:
                for w in group["params"]:
                    if w.grad is not None:
                        w.copy_(singular_value_soft_threshold(w, group["lr"] * group["nuclear"]))
        return loss
