"""How the train rule starts one run (torch-free: the Snakefile imports it at parse time)."""
from __future__ import annotations


def launcher(gpus_per_run: int) -> str:
    """Plain Python, or ``torchrun`` with one process per GPU (``training.gpus_per_run``)."""
    if gpus_per_run == 1:
        return "python -m compressible"
    return f"torchrun --standalone --nproc_per_node={gpus_per_run} -m compressible"
