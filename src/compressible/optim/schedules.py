"""Learning-rate schedules as LambdaLR factors per optimizer step (warm-up is linear)."""
from __future__ import annotations

import math
from typing import Callable, Sequence


def lr_factor(schedule: str, total_steps: int, warmup_steps: int = 0,
              milestones: Sequence[float] = (0.5, 0.75)) -> Callable[[int], float]:
    """Factor of the base lr at step t.

    ``cosine``: linear warm-up then cosine decay to 0 (CrAM: 5 warm-up epochs on CIFAR);
    ``step``: divide by 10 at each milestone (fractions of training); ``constant``.
    """
    def cosine(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        progress = (t - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def step(t: int) -> float:
        if t < warmup_steps:
            return (t + 1) / warmup_steps
        return 0.1 ** sum(t >= m * total_steps for m in milestones)

    factors = {"cosine": cosine, "step": step, "constant": lambda t: 1.0}
    if schedule not in factors:
        raise ValueError(f"unknown schedule {schedule!r}; allowed: {sorted(factors)}")
    return factors[schedule]
