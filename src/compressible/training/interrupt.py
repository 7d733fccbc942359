"""Time limits: SIGTERM or SIGUSR1 asks a training job to save its state and stop.

A batch scheduler (SLURM's ``--signal``, a preemption) signals the job before killing it. The
handler only sets a flag; the training loop looks at it at every step boundary, writes the
resume state there (including the position inside the epoch) and the job exits with code 75
(``stops.EXIT_INTERRUPTED``, "interrupted, resumable"): a rerun continues exactly there.
"""
from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """While entered, the stop signals set :attr:`signal_name` instead of ending the process."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, _frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
