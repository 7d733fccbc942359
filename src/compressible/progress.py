"""Progress a person can follow: one line per epoch (or one-shot level) in the job's log, and a
step bar when the job runs in a terminal."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable, Iterator


def clock(seconds: float) -> str:
    """Seconds as h:mm:ss (whole seconds)."""
    return str(timedelta(seconds=round(seconds)))


def step_bar(steps: Iterable, total: int, description: str) -> Iterator:
    """A tqdm bar over one epoch's steps when stderr is a terminal; the bare steps in a batch job,
    whose log should hold the epoch lines only."""
    if not sys.stderr.isatty():
        return iter(steps)
    from tqdm import tqdm

    return iter(tqdm(steps, total=total, desc=description, leave=False, dynamic_ncols=True))


METRIC_SHORT = {"accuracy": "acc"}  # the progress line's name of a metric


@dataclass
class EpochClock:
    """Times the epochs of this process (a resumed job counts from its own start)."""

    epochs: int
    started: float = field(default_factory=time.perf_counter)
    epoch_started: float = field(default_factory=time.perf_counter)
    seconds: list = field(default_factory=list)  # training time of the epochs timed here

    def begin_epoch(self) -> None:
        self.epoch_started = time.perf_counter()

    def end_epoch(self) -> float:
        """The epoch's training time (evaluation excluded: images/s is the training speed)."""
        self.seconds.append(time.perf_counter() - self.epoch_started)
        return self.seconds[-1]

    def line(self, epoch: int, train_loss: float, accuracy: float, lr: float, images: int,
             metric: str = "accuracy") -> str:
        """``epoch`` is 1-based and done; the remaining time extrapolates the whole epochs
        (training and evaluation) timed by this process."""
        elapsed = time.perf_counter() - self.started
        remaining = elapsed / len(self.seconds) * (self.epochs - epoch)
        speed = images / self.seconds[-1] if self.seconds[-1] > 0 else float("inf")
        return (f"epoch {epoch}/{self.epochs}  train loss {train_loss:.4f}  test {METRIC_SHORT.get(metric, metric)} {accuracy:.2f}%  "
                f"lr {lr:.4g}  {speed:,.0f} img/s  elapsed {clock(elapsed)}  remaining {clock(remaining)}")
