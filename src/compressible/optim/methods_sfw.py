"""METHODS builders for Stochastic Frank-Wolfe ("sfw") and the proximal nuclear-norm baseline
("nuclear_prox"). Every hyper-parameter is an explicit keyword with the papers' default meaning.

SFW-pruning (Miao et al.) = constraint "k_sparse", k "5%", k_min 10, tau 15, radius_mode
"initialization", rescale "gradient", momentum 0.9 "exponential", lr 1.0, constrain "all".
Compression-aware SFW (Zimmer et al.) = constraint "group_k_support" / "spectral_k_support" /
"k_support" / "k_sparse", constrain "structured_conv_l2_rest", momentum "heavy_ball"; its sweeps
also use ``constraint_scope`` "global" (one set over all tensors of a kind) and, after a delayed
K, ``delay_k_restore`` "rescale".
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..registry import CONSTRAINTS, METHODS
from .errors import ParamError
from . import constraints as _constraints  # noqa: F401  (registers the feasible sets)
from .nuclear import NuclearProxSGD
from .global_constraints import global_k_space, make_global
from .sfw import SFW
from .sfw_init import SFWInit

RADIUS_MODES = ("radius", "diameter", "initialization")
CONSTRAIN = ("all", "structured_conv_l2_rest")
INIT_NORM_KEYS = ("parameter", "shape")
CONSTRAINT_SCOPES = ("layer", "global")


def resolve_k(k: int | str, k_min: int, n: int) -> int:
    """K from a count (an integer >= 1) or a percentage of the tensor (a string "5%"), then
    min(max(k_min, K), n). SFW-pruning's K = min(max(10, floor(0.05 n)), n) is k="5%", k_min=10.

    A bare fraction is refused: YAML turns 1 and 1.0 into different types, so "k: 1.0" (all of
    the tensor?) and "k: 1" (one entry?) would silently mean different things.
    """
    return min(max(k_min, k_count(k, n), 1), n)


def k_count(k: int | str, n: int) -> int:
    """The count that ``k`` (see :func:`resolve_k`) gives for a tensor of ``n`` entries."""
    if isinstance(k, str) and k.endswith("%"):
        try:
            percent = float(k[:-1])
        except ValueError:
            percent = -1.0
        if 0 < percent <= 100:
            return int(percent / 100 * n)
    elif isinstance(k, int) and not isinstance(k, bool) and k >= 1:
        return k
    raise ValueError(f"k must be a count (an integer >= 1) or a percentage string such as '5%', got {k!r}")


@torch.no_grad()
def expected_init_norms(model: nn.Module, samples: int, seed: int, key: str = "parameter") -> dict[str, float]:
    """E||W0||_2 per parameter name, from ``samples`` fresh default initializations of its layer.

    ``key="parameter"``: each parameter its own (BN weight and bias share a shape but not an
    init). ``key="shape"``: the SFW-pruning authors' behaviour behind their published numbers:
    one value per tensor shape, the last layer's in module order winning, so a BN weight takes
    its bias's 1.0 (and any tensor shares with every other of its shape). The global RNG is
    forked, so training randomness is unchanged. A zero expectation (BN bias) becomes 1, as in
    the authors' code; a parameter of a layer without ``reset_parameters`` gets its current norm.
    """
    norms = raw_init_norms(model, samples, seed)
    norms = {name: value if value > 0 else 1.0 for name, value in norms.items()}
    if key == "shape":
        shapes = dict(model.named_parameters())
        by_shape = {tuple(shapes[name].shape): value for name, value in norms.items()}  # last wins
        norms = {name: by_shape[tuple(p.shape)] for name, p in shapes.items()}
    return norms


@torch.no_grad()
def raw_init_norms(model: nn.Module, samples: int, seed: int) -> dict[str, float]:
    """E||W0||_2 per parameter name, zero expectations kept (see :func:`expected_init_norms`)."""
    norms = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for prefix, module in model.named_modules():
            own = dict(module.named_parameters(recurse=False))
            if own and hasattr(module, "reset_parameters"):
                norms.update(_layer_init_norms(module, prefix, own, samples))
    for name, p in model.named_parameters():
        norms.setdefault(name, float(p.norm()))
    return norms


def _layer_init_norms(module: nn.Module, prefix: str, own: dict, samples: int) -> dict[str, float]:
    fresh = copy.deepcopy(module).cpu()
    totals = dict.fromkeys(own, 0.0)
    for _ in range(samples):
        fresh.reset_parameters()
        for name in own:
            totals[name] += float(getattr(fresh, name).norm())
    return {f"{prefix}.{name}" if prefix else name: total / samples for name, total in totals.items()}


def _constraint_name(module: nn.Module, param_name: str, constraint: str, constrain: str) -> str:
    """The papers constrain every tensor; compression-aware SFW puts its structured norm on conv
    weights only and an L2 ball on every other tensor."""
    if constrain == "all" or (isinstance(module, nn.Conv2d) and param_name == "weight"):
        return constraint
    return "l2"


def _size(name: str, space: int, *, k, k_min, radius_mode, radius, diameter, tau, init_norms) -> dict:
    """Constructor arguments (k and radius or diameter) of constraint ``name`` whose K counts
    ``space`` atoms."""
    kwargs = {"k": resolve_k(k, k_min, space)} if CONSTRAINTS.get(name).uses_k else {}
    if radius_mode == "radius":
        return {**kwargs, "radius": radius}
    if radius_mode == "diameter":
        return {**kwargs, "diameter": diameter}
    return {**kwargs, "diameter": 2.0 * tau * init_norms}  # D = 2 tau E||W0||


def _named_parameters(model: nn.Module):
    """(module, parameter name, full name, parameter) in module order."""
    for prefix, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            yield module, pname, f"{prefix}.{pname}" if prefix else pname, p


def sfw_param_groups(model: nn.Module, *, constraint: str, constrain: str, k, k_min: int,
                     radius_mode: str, radius: float, diameter: float, tau: float, seed: int,
                     init_samples: int, init_norm_key: str = "parameter",
                     constraint_scope: str = "layer") -> list[dict]:
    """One param group per tensor, each with its own constraint (``constraint_scope`` "layer"),
    or one per constraint kind holding all its tensors and one global constraint ("global")."""
    if constrain not in CONSTRAIN:
        raise ParamError("constrain", f"constrain must be one of {CONSTRAIN}, got {constrain!r}")
    if radius_mode not in RADIUS_MODES:
        raise ParamError("radius_mode", f"radius_mode must be one of {RADIUS_MODES}, got {radius_mode!r}")
    CONSTRAINTS.get(constraint)  # fail early with the allowed names
    if init_norm_key not in INIT_NORM_KEYS:
        raise ParamError("init_norm_key", f"init_norm_key must be one of {INIT_NORM_KEYS}, got {init_norm_key!r}")
    if constraint_scope not in CONSTRAINT_SCOPES:
        raise ParamError("constraint_scope",
                         f"constraint_scope must be one of {CONSTRAINT_SCOPES}, got {constraint_scope!r}")
    sizing = dict(k=k, k_min=k_min, radius_mode=radius_mode, radius=radius, diameter=diameter, tau=tau)
    if constraint_scope == "global":
        if init_norm_key != "parameter":
            raise ParamError("init_norm_key",
                             "init_norm_key 'shape' keys per-tensor radii; constraint_scope 'global' has one radius")
        return _global_groups(model, constraint, constrain, sizing, seed, init_samples)
    norms = {}
    if radius_mode == "initialization":
        norms = expected_init_norms(model, init_samples, seed, init_norm_key)
    groups = []
    for module, pname, full, p in _named_parameters(model):
        cname = _constraint_name(module, pname, constraint, constrain)
        size = _size(cname, CONSTRAINTS.get(cname).k_space(p.shape), **sizing, init_norms=norms.get(full))
        groups.append({"params": [p], "constraint": CONSTRAINTS.get(cname)(p.shape, **size), "name": full})
    return groups


def _global_groups(model: nn.Module, constraint: str, constrain: str, sizing: dict, seed: int,
                   init_samples: int) -> list[dict]:
    """Compression-aware SFW's global constraints: the tensors of each constraint kind (all of
    them, or conv weights and the rest) share one set, K counted over all their atoms; from
    initialization D = 2 tau sqrt(sum_i E||W_i||^2), the L2 norm of the per-tensor expected norms
    over the concatenation (zero expectations, BN biases, add nothing, as in their code)."""
    members: dict[str, list] = {}
    for module, pname, full, p in _named_parameters(model):
        members.setdefault(_constraint_name(module, pname, constraint, constrain), []).append((full, p))
    raw = raw_init_norms(model, init_samples, seed) if sizing["radius_mode"] == "initialization" else {}
    groups = []
    for cname, named in members.items():
        shapes = [tuple(p.shape) for _, p in named]
        init = math.sqrt(sum(raw[full] ** 2 for full, _ in named)) if raw else None
        size = _size(cname, global_k_space(cname, shapes), **sizing, init_norms=init)
        groups.append({"params": [p for _, p in named], "constraint": make_global(cname, shapes, **size),
                       "name": f"global {cname}", "names": [full for full, _ in named]})
    return groups


@torch.no_grad()
def shift_inside(groups: list[dict]) -> None:
    """Make the starting point feasible (SFW keeps feasibility only from a feasible start)."""
    for group in groups:
        constraint, params = group["constraint"], group["params"]
        inside = constraint.shift_inside(params) if getattr(constraint, "spans_tensors", False) \
            else [constraint.shift_inside(params[0])]
        for w, value in zip(params, inside):
            w.copy_(value)


def _delay_steps(delay_k_steps: int, delay_k_epochs: int, steps_per_epoch: int) -> int:
    if delay_k_epochs and delay_k_steps:
        raise ParamError("delay_k_epochs", "give delay_k_steps or delay_k_epochs, not both")
    if delay_k_epochs and steps_per_epoch <= 0:
        raise ParamError("delay_k_epochs", "delay_k_epochs needs steps_per_epoch (optimizer steps per epoch)")
    return delay_k_steps or delay_k_epochs * steps_per_epoch


@METHODS.register("sfw")
def build_sfw(model: nn.Module, prunable: list, *, seed: int, lr: float = 0.1, momentum: float = 0.9,
              weight_decay: float = 0.0, constraint: str = "k_sparse", k: int | str = "5%", k_min: int = 1,
              tau: float = 15.0, radius_mode: str = "initialization", radius: float = 1.0,
              diameter: float = 1.0, rescale: str = "gradient", momentum_style: str = "exponential",
              constrain: str = "all", delay_k_steps: int = 0, delay_k_epochs: int = 0,
              steps_per_epoch: int = 0, init: str = "default", init_iterations: int = 390,
              init_lr: float = 1e-3, init_min_scale: float = 0.01, init_bias_min_scale: float = 0.0,
              init_grad_clip: float = 1.0, init_samples: int = 100, init_norm_key: str = "parameter",
              constraint_scope: str = "layer", delay_k_restore: str = "none", feasible_start: bool = True) -> SFW:
    """Stochastic Frank-Wolfe over every parameter of ``model`` (``prunable`` is not needed:
    the papers constrain all tensors; compression is chosen after training).

    ``radius`` is the norm radius (radius_mode "radius"), ``diameter`` the L2 diameter
    ("diameter"), ``tau`` the factor of D = 2 tau E||W0|| ("initialization"). ``init``
    "sfw_init" runs SFW-Init (``sfw_init.py``) before training: ``init_iterations`` Adam steps
    (lr ``init_lr``, gradients clipped to ``init_grad_clip``) on one scale per tensor, kept at or
    above ``init_min_scale`` (``init_bias_min_scale`` for biases).
    ``constraint_scope`` "global" puts one set over all tensors of a constraint kind (K, radius
    and diameter of the whole); ``delay_k_restore`` "rescale" brings the iterate into the set
    when the delayed-K phase ends (both: compression-aware SFW's code; see ``sfw.py``).
    ``feasible_start`` false starts from the initialization as it is, feasible or not: compression-
    aware SFW's code makes the start feasible only under its ``fixed_init`` option (with shape-
    keyed radii a 512-channel BN weight, norm sqrt(512) = 22.6, starts outside its radius tau);
    the Frank-Wolfe steps, convex combinations with points of the set, then move it towards it.
    """
    if weight_decay != 0:
        raise ParamError("weight_decay", "SFW takes no weight decay: the constraint is the regularizer")
    if init not in ("default", "sfw_init"):
        raise ParamError("init", f"init must be 'default' or 'sfw_init', got {init!r}")
    if init == "sfw_init" and constraint_scope == "global":
        raise ParamError("init", "init 'sfw_init' learns one scale per tensor constraint; use constraint_scope 'layer'")
    groups = sfw_param_groups(model, constraint=constraint, constrain=constrain, k=k, k_min=k_min,
                              radius_mode=radius_mode, radius=radius, diameter=diameter, tau=tau,
                              seed=seed, init_samples=init_samples, init_norm_key=init_norm_key,
                              constraint_scope=constraint_scope)
    if feasible_start:
        shift_inside(groups)
    optimizer = SFW(groups, lr=lr, momentum=momentum, momentum_style=momentum_style, rescale=rescale,
                    delay_k_steps=_delay_steps(delay_k_steps, delay_k_epochs, steps_per_epoch),
                    delay_k_restore=delay_k_restore)
    optimizer.sfw_init = SFWInit(init_iterations, init_lr, init_min_scale, init_bias_min_scale,
                                 init_grad_clip) if init == "sfw_init" else None  # run by the trainer
    return optimizer


@METHODS.register("nuclear_prox")
def build_nuclear_prox(model: nn.Module, prunable: list, *, seed: int, lr: float = 0.1,
                       momentum: float = 0.9, weight_decay: float = 5e-4, nuclear: float = 1e-4,
                       layers: str = "conv") -> NuclearProxSGD:
    """Proximal SGD with lambda = ``nuclear`` on conv weights (``layers`` "conv", the
    compression-aware SFW baseline) or on conv and linear weights ("conv_linear")."""
    kinds = {"conv": (nn.Conv2d,), "conv_linear": (nn.Conv2d, nn.Linear)}
    if layers not in kinds:
        raise ParamError("layers", f"layers must be one of {sorted(kinds)}, got {layers!r}")
    targets = {id(m.weight) for m in model.modules() if isinstance(m, kinds[layers])}
    regularized = [p for p in model.parameters() if id(p) in targets]
    rest = [p for p in model.parameters() if id(p) not in targets]
    groups = [{"params": regularized, "nuclear": nuclear}, {"params": rest, "nuclear": 0.0}]
    return NuclearProxSGD([g for g in groups if g["params"]], lr=lr, momentum=momentum,
                          weight_decay=weight_decay)


# The papers constrain every tensor; neither builder reads the prunable set (no run hash entry).
build_sfw.uses_prunable = False
build_nuclear_prox.uses_prunable = False
