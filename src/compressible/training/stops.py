"""How a training job ends early, and its exit code (what a scheduler or ``--retries`` reads).

The codes are distinct from a config error (2) and from a crash (1):
  * 75, interrupted: a stop signal arrived, the state was saved, rerunning resumes (EX_TEMPFAIL
    of sysexits.h, "temporary failure, retry");
  * 3, diverged: the loss or the weights became non-finite; retrying repeats it bit for bit.
"""
from __future__ import annotations

EXIT_INTERRUPTED = 75
EXIT_DIVERGED = 3


class RunStopped(Exception):
    """A run ended before its checkpoint; the message says why and what to do."""

    exit_code = 1


class Interrupted(RunStopped):
    """Raised after the resume state was saved on a stop signal."""

    exit_code = EXIT_INTERRUPTED


class TrainingDiverged(RunStopped):
    """A non-finite loss or weights: nothing was written, the last resume state stays."""

    exit_code = EXIT_DIVERGED
