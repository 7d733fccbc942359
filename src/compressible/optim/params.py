"""What each method parameter may be: one rule per parameter name, shared by every method
that takes it (``lr`` means the same for SGD, SAM, CrAM and SFW).

The config check applies these before any job runs, then builds the method once on a tiny
model, so that rules between parameters (``dense_first_last`` needs ``topk_scope: uniform``;
SFW takes no weight decay) are the builders' own and are not written twice.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Optional

from ..registry import COMPRESSORS, CONSTRAINTS
from .baseline import BASES
from .methods_sfw import CONSTRAIN, CONSTRAINT_SCOPES, INIT_NORM_KEYS, RADIUS_MODES, k_count
from .sfw import DELAY_K_RESTORES, MOMENTUM_STYLES
from .step_size import RESCALES

Rule = Callable[[Any], Optional[str]]  # the allowed values in words, or None when the value is fine


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive(value) -> Optional[str]:
    return None if _real(value) and value > 0 else "a number > 0"


def non_negative(value) -> Optional[str]:
    return None if _real(value) and value >= 0 else "a number >= 0"


def unit_interval(value) -> Optional[str]:
    return None if _real(value) and 0 <= value < 1 else "a number in [0, 1)"


def probability(value) -> Optional[str]:
    return None if _real(value) and 0 <= value <= 1 else "a probability in [0, 1]"


def betas(value) -> Optional[str]:
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(unit_interval(v) is None for v in value)
    return None if ok else "two numbers in [0, 1), e.g. [0.9, 0.999]"


def boolean(value) -> Optional[str]:
    return None if isinstance(value, bool) else "true or false"


def count(minimum: int) -> Rule:
    return lambda value: None if _int(value) and value >= minimum else f"an integer >= {minimum}"


def one_of(*allowed: str) -> Rule:
    return lambda value: None if value in allowed else f"one of {', '.join(map(repr, allowed))}"


def registered(reg) -> Rule:
    return lambda value: None if isinstance(value, str) and value in reg else f"one of {', '.join(reg.names())}"


def sparsity(value) -> Optional[str]:
    return None if _real(value) and 0 <= value < 1 else "a sparsity in [0, 1)"


def sparsities(value) -> Optional[str]:
    if value is None:
        return None
    ok = isinstance(value, list) and value and all(sparsity(v) is None for v in value)
    return None if ok else "a non-empty list of sparsities in [0, 1), e.g. [0.5, 0.7, 0.9]"


def patterns(value) -> Optional[str]:
    nm = COMPRESSORS.get("nm")
    try:
        ok = isinstance(value, list) and value and [nm.check(v) for v in value]
    except ValueError:
        ok = False
    return None if ok else f"a non-empty list of N:M patterns, each {nm.allowed}"


def bits(value) -> Optional[str]:
    try:
        COMPRESSORS.get("quantize").check(value)
    except ValueError:
        return COMPRESSORS.get("quantize").allowed
    return None


def k_value(value) -> Optional[str]:
    try:
        k_count(value, 100)
    except ValueError:
        return "a count (an integer >= 1) or a percentage string such as '5%'"
    return None


RULES: dict[str, Rule] = {
    "lr": positive, "momentum": unit_interval, "weight_decay": non_negative, "nesterov": boolean,
    "base": one_of(*BASES), "betas": betas, "eps": positive, "p_base": probability,
    "rho": non_negative, "adaptive": boolean, "normalize": boolean,
    "sparsity": sparsity, "sparsities": sparsities, "topk_scope": one_of("global", "uniform"),
    "dense_first_last": boolean, "sparse_grad": boolean, "mask_every": count(1),
    "patterns": patterns, "bits": bits,
    "constraint": registered(CONSTRAINTS), "constrain": one_of(*CONSTRAIN), "k": k_value,
    "k_min": count(1), "tau": positive, "radius_mode": one_of(*RADIUS_MODES), "radius": positive,
    "diameter": positive, "rescale": one_of(*RESCALES), "momentum_style": one_of(*MOMENTUM_STYLES),
    "delay_k_steps": count(0), "delay_k_epochs": count(0), "steps_per_epoch": count(0),
    "init": one_of("default", "sfw_init"), "init_iterations": count(1), "init_lr": positive,
    "init_min_scale": positive, "init_samples": count(1), "init_norm_key": one_of(*INIT_NORM_KEYS),
    "constraint_scope": one_of(*CONSTRAINT_SCOPES), "delay_k_restore": one_of(*DELAY_K_RESTORES),
    "init_bias_min_scale": non_negative, "init_grad_clip": non_negative,  # 0: biases may vanish; no clipping
    "nuclear": non_negative, "layers": one_of("conv", "conv_linear"), "feasible_start": boolean,
}


def check_value(name: str, value: Any) -> Optional[str]:
    """The allowed values of parameter ``name`` in words when ``value`` is not one of them."""
    return RULES[name](value)
