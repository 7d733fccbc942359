"""SFW-Init (SFW-pruning, Miao et al. 2022, Sec. 3.3): a GradInit-style learned initialization.

Each tensor is re-parametrized as w = s * w0 (w0 its default initialization, s one scalar per
tensor). SFW-Init minimizes the loss *after one SFW step* from w,

    J(s) = L(w'(s)),   w'(s) = (1 - eta(s)) s w0 + eta(s) v,   v = LMO(grad L(s w0)),

with Adam on s and s >= ``init_min_scale`` (the authors: Adam lr 1e-3, 390 iterations = one
CIFAR epoch at batch 128, min scale 0.01).

It runs inside :class:`~compressible.optim.sfw.SFW`: the first ``init_iterations`` calls to
``step(closure)`` are SFW-Init iterations on the trainer's batches, then SFW trains from
s * w0 shifted inside its constraint. The trainer's closure returns gradients, not a
differentiable graph, so dJ/ds is first-order (first-order MAML style): exact in s * w0 and in
eta's dependence on ||w - v||, with the Hessian term (how grad L(s w0) moves with s) dropped.
For the K-sparse polytope v is piecewise constant in the gradient anyway. Both passes use batch
statistics and leave BatchNorm running statistics untouched (``closure(track_bn_stats=False)``).
"""
from __future__ import annotations

import torch

from .step_size import fw_step_size

BETAS, EPS = (0.9, 0.999), 1e-8  # Adam on the scales (torch defaults, as GradInit)


@torch.no_grad()
def sfw_init_step(optimizer, closure) -> torch.Tensor:
    """One SFW-Init iteration on the batch of ``closure``; returns the loss at s * w0."""
    if closure is None:
        raise ValueError("SFW-Init needs step(closure): it evaluates the loss twice per batch")
    groups = optimizer.param_groups
    with torch.enable_grad():
        loss = closure(track_bn_stats=False)
    steps = [_trial_step(optimizer, g) for g in groups if g["params"][0].grad is not None]
    with torch.enable_grad():
        closure(track_bn_stats=False)  # gradients at w'(s)
    for group, dw_ds in steps:
        _adam_on_scale(optimizer, group, dw_ds)
    for group in groups:
        group["init_iterations"] -= 1
        if group["init_iterations"] == 0:
            _finish(optimizer, group)
    return loss


def _scale_state(optimizer, w: torch.Tensor) -> dict:
    state = optimizer.state[w]
    if "init_origin" not in state:
        state["init_origin"] = w.detach().clone()
        zero = w.new_zeros(())
        state.update(init_scale=w.new_ones(()), init_exp_avg=zero.clone(), init_exp_avg_sq=zero.clone(),
                     init_step=0)
    return state


def _trial_step(optimizer, group: dict):
    """Move w to w'(s) (one SFW step on the raw gradient); return dw'/ds."""
    w = group["params"][0]
    origin, constraint = _scale_state(optimizer, w)["init_origin"], group["constraint"]
    v = constraint.lmo(w.grad)
    eta = fw_step_size(group["lr"], group["rescale"], w.grad, w, v, constraint.diameter)
    deta_ds = torch.zeros_like(eta)
    if group["rescale"] == "gradient" and 0 < float(eta) < 1:
        # eta = lr ||g|| / ||s w0 - v||  =>  d eta/ds = -eta <s w0 - v, w0> / ||s w0 - v||^2
        gap = w - v
        deta_ds = -eta * (gap * origin).sum() / gap.square().sum()
    dw_ds = origin * (1 - eta) + (v - w) * deta_ds
    w.lerp_(v, eta)
    return group, dw_ds


def _adam_on_scale(optimizer, group: dict, dw_ds: torch.Tensor) -> None:
    """dJ/ds = <grad L(w'), dw'/ds>; one Adam step on s, then w = s * w0."""
    w = group["params"][0]
    state = optimizer.state[w]
    grad = (w.grad * dw_ds).sum() if w.grad is not None else w.new_zeros(())
    state["init_step"] += 1
    state["init_exp_avg"].lerp_(grad, 1 - BETAS[0])
    state["init_exp_avg_sq"].lerp_(grad.square(), 1 - BETAS[1])
    m_hat = state["init_exp_avg"] / (1 - BETAS[0] ** state["init_step"])
    v_hat = state["init_exp_avg_sq"] / (1 - BETAS[1] ** state["init_step"])
    scale = state["init_scale"].sub_(group["init_lr"] * m_hat / (v_hat.sqrt() + EPS))
    scale.clamp_(min=group["init_min_scale"])
    w.copy_(state["init_origin"] * scale)


def _finish(optimizer, group: dict) -> None:
    """Drop the SFW-Init state and make the learned point feasible for SFW."""
    w = group["params"][0]
    state = optimizer.state[w]
    if "init_origin" in state:
        w.copy_(state["init_origin"] * state["init_scale"])
    for key in ("init_origin", "init_scale", "init_exp_avg", "init_exp_avg_sq", "init_step"):
        state.pop(key, None)
    w.copy_(group["constraint"].shift_inside(w))
