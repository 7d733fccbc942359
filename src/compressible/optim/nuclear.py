"""Proximal SGD with nuclear-norm regularization: the low-rank baseline of compression-aware SFW.

Objective L(W) + lambda * sum_l ||W_l||_* over conv/linear weights seen as
c_out x (c_in*kh*kw). After each SGD step (momentum, weight decay) the proximal operator of
lr * lambda ||.||_* soft-thresholds the singular values:

    W <- U diag(max(sigma - lr * lambda, 0)) V^T.

This needs a full SVD of every regularized weight at every step, which is the cost the
spectral-k-support LMO (top-k triplets only, Lemma 3.1) avoids.
"""
from __future__ import annotations

import torch

from ..compress.matrices import as_matrix, svd


def singular_value_soft_threshold(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """prox of threshold * ||.||_* at ``weight`` (seen as a matrix), same shape as ``weight``."""
    u, s, vh = svd(as_matrix(weight))
    return ((u * (s - threshold).clamp_min(0)) @ vh).view_as(weight).to(weight.dtype)


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
