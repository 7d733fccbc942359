"""The Frank-Wolfe step size eta = clamp(lr * factor, 0, 1), shared by SFW and SFW-Init.

Rescaling (``rescale``): ``gradient`` factor = ||d|| / ||w - v|| (compression-aware SFW,
Theorem 4.1: the gradient-rescaled learning rate), ``fast_gradient`` ||d|| / (D/2),
``diameter`` 1/D (the 2020 library), ``none`` 1. Clamping to [0, 1] keeps w a convex
combination of feasible points.
"""
from __future__ import annotations

import torch

RESCALES = ("gradient", "fast_gradient", "diameter", "none")


def fw_step_size(lr: float, rescale: str, d: torch.Tensor, w: torch.Tensor, v: torch.Tensor,
                 diameter: float) -> torch.Tensor:
    """eta = clamp(lr * factor, 0, 1) as a 0-d tensor (no host sync)."""
    return _clamped(lr, rescale, d, lambda: d.norm(), lambda: torch.dist(w, v), diameter)


def fw_step_size_joint(lr: float, rescale: str, ds: list, ws: list, vs: list,
                       diameter: float) -> torch.Tensor:
    """eta of tensors sharing one (global) constraint: the norms are those of their concatenation."""
    d_norm = lambda: torch.stack([d.norm() for d in ds]).norm()  # noqa: E731
    dist = lambda: torch.stack([torch.dist(w, v) for w, v in zip(ws, vs)]).norm()  # noqa: E731
    return _clamped(lr, rescale, ds[0], d_norm, dist, diameter)


def _clamped(lr, rescale, like, d_norm, dist, diameter) -> torch.Tensor:
    if rescale == "gradient":
        factor = d_norm() / dist()
    elif rescale == "fast_gradient":
        factor = d_norm() / (0.5 * diameter)
    elif rescale == "diameter":
        factor = like.new_tensor(1.0 / diameter)
    else:
        factor = like.new_tensor(1.0)
    return clamped_step(lr, factor)


def clamped_step(lr: float, factor: torch.Tensor) -> torch.Tensor:
    """clamp(lr * factor, 0, 1), elementwise for a tensor of factors."""
    # w == v with d == 0 gives 0/0: no step is needed; w == v alone gives inf: the step is moot
    return (lr * factor).nan_to_num(nan=0.0, posinf=1.0).clamp(0.0, 1.0)
