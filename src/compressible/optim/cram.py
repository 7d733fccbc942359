"""Compression-Aware Minimization (CrAM; Peste et al., ICLR 2023) as SAM with a compressor.

CrAM changes two things in SAM (Sec. 3):
  * the perturbed point is compressed:  w̃ = C(w + ρ·g)                          (Eq. 2)
  * the gradient applied to w:          ∇L(w̃)  (straight-through)               (Eq. 2)
                                        ∇L(w̃) + g  with ``plus`` (CrAM+)          (Eq. 4)
                                        M ⊙ ∇L(w̃)  with ``sparse_grad`` (SG)     (Sec. 3.3, App. C.2)
Options cover the rest of the paper's family:
  * several compressors: one sampled per step from a seeded ``torch.Generator`` (Multi);
  * ``mask_every=F``: a sparsifier's mask is recomputed every F steps (per compressor) and
    reused in between (App. C.6, Table 15);
  * ``perturb_from="compressed"``: the first pass runs at C(w) instead of w. With the
    extra-gradient step this is C-SAM (Eq. 11): w̃ = w + ρ·M⊙∇L(C(w))/‖M⊙∇L(C(w))‖, update with
    M ⊙ ∇L(C(w̃)); without it (``extra_gradient=False``) it is Top-K (Eq. 12): w ← w − η∇L(C(w)).
  * Top-K+ (Eq. 13) is CrAM+ with ρ = 0 and SG: w ← w − η(∇L(w) + M ⊙ ∇L(C(w))).
  * ``p_base``: with this probability a step is a plain base-optimizer step (one pass at w, no
    perturbation, no compression): p(Adam) of App. D, Table 19, drawn from the run's generator.
The base optimizer (SGD, Adam) applies the gradient CrAM leaves in ``p.grad`` (App. D).
BatchNorm running statistics follow the first pass: the dense model for SAM/CrAM/CrAM+/Top-K+,
the compressed model C(w) for C-SAM and Top-K (which never evaluate the dense model).
Prunable tensors are the param groups with ``compress=True`` (BN and biases: ``False``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.optim import Optimizer

from ..compress.base import Compressed
from ..host_syncs import host_read
from .errors import ParamError
from .sam import SAM, copies

Compressor = Callable[[Sequence[torch.Tensor]], Compressed]
PERTURB_FROM = ("dense", "compressed")
DRAW_AHEAD = 64  # Multi's choices read from its CPU generator at once (fewer Python calls)


class CrAM(SAM):
    """SAM whose extrapolated point is compressed; see the module docstring for the options.

    Group options (besides SAM's ``rho``, ``adaptive``, ``normalize``): ``compress`` (the
    prunable flag), ``plus`` (CrAM+) and ``sparse_grad`` (SG). ``normalize`` defaults to False
    as in the authors' code (w̃ = C(w + ρg), Eq. 2).
    """

    def __init__(self, params, base_optimizer_cls: type[Optimizer], compressors: Sequence[Compressor],
                 rho: float = 0.05, *, plus: bool = False, sparse_grad: bool = False,
                 normalize: bool = False, adaptive: bool = False, mask_every: int = 1,
                 perturb_from: str = "dense", extra_gradient: bool = True, seed: int = 0,
                 p_base: float = 0.0, **base_kwargs):
        _check_options(compressors, plus, mask_every, perturb_from, extra_gradient, p_base)
        super().__init__(params, base_optimizer_cls, rho=rho, adaptive=adaptive,
                         normalize=normalize, **base_kwargs)
        self._set_group_defaults(compress=True, plus=plus, sparse_grad=sparse_grad)
        self.compressors = list(compressors)
        self.mask_every = mask_every
        self.perturb_from = perturb_from
        self.extra_gradient = extra_gradient
        self.generator = torch.Generator().manual_seed(seed)
        self.mask_steps: dict[str, int] = {}  # steps taken with each compressor (App. C.6)
        self.drawn: list[int] = []  # Multi: compressor choices drawn ahead, not yet used
        self.p_base = p_base
        self.base_drawn: list[float] = []  # p(Adam): uniforms drawn ahead, not yet used
        self._compressor = self.compressors[0]
        self._refresh = True

    def _set_group_defaults(self, **options) -> None:
        """Group options the base optimizer does not know (torch's ``defaults`` semantics)."""
        self.defaults.update(options)
        for group in self.param_groups:
            for key, value in options.items():
                group.setdefault(key, value)

    # --- compression of the prunable tensors ---------------------------------------------

    def _prunable(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups if g["compress"] for p in g["params"]]

    def _mask_key(self) -> str:
        # With F = 1 a mask lives one step, so all compressors share one slot (less memory).
        return "mask" if self.mask_every == 1 else f"mask@{self._compressor.name}"

    @torch.no_grad()
    def _compress_params(self) -> None:
        """p ← C(p) on the prunable tensors, with a fresh or the cached mask (App. C.6)."""
        params, key = self._prunable(), self._mask_key()
        if not params:
            return
        self._save_origins(params)
        if self._refresh or key not in self.state[params[0]]:
            values, masks = self._compressor([p.detach() for p in params])
            torch._foreach_copy_(params, values)
            for p, m in zip(params, masks or ()):
                self.state[p][key] = m
        else:
            torch._foreach_mul_(params, [self.state[p][key] for p in params])

    @torch.no_grad()
    def _mask_grads(self) -> None:
        """p.grad ← M ⊙ p.grad on the prunable tensors with a mask (sparse gradient, SG)."""
        key = self._mask_key()
        masked = [p for group in self.param_groups if group["compress"] and group["sparse_grad"]
                  for p in group["params"] if p.grad is not None and key in self.state[p]]
        if masked:
            torch._foreach_mul_([p.grad for p in masked], [self.state[p][key] for p in masked])

    def _sample_compressor(self) -> Compressor:
        """Multi: one compressor per step, uniformly, from the run's generator."""
        if len(self.compressors) == 1:
            return self.compressors[0]
        if not self.drawn:  # the next DRAW_AHEAD choices in one read: the same sequence as one by one
            draws = torch.randint(len(self.compressors), (DRAW_AHEAD,), generator=self.generator)
            self.drawn = host_read(draws)  # a CPU generator's output: on the host whatever the device
        return self.compressors[self.drawn.pop(0)]

    def _plain_base_step(self) -> bool:
        """p(Adam) (Table 19): whether this step is a plain base step; with ``p_base`` 0 nothing
        is drawn (the generator then serves Multi alone, as before ``p_base`` existed)."""
        if not self.p_base:
            return False
        if not self.base_drawn:
            self.base_drawn = host_read(torch.rand(DRAW_AHEAD, generator=self.generator, dtype=torch.float64))
        return self.base_drawn.pop(0) < self.p_base

    # --- the two steps ---------------------------------------------------------------------

    @torch.no_grad()
    def first_step(self) -> None:
        """w → w̃ = C(w + e): Eq. 2 from ∇L(w), or Eq. 11 from M ⊙ ∇L(C(w))."""
        if self.perturb_from == "compressed":
            self._mask_grads()  # C-SAM sparsifies the interpolation gradient too (App. C.1)
        plus = [p for group, p in self._with_grad() if group["plus"]]
        for p, copy in zip(plus, copies([p.grad for p in plus])):
            self.state[p]["dense_grad"] = copy  # g, reused by CrAM+ (Eq. 4)
        super().first_step()
        self._compress_params()

    @torch.no_grad()
    def second_step(self) -> None:
        """Apply ∇L(w̃) (masked with SG, plus g for CrAM+) to the dense w."""
        self._mask_grads()
        plus = [p for group in self.param_groups for p in group["params"] if "dense_grad" in self.state[p]]
        dense_grads = [self.state[p].pop("dense_grad") for p in plus]
        with_grad = [(p.grad, g) for p, g in zip(plus, dense_grads) if p.grad is not None]
        if with_grad:
            torch._foreach_add_(*map(list, zip(*with_grad)))
        super().second_step()

    def _base_step(self) -> None:
        """The base step with CrAM's masks moved out of the shared per-tensor state meanwhile:
        Adam sets up a tensor's state when it finds it empty. Key order is kept (same bytes)."""
        held = {}
        for p in self._prunable():
            state = self.state.get(p)
            if state and any(k.startswith("mask") for k in state):
                held[p] = (list(state), {k: state.pop(k) for k in list(state) if k.startswith("mask")})
        super()._base_step()
        for p, (order, masks) in held.items():
            state = self.state[p]
            merged = {**masks, **state}
            state.clear()
            state.update({k: merged[k] for k in order if k in merged})
            state.update({k: v for k, v in merged.items() if k not in order})

    @torch.no_grad()
    def step(self, closure: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
        """One update; returns the loss of the first pass (at w, or at C(w))."""
        if closure is None:
            raise ValueError("CrAM needs a closure that runs forward + backward")
        if self._plain_base_step():
            loss = torch.enable_grad()(closure)()  # ∇L(w); BN statistics as in every first pass
            self._base_step()
            return loss
        self._compressor = self._sample_compressor()
        name = self._compressor.name
        self._refresh = self.mask_steps.get(name, 0) % self.mask_every == 0
        if self.perturb_from == "dense":
            loss = super().step(closure)
        else:
            loss = self._step_from_compressed(torch.enable_grad()(closure))
        self.mask_steps[name] = self.mask_steps.get(name, 0) + 1
        return loss

    def _step_from_compressed(self, closure: Callable[..., torch.Tensor]) -> torch.Tensor:
        """C-SAM (Eq. 11) / Top-K (Eq. 12): the first pass, at C(w), tracks BN statistics."""
        self._compress_params()
        loss = closure()  # ∇L(C(w))
        if self.extra_gradient:
            self.first_step()
            closure(track_bn_stats=False)  # ∇L(C(w̃))
        self.second_step()
        return loss

    # --- checkpointing ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["cram"] = {"generator": self.generator.get_state(), "mask_steps": dict(self.mask_steps),
                         "drawn": list(self.drawn)}
        if self.p_base:  # only then: a run without p(Adam) saves the same bytes as before
            state["cram"]["base_drawn"] = list(self.base_drawn)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("cram")
        super().load_state_dict(state_dict)
        self.generator.set_state(extra["generator"])
        self.mask_steps = dict(extra["mask_steps"])
        self.drawn = list(extra.get("drawn", []))
        self.base_drawn = list(extra.get("base_drawn", []))
        for p_state in self.state.values():  # torch casts every tensor to the param's dtype
            for key in [k for k in p_state if k.startswith("mask")]:
                p_state[key] = p_state[key].bool()


def _check_options(compressors, plus: bool, mask_every: int, perturb_from: str,
                   extra_gradient: bool, p_base: float) -> None:
    if not compressors:
        raise ValueError("CrAM needs at least one compressor")
    if perturb_from not in PERTURB_FROM:
        raise ParamError("perturb_from", f"perturb_from must be one of {PERTURB_FROM}, got {perturb_from!r}")
    if plus and perturb_from == "compressed":
        raise ParamError("perturb_from", "plus needs ∇L(w), which a first pass at C(w) does not compute")
    if not extra_gradient and perturb_from == "dense":
        raise ParamError("extra_gradient", "extra_gradient=False is Top-K (Eq. 12): it needs perturb_from='compressed'")
    if mask_every < 1:
        raise ParamError("mask_every", f"mask_every must be >= 1, got {mask_every}")
    if not 0.0 <= p_base <= 1.0:
        raise ParamError("p_base", f"p_base is a probability in [0, 1], got {p_base}")
