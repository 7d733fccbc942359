"""One run on several processes (``torchrun``) with PyTorch's DistributedDataParallel.

Every process builds the same model and draws the same global batches (same seed, same
data-order generator) and trains on its contiguous shard of each; DDP averages the gradients
on every backward, so both passes of SAM/CrAM are averaged (a ``no_sync`` would skip one) and
SFW's LMO sees the averaged gradient: all processes take the identical step. Process 0 writes
every file. Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) nothing changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..config import ConfigError
from ..device import memory_format, resolve_device


@dataclass(frozen=True)
class Processes:
    rank: int
    world: int
    device: torch.device
    presharded: bool = False  # training batches arrive as this process's shard (streamed folders)

    @property
    def writer(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(gpus_per_run: int, batch_size: int, device: str = "auto") -> Processes:
    """This process's device (``training.device``, resolved now: see device.py) and, under
    ``torchrun``, the process group (NCCL on GPUs, gloo on CPU), after checking the launch."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != gpus_per_run:
        raise ConfigError(f"training.gpus_per_run={gpus_per_run} but {world} process(es) were launched: "
                         f"run `torchrun --standalone --nproc_per_node={gpus_per_run} -m compressible train ...`")
    if batch_size % world:
        raise ConfigError(f"training.batch_size={batch_size} (the global batch) must be divisible by "
                         f"training.gpus_per_run={world}")
    if world == 1:
        return Processes(0, 1, resolve_device(device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    # each process takes the GPU of its local rank (`cuda:N` names the first of them)
    cuda = resolve_device(device).type == "cuda"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Processes(dist.get_rank(), world, device)


# The process group of a torchrun process is never destroyed. Destroying a gloo group joins its
# worker threads with the GIL held; a worker still freeing a finished collective's tensor (agree's
# all-reduce, DDP's broadcast of the BN buffers) waits for the GIL: both wait forever, seen under
# load at the end of torchrun runs, from destroy_process_group and from freeing DDP's Reducer
# (which holds the group). `python -m compressible` ends such a process with os._exit once its
# command returned (__main__.py), as multiprocessing ends its children.


def prepare_model(model: nn.Module, processes: Processes, sync_bn: bool) -> nn.Module:
    """The module to train on this process's device (SyncBatchNorm if asked); call before the
    optimizer is built, so it holds the parameters that training updates."""
    if processes.distributed and sync_bn and processes.device.type != "cuda":
        raise ConfigError("training.sync_bn needs CUDA (torch's SyncBatchNorm); on CPU set it to false")
    model = model.to(processes.device, memory_format=memory_format(processes.device, model))
    if processes.distributed and sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap(model: nn.Module, processes: Processes) -> nn.Module:
    """What the closure calls: DDP around ``model`` when several processes train it."""
    if not processes.distributed:
        return model
    ids = [processes.device.index] if processes.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(x: torch.Tensor, y: torch.Tensor, processes: Processes) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's contiguous part of a global batch, on its device (streamed batches come
    already cut: StreamingSplits.sharded)."""
    if not processes.distributed or processes.presharded:
        return x, y
    size = len(y) // processes.world
    part = slice(processes.rank * size, (processes.rank + 1) * size)
    return x[part].to(processes.device), y[part].to(processes.device)


def shard_batch(batch, processes: Processes):
    """:func:`shard` of an (images, labels) batch, or of every tensor of a batch mapping."""
    if isinstance(batch, dict):
        if not processes.distributed or processes.presharded:
            return batch
        size = len(next(iter(batch.values()))) // processes.world
        part = slice(processes.rank * size, (processes.rank + 1) * size)
        return {k: v[part].to(processes.device) for k, v in batch.items()}
    return shard(*batch, processes)


def agree(loss: torch.Tensor, stop: bool, processes: Processes) -> tuple[torch.Tensor, bool]:
    """The mean loss over the processes (a 0-d tensor on the device) and whether any was asked
    to stop (one all-reduce), so every process logs, checks divergence and stops at the same
    step. One process reads nothing back; several read the stop flag (one sync per step)."""
    if not processes.distributed:
        return loss, stop
    values = torch.stack([loss.detach().float().reshape(()), torch.tensor(float(stop), device=loss.device)])
    work = dist.all_reduce(values, async_op=True)
    work.wait()
    return values[0].double() / processes.world, values[1].item() > 0  # as Python divided it


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()

