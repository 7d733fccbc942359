"""CPU numerics of a job: ``fast`` (the kernels the CPU's instruction set selects) or
``portable`` (the same bytes on every x86-64 CPU).

PyTorch picks its CPU kernels per machine: ATen's vectorized kernels by instruction set
(AVX-512, AVX2, or the baseline), oneDNN's convolutions by its own ISA dispatch, MKL's GEMM by
its code path. Each orders floating-point sums differently, so one seed trains different
weights on different CPU generations. ``portable`` pins all three: ATen's baseline kernels
(``ATEN_CPU_CAPABILITY=default``), oneDNN off (convolutions through ATen's im2col + GEMM), and
MKL's conditional numerical reproducibility (``MKL_CBWR=COMPATIBLE``). The first and last are
read when the libraries initialize, so a job that lacks them starts itself again with them
before any work. The thread count is the config's (``training.threads``) on every machine.
"""
from __future__ import annotations

import os
import sys

MODES = ("fast", "portable")
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


def missing_environment(mode: str) -> dict[str, str]:
    """The variables ``mode`` needs that this process was not started with."""
    if mode != "portable":
        return {}
    return {k: v for k, v in PORTABLE_ENV.items() if os.environ.get(k) != v}


def enter(mode: str, relaunch: bool) -> None:
    """Put this process under ``mode``: started again with the portable environment when it
    lacks it (``relaunch``: this process is ``python -m compressible``), then oneDNN off."""
    missing = missing_environment(mode)
    if missing and relaunch:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "compressible", *sys.argv[1:]], {**os.environ, **missing})
    if missing:
        wanted = " ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items())
        raise RuntimeError(f"training.numerics 'portable' needs the process started with {wanted} "
                           "(`python -m compressible` sets them itself)")
    if mode == "portable":
        import torch

        torch.backends.mkldnn.enabled = False


def describe() -> dict[str, str]:
    """What the provenance records: the mode in force and the ATen kernels' instruction set."""
    import torch

    portable = not missing_environment("portable") and not torch.backends.mkldnn.enabled
    return {"numerics": "portable" if portable else "fast",
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
