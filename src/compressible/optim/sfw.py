"""Stochastic Frank-Wolfe (Pokutta et al. 2020; SFW-pruning, Miao et al. 2022; compression-aware
SFW, Zimmer et al. 2022).

Per tensor w with constraint C (kept in w's param group) and momentum direction d:

    v   = argmin_{v in C} <d, v>                      (the LMO)
    eta = clamp(lr * factor, 0, 1)                     (factor from ``rescale``)
    w  <- (1 - eta) w + eta v                          (a convex combination: w stays in C)

Momentum ``exponential`` (the 2020 library and SFW-pruning): d <- mu d + (1 - mu) g;
``heavy_ball`` (compression-aware SFW, undampened): d <- mu d + g. The first step uses d = g.
Rescaling: ``gradient`` factor = ||d|| / ||w - v|| (Zimmer et al., Thm. 4.1), ``fast_gradient``
||d|| / (D/2), ``diameter`` 1/D, ``none`` 1. No weight decay: the constraint is the regularizer.

A global constraint (``global_constraints.py``) spans several tensors of one param group: their
directions go to one LMO, and one eta (norms over the concatenation) moves them all.
When the delayed-K phase ends the set changes under the iterate, which may then lie outside it;
``delay_k_restore="rescale"`` rescales it onto the new set's boundary at that step, as the
compression-aware SFW code does (its constraints' ``shift_inside`` after ``reset_k``).
"""
from __future__ import annotations

import torch
from torch.optim.optimizer import Optimizer, required

from .step_size import RESCALES, clamped_step, fw_step_size, fw_step_size_joint

MOMENTUM_STYLES = ("exponential", "heavy_ball")
DELAY_K_RESTORES = ("none", "rescale")


class SFW(Optimizer):
    """Stochastic Frank-Wolfe; every param group holds one tensor and its ``constraint``.

    Args:
        params: param groups, each ``{"params": [w], "constraint": Constraint, ...}``.
        lr: learning rate before rescaling (what LR schedulers change).
        momentum: mu in [0, 1).
        momentum_style: ``exponential`` or ``heavy_ball`` (see module docstring).
        rescale: ``gradient``, ``fast_gradient``, ``diameter`` or ``none``.
        delay_k_steps: the first ``delay_k_steps`` steps of a tensor use K = n at the same L2
            diameter, then the constraint's K (delayed-K schedule of compression-aware SFW).
        delay_k_restore: at the change of K, ``none`` leaves the iterate as it is (it may lie
            outside the new set), ``rescale`` shifts it inside (see module docstring).
    """

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.9,
                 momentum_style: str = "exponential", rescale: str = "gradient",
                 delay_k_steps: int = 0, delay_k_restore: str = "none"):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if momentum_style not in MOMENTUM_STYLES:
            raise ValueError(f"momentum_style must be one of {MOMENTUM_STYLES}, got {momentum_style!r}")
        if rescale not in RESCALES:
            raise ValueError(f"rescale must be one of {RESCALES}, got {rescale!r}")
        if delay_k_restore not in DELAY_K_RESTORES:
            raise ValueError(f"delay_k_restore must be one of {DELAY_K_RESTORES}, got {delay_k_restore!r}")
        defaults = dict(lr=lr, momentum=momentum, momentum_style=momentum_style, rescale=rescale,
                        delay_k_steps=delay_k_steps, delay_k_restore=delay_k_restore, constraint=required)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        spans = getattr(group["constraint"], "spans_tensors", False)
        if not spans and len(group["params"]) != 1:
            raise ValueError("SFW: each param group holds exactly one tensor and its constraint "
                             "(or several tensors and one global constraint)")
        if spans and [tuple(p.shape) for p in group["params"]] != group["constraint"].shapes:
            raise ValueError("SFW: a global constraint's shapes must be those of its group's tensors")

    @torch.no_grad()
    def step(self, closure=None):
        """One SFW step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        singles = []
        for group in self.param_groups:
            if getattr(group["constraint"], "spans_tensors", False):
                self._update_global(group)
            elif group["params"][0].grad is not None:
                singles.append(group)
        if singles:
            self._update_tensors(singles)
        return loss

    def _update_tensors(self, groups: list[dict]) -> None:
        """One step of every tensor with its own constraint: the momentum and the norms of the
        step size as multi-tensor operations (one fused kernel each on a GPU, not one per
        tensor; on the CPU the same per-tensor arithmetic), the LMOs tensor by tensor."""
        ws = [group["params"][0] for group in groups]
        for group, w in zip(groups, ws):
            if self._schedule_k(group, self.state[w]):
                w.copy_(group["constraint"].shift_inside(w))
        ds = self._directions(groups, ws)
        vs = [group["constraint"].lmo(d) for group, d in zip(groups, ds)]
        for w, v, eta in zip(ws, vs, self._step_sizes(groups, ds, ws, vs)):
            w.lerp_(v, eta)  # w <- (1 - eta) w + eta v

    @staticmethod
    def _step_sizes(groups: list[dict], ds: list, ws: list, vs: list) -> list[torch.Tensor]:
        """eta of each tensor; with ``gradient`` rescaling and one lr (the usual case) all at
        once from two multi-tensor norms (elementwise the per-tensor arithmetic, bit for bit)."""
        lr, rescale = groups[0]["lr"], groups[0]["rescale"]
        if rescale != "gradient" or any(g["lr"] != lr or g["rescale"] != rescale for g in groups):
            return [fw_step_size(g["lr"], g["rescale"], d, w, v, g["constraint"].diameter)
                    for g, d, w, v in zip(groups, ds, ws, vs)]
        d_norms = torch.stack(torch._foreach_norm(ds))
        distances = torch.stack(torch._foreach_norm(torch._foreach_sub(ws, vs)))
        return list(clamped_step(lr, d_norms / distances).unbind())

    def _update_global(self, group: dict) -> None:
        """One step of the tensors of a global constraint; a tensor without a gradient has a zero
        direction (it is still scaled by 1 - eta: the iterate is one vector)."""
        ws, constraint = group["params"], group["constraint"]
        if all(w.grad is None for w in ws):
            return
        if self._schedule_k(group, self.state[ws[0]]):
            for w, inside in zip(ws, constraint.shift_inside(ws)):
                w.copy_(inside)
        with_grad = [w for w in ws if w.grad is not None]
        directions = dict(zip(map(id, with_grad), self._directions([group] * len(with_grad), with_grad)))
        ds = [directions[id(w)] if w.grad is not None else torch.zeros_like(w) for w in ws]
        vs = constraint.lmo(ds)
        eta = fw_step_size_joint(group["lr"], group["rescale"], ds, ws, vs, constraint.diameter)
        for w, v in zip(ws, vs):
            w.lerp_(v, eta)

    @staticmethod
    def _schedule_k(group: dict, state: dict) -> bool:
        """Count the step and set this step's K; True when the iterate must be restored into
        the set (the first step after the delayed-K phase, with ``delay_k_restore`` rescale)."""
        state["step"] = state.get("step", 0) + 1
        constraint, delay = group["constraint"], group["delay_k_steps"]
        delayed = state["step"] <= delay
        constraint.set_active_k(constraint.k_space(constraint.shape) if delayed else constraint.k)
        return delay > 0 and state["step"] == delay + 1 and group["delay_k_restore"] == "rescale"

    def _directions(self, groups: list[dict], ws: list[torch.Tensor]) -> list[torch.Tensor]:
        """The momentum directions d of ``ws``; the buffers of one momentum and style are
        updated together (multi-tensor), each in the one-pass form per tensor."""
        ds: list = [None] * len(ws)
        buckets: dict = {}
        for i, (group, w) in enumerate(zip(groups, ws)):
            mu, state = group["momentum"], self.state[w]
            if mu == 0:
                ds[i] = w.grad
            elif "momentum_buffer" not in state:  # the first step uses d = g
                ds[i] = state["momentum_buffer"] = w.grad.detach().clone()
            else:
                buckets.setdefault((mu, group["momentum_style"]), []).append(i)
        for (mu, style), members in buckets.items():
            bufs = [self.state[ws[i]]["momentum_buffer"] for i in members]
            grads = [ws[i].grad for i in members]
            if style == "exponential":
                torch._foreach_lerp_(bufs, grads, 1.0 - mu)  # mu buf + (1 - mu) g in one pass
            else:
                torch._foreach_copy_(bufs, torch._foreach_add(grads, bufs, alpha=mu))  # mu buf + g
            for i, buf in zip(members, bufs):
                ds[i] = buf
        return ds

    def state_dict(self) -> dict:
        """The usual optimizer state with each constraint as plain values (``weights_only`` safe)."""
        packed = super().state_dict()
        for saved, group in zip(packed["param_groups"], self.param_groups):
            saved["constraint"] = group["constraint"].state_dict()
        return packed

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore state; the constraint objects stay, with their saved K and diameter."""
        constraints = [group["constraint"] for group in self.param_groups]
        saved = [group["constraint"] for group in state_dict["param_groups"]]
        super().load_state_dict(state_dict)
        for group, constraint, values in zip(self.param_groups, constraints, saved):
            constraint.load_state_dict(values)
            group["constraint"] = constraint
