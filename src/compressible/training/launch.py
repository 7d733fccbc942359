"""How the rules start a job (torch-free: the Snakefile imports it at parse time)."""
from __future__ import annotations

import shlex
import sys

# The interpreter running Snakemake, not whatever `python` is first on PATH: `.venv/bin/snakemake`
# then works with nothing activated (its jobs import the package it was installed with).
PYTHON = shlex.quote(sys.executable)


def launcher(gpus_per_run: int) -> str:
    """What follows the interpreter: the package, or ``torch.distributed.run`` (torchrun) with
    one process per GPU (``training.gpus_per_run``)."""
    if gpus_per_run == 1:
        return "-m compressible"
    return f"-m torch.distributed.run --standalone --nproc_per_node={gpus_per_run} -m compressible"


GPU_SLOTS = "results/.gpu-slots"  # shared by every experiment of this checkout: they share the GPUs


def gpu_claim(gpus: int, processes: int, jobs_per_gpu: int) -> str:
    """The prefix that makes a GPU job claim ``processes`` GPU slots (gpu_slots.py) before CUDA
    starts; none for CPU-only configs (``training.gpus: 0``)."""
    if gpus == 0:
        return ""
    return (f"{PYTHON} -m compressible.gpu_slots --dir {GPU_SLOTS} --gpus {processes}"
            f" --jobs-per-gpu {jobs_per_gpu} -- ")
