"""How the train rule starts one run (torch-free: the Snakefile imports it at parse time)."""
from __future__ import annotations


def launcher(gpus_per_run: int) -> str:
    """Plain Python, or ``torchrun`` with one process per GPU (``training.gpus_per_run``)."""
    if gpus_per_run == 1:
        return "python -m compressible"
    return f"torchrun --standalone --nproc_per_node={gpus_per_run} -m compressible"


GPU_SLOTS = "results/.gpu-slots"  # shared by every experiment of this checkout: they share the GPUs


def gpu_claim(gpus: int, processes: int, jobs_per_gpu: int) -> str:
    """The prefix that makes a GPU job claim ``processes`` GPU slots (gpu_slots.py) before CUDA
    starts; none for CPU-only configs (``training.gpus: 0``)."""
    if gpus == 0:
        return ""
    return (f"python -m compressible.gpu_slots --dir {GPU_SLOTS} --gpus {processes}"
            f" --jobs-per-gpu {jobs_per_gpu} -- ")
