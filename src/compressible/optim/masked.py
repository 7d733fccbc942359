"""Sparse fine-tuning with a fixed mask (CrAM Sec. 4.2 and App. D: one-shot pruned BERT models
fine-tuned "with the fixed sparsity mask and Adam optimizer", at most 2 epochs).

The mask is the pruned model's zeros in the prunable tensors, taken when the optimizer is built.
After every base step the masked entries are set back to +0.0, and so are their entries in
the optimizer state (Adam's moments, SGD's momentum), so no pruned weight comes back and no
stale moment pushes it later. Registered as the method ``masked`` (base ``adam`` by default).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.optim import Optimizer

from ..registry import METHODS
from .baseline import ADAM, SGD, base_optimizer
from .methods_cram import accepted, param_groups


class FixedMask(Optimizer):
    """A base optimizer (sharing our ``param_groups`` and state, as SAM's does) whose step keeps
    the zeros of the ``compress=True`` group's tensors at build time."""

    def __init__(self, params, base_optimizer_cls: type[Optimizer], **base_kwargs):
        super().__init__(params, dict(base_kwargs))
        self.base_optimizer = base_optimizer_cls(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.base_optimizer.state = self.state
        self.pruned = {p: p.detach() == 0 for group in self.param_groups if group.get("compress")
                       for p in group["params"]}

    @torch.no_grad()
    def step(self, closure: Callable[..., torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = torch.enable_grad()(closure)() if closure is not None else None
        self.base_optimizer.step()
        self.apply_mask()
        return loss

    @torch.no_grad()
    def apply_mask(self) -> None:
        """Masked weights, and their optimizer-state entries, back to +0.0."""
        for p, pruned in self.pruned.items():
            p.masked_fill_(pruned, 0.0)
            for value in self.state.get(p, {}).values():
                if isinstance(value, torch.Tensor) and value.shape == p.shape:
                    value.masked_fill_(pruned, 0.0)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["fixed_mask"] = [pruned.clone() for pruned in self.pruned.values()]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        saved = state_dict.pop("fixed_mask")
        super().load_state_dict(state_dict)
        self.base_optimizer.param_groups = self.param_groups
        self.base_optimizer.state = self.state
        self.pruned = {p: m.to(device=p.device, dtype=torch.bool) for p, m in zip(self.pruned, saved)}


def build_masked(model: nn.Module, prunable: list, *, seed: int, **params) -> FixedMask:
    """Fine-tune with the prunable tensors' current zeros fixed (``base`` adam by default)."""
    p = accepted(build_masked.params, params)
    base, base_kwargs = base_optimizer(p["base"], params)
    return FixedMask(param_groups(model, prunable), base, **base_kwargs)


build_masked.params = {**ADAM, "momentum": SGD["momentum"], "base": "adam"}
METHODS.register("masked")(build_masked)
