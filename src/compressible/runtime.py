"""Process-wide settings of a job: deterministic kernels, seeded RNGs, torch threads."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def make_deterministic(seed: int, threads: int | None = None, compiled: bool = False) -> None:
    """Same seed -> same checkpoint on CPU (torch deterministic kernels, seeded RNGs)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    deterministic_kernels(compiled)
    # use_deterministic_algorithms also fills every new empty tensor with NaN on CUDA (a write
    # behind each empty_like/clone); every tensor here is written before it is read, so off.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def deterministic_kernels(compiled: bool) -> None:
    """torch's deterministic kernels, warn-only: every CPU kernel used here is deterministic; on
    CUDA a few (kthvalue for the Top-K threshold) have no deterministic variant and should warn,
    not abort a run."""
    # torch.use_deterministic_algorithms also sets torch.compile's own flag, importing the whole
    # compiler stack for it (about 1 s of every job's start); a run that is not compiled needs
    # only the kernels' flag, which is what the public call sets beside it.
    set_kernels_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if compiled or set_kernels_flag is None:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        set_kernels_flag(True, warn_only=True)
