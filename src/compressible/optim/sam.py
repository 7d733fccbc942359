"""Sharpness-Aware Minimization (Foret et al., 2021), the frame CrAM is built on.

    e(w) = ρ · T_w² g / ‖T_w g‖       (T_w = |w| if adaptive (ASAM) else 1; g = ∇L(w))
    w    ← w − η · ∇L(w + e(w))      (the base optimizer's step, with its momentum/decay)

The two passes come from the trainer's closure: ``closure()`` at w updates the BatchNorm
running statistics, ``closure(track_bn_stats=False)`` at the perturbed point does not
(CrAM, Sec. 3.3: BatchNorm statistics follow the dense model).
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.optim import Optimizer


class SAM(Optimizer):
    """SAM around any ``torch.optim`` base optimizer, which shares our ``param_groups``.

    Group options: ``rho`` (perturbation size), ``adaptive`` (ASAM scaling by |w|) and
    ``normalize`` (divide the ascent by the gradient norm; Foret et al. always do).
    Subclasses change the perturbed point or the gradient through :meth:`first_step` and
    :meth:`second_step`; both keep the dense weights in ``state[p]["origin"]`` meanwhile.
    """

    def __init__(self, params, base_optimizer_cls: type[Optimizer], rho: float = 0.05,
                 adaptive: bool = False, normalize: bool = True, **base_kwargs):
        if rho < 0.0:
            raise ValueError(f"rho must be non-negative, got {rho}")
        defaults = dict(rho=rho, adaptive=adaptive, normalize=normalize, **base_kwargs)
        super().__init__(params, defaults)
        # The base optimizer adopts our group dicts, so an LR scheduler on SAM drives its lr.
        self.base_optimizer = base_optimizer_cls(self.param_groups, **base_kwargs)
        self._link_base()

    def _link_base(self) -> None:
        """One set of param_groups and one state (momentum buffers round-trip with ours)."""
        self.param_groups = self.base_optimizer.param_groups
        self.base_optimizer.state = self.state

    def _with_grad(self) -> Iterator[tuple[dict, torch.Tensor]]:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p

    def _origin(self, p: torch.Tensor) -> torch.Tensor:
        """The dense weights w of this step (saved on first use)."""
        state = self.state[p]
        if "origin" not in state:
            state["origin"] = p.detach().clone()
        return state["origin"]

    @torch.no_grad()
    def _grad_norm(self) -> torch.Tensor:
        """‖T_w g‖₂ over every parameter that has a gradient (all groups together)."""
        scaled = [self._origin(p).abs() * p.grad if group["adaptive"] else p.grad
                  for group, p in self._with_grad()]
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(scaled)))

    @torch.no_grad()
    def first_step(self) -> None:
        """Climb from w to w + e(w) using the gradients currently in ``p.grad``."""
        needs_norm = any(g["normalize"] for g in self.param_groups)
        inv_norm = 1.0 / (float(self._grad_norm()) + 1e-12) if needs_norm else 1.0  # one sync
        for group, p in self._with_grad():
            scale = group["rho"] * (inv_norm if group["normalize"] else 1.0)
            w = self._origin(p)
            ascent = p.grad * w.square() if group["adaptive"] else p.grad
            p.copy_(w).add_(ascent, alpha=scale)

    @torch.no_grad()
    def second_step(self) -> None:
        """Return to w and let the base optimizer apply the gradient now in ``p.grad``."""
        for group in self.param_groups:
            for p in group["params"]:
                origin = self.state[p].pop("origin", None)
                if origin is not None:
                    p.copy_(origin)
        self.base_optimizer.step()

    @torch.no_grad()
    def step(self, closure: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
        """One SAM update; returns the loss at w (the clean pass)."""
        if closure is None:
            raise ValueError("SAM needs a closure that runs forward + backward")
        closure = torch.enable_grad()(closure)
        loss = closure()  # g = ∇L(w); BN running statistics follow the clean model
        self.first_step()
        closure(track_bn_stats=False)  # ∇L(w + e(w))
        self.second_step()
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # torch replaced our param_groups and state with the loaded ones: the base optimizer
        # adopts those (not the reverse, which would restore the construction-time lr).
        self.base_optimizer.param_groups = self.param_groups
        self.base_optimizer.state = self.state
