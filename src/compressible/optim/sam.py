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
        self._save_origins([p])
        return self.state[p]["origin"]

    def _save_origins(self, params: list[torch.Tensor]) -> None:
        """Save w for the tensors that have no saved copy yet (in one multi-tensor copy)."""
        missing = [p for p in params if "origin" not in self.state[p]]
        for p, copy in zip(missing, copies([p.detach() for p in missing])):
            self.state[p]["origin"] = copy

    @torch.no_grad()
    def _grad_norm(self) -> torch.Tensor:
        """‖T_w g‖₂ over every parameter that has a gradient (all groups together)."""
        scaled = [self._origin(p).abs() * p.grad if group["adaptive"] else p.grad
                  for group, p in self._with_grad()]
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(scaled)))

    def _inverse_norm(self) -> torch.Tensor | None:
        """1 / (‖T_w g‖₂ + 1e-12) as a 0-d float64 tensor on the device (None when no group
        normalizes), rounded as the Python float it was: no host read."""
        if not any(g["normalize"] for g in self.param_groups):
            return None
        return 1.0 / (self._grad_norm().double() + 1e-12)

    @torch.no_grad()
    def first_step(self) -> None:
        """Climb from w to w + e(w) using the gradients currently in ``p.grad``."""
        inv_norm = self._inverse_norm()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            self._save_origins(params)
            origins = [self.state[p]["origin"] for p in params]
            grads = [p.grad for p in params]
            ascents = torch._foreach_mul(grads, torch._foreach_mul(origins, origins)) if group["adaptive"] else grads
            torch._foreach_copy_(params, origins)
            if group["normalize"]:
                add_scaled_(params, ascents, (group["rho"] * inv_norm).float())
            else:
                torch._foreach_add_(params, ascents, alpha=group["rho"])

    @torch.no_grad()
    def second_step(self) -> None:
        """Return to w and let the base optimizer apply the gradient now in ``p.grad``."""
        params = [p for group in self.param_groups for p in group["params"] if "origin" in self.state[p]]
        if params:
            torch._foreach_copy_(params, [self.state[p].pop("origin") for p in params])
        self._base_step()

    def _base_step(self) -> None:
        """The base optimizer's update from the gradient now in ``p.grad``."""
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


def add_scaled_(targets: list[torch.Tensor], tensors: list[torch.Tensor], scale: torch.Tensor) -> None:
    """targets += scale * tensors for a 0-d tensor ``scale`` (no host read). On the CPU each in
    one rounding, bit for bit what ``add_(t, alpha=float(scale))`` gave; elsewhere two fused
    multi-tensor kernels (the product rounded once more)."""
    if targets[0].device.type == "cpu":
        for target, t in zip(targets, tensors):
            target.addcmul_(t, scale)
    else:
        torch._foreach_add_(targets, torch._foreach_mul(tensors, scale))


def copies(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """New copies of ``tensors`` in one fused multi-tensor kernel on a GPU (x * 1 is x bit for
    bit, NaN and -0.0 included) instead of one ``clone`` launch per tensor."""
    return torch._foreach_mul(tensors, 1.0) if tensors else []
