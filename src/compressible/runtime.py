"""Process-wide settings of a job: deterministic kernels, seeded RNGs, torch threads."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def make_deterministic(seed: int, threads: int | None = None) -> None:
    """Same seed -> same checkpoint on CPU (torch deterministic kernels, seeded RNGs)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: every CPU kernel used here is deterministic; on CUDA a few (kthvalue for the
    # Top-K threshold) have no deterministic variant and should warn, not abort a run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
