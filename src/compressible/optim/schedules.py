"""Learning-rate schedules as LambdaLR factors per optimizer step.

``cosine``: linear warm-up then cosine decay to 0 (CrAM: 5 warm-up epochs on CIFAR-10);
``step``: divide by 10 at each milestone (fractions of training); ``constant``; ``linear``:
linear warm-up then linear decay to 0 (Transformers' default, the BERT recipes of CrAM App. D). With
``schedule_unit: epoch`` the factor is constant within an epoch and follows the epoch index, as
the CrAM authors' CosineLR (stepped once per epoch); ``step`` (the default) moves every step.
``sfw_dynamic``: SFW-pruning's training script ("dynamic_change", its default): divide by 10 at
epochs ⌊E/3⌋ and ⌊2E/3⌋, and from epoch 21 on, every 5 epochs, multiply by 0.7 when the mean
training loss of the 5 epochs before the last one exceeds that of the 10 before it, by 1.06
when it is lower. It reads the per-epoch training losses so far (the trainer's curves), so it
is a pure function of the run's history and resumes exactly. Which loss stands for an epoch is
``training.schedule_loss``: the mean over its steps, or, as in the authors' train_prune.py (whose
list of step losses is emptied inside the step loop), the loss of its last batch.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

SCHEDULES = ("cosine", "step", "constant", "sfw_dynamic", "linear")


def cosine(t: int, total: int, warmup: int) -> float:
    if t < warmup:
        return (t + 1) / warmup
    progress = (t - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def linear(t: int, total: int, warmup: int) -> float:
    if t < warmup:
        return (t + 1) / warmup
    return max(0.0, (total - t) / max(1, total - warmup))


def step_decay(t: int, total: int, warmup: int, milestones: Sequence[float]) -> float:
    if t < warmup:
        return (t + 1) / warmup
    return 0.1 ** sum(t >= m * total for m in milestones)


def sfw_dynamic(epoch: int, epochs: int, losses: Sequence[float]) -> float:
    """The factor in force during ``epoch`` (0-based), from the mean losses of epochs < epoch."""
    factor = 1.0
    for e in range(epoch + 1):
        if e in (epochs // 3, 2 * epochs // 3):
            factor *= 0.1
        if e > 20 and e % 5 == 0 and len(losses) >= e - 1:
            recent = sum(losses[e - 6:e - 1]) / 5  # the authors' window skips the last epoch
            longer = sum(losses[e - 11:e - 1]) / 10
            factor *= 0.7 if recent > longer else 1.06 if recent < longer else 1.0
    return factor


def lr_factor(schedule: str, total_steps: int, warmup_steps: int = 0,
              milestones: Sequence[float] = (0.5, 0.75), steps_per_epoch: int = 1,
              per_epoch: bool = False, losses: Sequence[float] = ()) -> Callable[[int], float]:
    """Factor of the base lr at optimizer step t (warm-up and total in steps).

    ``losses`` is the trainer's list of per-epoch mean training losses, read when the factor is
    asked for (``sfw_dynamic`` only).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    if schedule == "sfw_dynamic":
        epochs = total_steps // steps_per_epoch
        return lambda t: sfw_dynamic(t // steps_per_epoch, epochs, losses)
    unit = steps_per_epoch if per_epoch else 1
    total, warmup = total_steps // unit, warmup_steps // unit
    base = {"cosine": lambda t: cosine(t, total, warmup),
            "step": lambda t: step_decay(t, total, warmup, milestones),
            "constant": lambda t: 1.0, "linear": lambda t: linear(t, total, warmup)}[schedule]
    return lambda t: base(t // unit)
