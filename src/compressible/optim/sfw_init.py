"""SFW-Init (SFW-pruning, Miao et al. 2022, Sec. 3.3): a learned initialization, GradInit-style
(Zhu et al. 2021), run once before training.

Each tensor is re-parametrized as w_i = s_i * w0_i (w0_i its starting point, s_i one scalar).
An iteration draws three batches B0, B1, B2, takes one SFW step from s * w0 on the raw gradient
of the loss on B0 u B1 (no momentum; the run's lr and rescaling, here 'gradient'),

    g = grad L_{B0 u B1}(s w0),   v = LMO(g),   eta = clamp(lr ||g|| / ||s w0 - v||, 0, 1),
    w'(s) = (1 - eta) s w0 + eta v,

and lowers the objective J(s) = L_{B0 u B2}(w'(s)) / lr, the loss after that step, by one Adam
step on s. dJ/ds runs through the step itself, the Hessian term included (the gradient g is taken
with a graph); v is piecewise constant in g. Each dJ/ds_i is clipped to [-clip, clip] before Adam,
and s_i stays >= ``min_scale`` (``bias_min_scale`` for biases). The SFW-pruning authors' values:
390 iterations, Adam lr 1e-3, clip 1, min scale 0.01 for weights and 0 for biases.

The trainer hands over the batches, drawn by a generator of their own (seeded from the run's seed,
``training.loop.init_batches``), so a run's training data order is that of the same run without
SFW-Init. BatchNorm normalizes with batch statistics and its
running statistics stay untouched; dropout is off. The learned point is finally shifted inside
each tensor's constraint, since SFW keeps feasibility only from a feasible start.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..bn import batch_norms, frozen_bn_stats
from .step_size import fw_step_size

BETAS, EPS = (0.9, 0.999), 1e-8  # Adam on the scales (torch defaults, as GradInit)
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SFWInit:
    """How SFW-Init runs (the method parameters ``init_*`` of ``sfw``)."""

    iterations: int = 390
    lr: float = 1e-3
    min_scale: float = 0.01
    bias_min_scale: float = 0.0
    grad_clip: float = 1.0  # 0: no clipping


def learn_initialization(model: nn.Module, optimizer, batches: Iterable[Batch]) -> None:
    """Run SFW-Init on ``model`` when the run's optimizer asks for it (``init: sfw_init``),
    drawing from ``batches`` (endless; the trainer gives them a generator of their own)."""
    recipe = getattr(optimizer, "sfw_init", None)
    if recipe is None:
        return
    if any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()):
        raise ValueError("init: sfw_init differentiates through BatchNorm twice, which SyncBatchNorm "
                         "does not support; set training.sync_bn: false for this method")
    sfw_init(model, optimizer.param_groups, recipe, iter(batches))


def sfw_init(model: nn.Module, groups: list[dict], recipe: SFWInit, batches: Iterator[Batch]) -> torch.Tensor:
    """Learn one scale per param group's tensor on ``batches``, set w = s * w0 (shifted inside
    its constraint); return the scales."""
    params = [group["params"][0] for group in groups]
    names = {id(p): name for name, p in model.named_parameters()}
    keys = [names[id(p)] for p in params]
    origins = [p.detach().clone() for p in params]
    floors = torch.tensor([recipe.bias_min_scale if key.rpartition(".")[2] == "bias" else recipe.min_scale
                           for key in keys], device=params[0].device)
    scales = torch.ones(len(params), device=params[0].device)
    adam = _Adam(scales)
    with _batch_statistics(model):
        for _ in range(recipe.iterations):
            grad = _scale_gradient(model, groups, keys, origins, scales, _three(batches, params[0].device))
            if recipe.grad_clip > 0:
                grad = grad.clamp(-recipe.grad_clip, recipe.grad_clip)
            adam.step(grad, recipe.lr, floors)
    _apply(groups, origins, scales)
    return scales


def _three(batches: Iterator[Batch], device: torch.device) -> list[Batch]:
    return [(x.to(device), y.to(device)) for x, y in (next(batches) for _ in range(3))]


def _scale_gradient(model, groups, keys, origins, scales, three: list[Batch]) -> torch.Tensor:
    """dJ/ds for one draw of (B0, B1, B2), through the SFW step (second order)."""
    (x0, y0), (x1, y1), (x2, y2) = three
    s = scales.clone().requires_grad_(True)
    weights = [s[i] * w0 for i, w0 in enumerate(origins)]
    loss = F.cross_entropy(functional_call(model, dict(zip(keys, weights)), (torch.cat([x0, x1]),)),
                           torch.cat([y0, y1]))
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    stepped = [_sfw_step(group, w, g) for group, w, g in zip(groups, weights, grads)]
    after = F.cross_entropy(functional_call(model, dict(zip(keys, stepped)), (torch.cat([x0, x2]),)),
                            torch.cat([y0, y2]))
    return torch.autograd.grad(after / _base_lr(groups[0]), s)[0]


def _sfw_step(group: dict, w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """w' = (1 - eta) w + eta v, differentiable in w and g (v is constant where it is defined)."""
    constraint = group["constraint"]
    v = constraint.lmo(g.detach())
    eta = fw_step_size(_base_lr(group), group["rescale"], g, w, v, constraint.diameter)
    return w + eta * (v - w)


def _base_lr(group: dict) -> float:
    """The learning rate before any schedule factor (their step uses the configured lr)."""
    return group.get("initial_lr", group["lr"])


class _Adam:
    """Adam on the scale vector, with a floor per scale (GradInit's rescaled Adam)."""

    def __init__(self, scales: torch.Tensor):
        self.scales, self.steps = scales, 0
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(scales), torch.zeros_like(scales)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, lr: float, floors: torch.Tensor) -> None:
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - BETAS[0])
        self.exp_avg_sq.lerp_(grad.square(), 1 - BETAS[1])
        m_hat = self.exp_avg / (1 - BETAS[0] ** self.steps)
        v_hat = self.exp_avg_sq / (1 - BETAS[1] ** self.steps)
        self.scales.sub_(lr * m_hat / (v_hat.sqrt() + EPS))
        torch.maximum(self.scales, floors, out=self.scales)


@torch.no_grad()
def _apply(groups: list[dict], origins: list[torch.Tensor], scales: torch.Tensor) -> None:
    for i, (group, w0) in enumerate(zip(groups, origins)):
        w = group["params"][0]
        w.copy_(group["constraint"].shift_inside(w0 * scales[i]))


@contextlib.contextmanager
def _batch_statistics(model: nn.Module):
    """Dropout off, BatchNorm on batch statistics without touching its running statistics."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for norm in batch_norms(model):
        norm.train()
    try:
        with frozen_bn_stats(model):
            yield
    finally:
        for module, mode in modes.items():
            module.training = mode
