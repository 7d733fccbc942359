"""Where a job computes: ``training.device`` and ``training.precision`` resolved at the job's start.

The config is checked on the submit host, which usually has no GPU, so ``cuda`` is only refused
when the job itself starts without one. Checkpoints are written with CPU tensors whatever the
device (``checkpoint.py``), so they load anywhere.
"""
from __future__ import annotations

import contextlib
import re

import torch
from torch import nn

from .config import ConfigError

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"


class DeviceError(ConfigError):
    """The configured device is not on the machine the job runs on."""


def _free_memory_nvml(count: int) -> list[int] | None:
    """Free memory of the visible GPUs through NVML (nvidia-ml-py, when installed), matched by
    UUID since NVML numbers all of the machine's GPUs; None without NVML. Unlike
    ``torch.cuda.mem_get_info(i)`` it creates no CUDA context (~0.5 GB) on each GPU."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:  # not installed, or no driver
        return None
    try:
        handles = [pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{torch.cuda.get_device_properties(i).uuid}")
                   for i in range(count)]
        return [pynvml.nvmlDeviceGetMemoryInfo(h).free for h in handles]
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()


def _least_used_gpu() -> torch.device:
    """Of several visible GPUs (a job started outside the workflow's GPU slots, gpu_slots.py, or
    a SLURM allocation of several), the one with the most free memory by NVML; without NVML the
    first, rather than a context on every GPU."""
    free = _free_memory_nvml(torch.cuda.device_count())
    if free is None:
        return torch.device("cuda", 0)
    return torch.device("cuda", max(range(len(free)), key=free.__getitem__))


def _use(device: torch.device) -> torch.device:
    torch.cuda.set_device(device)  # allocations and kernels without an explicit device go here
    return device


def resolve_device(requested: str) -> torch.device:
    """``auto`` -> a CUDA device when there is one, else the CPU; ``cuda`` / ``cuda:N`` must exist."""
    if not re.match(DEVICE_PATTERN, requested):
        raise DeviceError(f"training.device={requested!r}: allowed are auto, cpu, cuda, cuda:N")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"training.device={requested!r} but this job finds no CUDA device "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                          "run it on a GPU node or set training.device: auto or cpu")
    if requested in ("auto", "cuda"):
        return _use(_least_used_gpu() if torch.cuda.device_count() > 1 else torch.device("cuda", 0))
    index = int(requested.split(":")[1])
    if index >= torch.cuda.device_count():
        raise DeviceError(f"training.device={requested!r} but this job sees {torch.cuda.device_count()} "
                          "CUDA device(s), numbered from 0")
    return _use(torch.device("cuda", index))


def use_tf32(enabled: bool) -> None:
    """``training.tf32``: fp32 convolutions (cuDNN) and matmuls (cuBLAS) on TF32 tensor cores, or
    not, set explicitly rather than left to the PyTorch version. The papers' runs (2021-2022,
    PyTorch 1.7-1.11) had TF32 on for both by default on Ampere GPUs (cuDNN's is still on;
    matmul's turned off in 1.12); on V100s or CPUs the setting changes nothing."""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def describe(device: torch.device, precision: str = "fp32", tf32: bool = True) -> dict:
    """Provenance of the computation: device, GPU model, CUDA and cuDNN versions, precision
    (on CUDA with whether fp32 ran on TF32 tensor cores)."""
    info = {"type": device.type, "name": str(device), "precision": precision,
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), tf32=tf32)
    return info


def autocast(device: torch.device, precision: str):
    """bf16: the forward pass (and so the loss) under autocast; the parameters, their gradients and
    every optimizer's own arithmetic (CrAM's Top-K, SFW's LMOs) stay fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def has_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def memory_format(device: torch.device, model: nn.Module) -> torch.memory_format:
    """channels_last on CUDA for convolutional models (cuDNN's fast layout); contiguous on CPU,
    which keeps the CPU path exactly as it was."""
    if device.type == "cuda" and has_convolutions(model):
        return torch.channels_last
    return torch.contiguous_format
