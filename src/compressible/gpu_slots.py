"""Which GPUs a local job uses: each train/oneshot job claims its own GPU slot before CUDA starts.

Snakemake's ``gpu`` resource only counts GPUs; it never says which one a job gets. Without a claim,
jobs that start together all pick GPU 0 and concurrent ``torchrun`` jobs all take GPUs 0..N-1. A slot
is a lock file (``gpu<id>.slot<k>.lock``), held with ``fcntl.flock`` for the job's lifetime: the
kernel drops the lock when the process ends, crashed or not, so a dead job never keeps a GPU.
``training.jobs_per_gpu`` slots per GPU let that many jobs share one.

    python -m compressible.gpu_slots --dir results/.gpu-slots --gpus 2 --jobs-per-gpu 1 -- CMD ...

claims the slots, sets ``CUDA_VISIBLE_DEVICES`` to the claimed GPUs and replaces itself with CMD
(the lock file descriptors are inherited, so the locks live exactly as long as CMD). Under SLURM
the allocation's devices are used as given (SLURM sets ``CUDA_VISIBLE_DEVICES`` for the job). On a
machine without GPUs nothing is claimed. Torch-free: CUDA must not start before the claim.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def visible_gpus() -> list[str]:
    """The GPUs this job may claim from: ``CUDA_VISIBLE_DEVICES`` when set, else the machine's
    (NVML through pynvml when installed, else nvidia-smi; none when neither finds any)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [d.strip() for d in given.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import pynvml  # optional (nvidia-ml-py); no CUDA context is created
        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # not installed, or no driver
        pass
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False)
    return out.stdout.split() if out.returncode == 0 else []


def under_slurm() -> bool:
    return "SLURM_JOB_ID" in os.environ


def try_claim(folder: Path, devices: list[str], jobs_per_gpu: int, count: int) -> tuple[list[str], list[int]]:
    """Lock one free slot on each of ``count`` distinct GPUs (none if fewer are free): the claimed
    device ids and the open, locked file descriptors."""
    folder.mkdir(parents=True, exist_ok=True)
    claimed: list[str] = []
    fds: list[int] = []
    for slot in range(jobs_per_gpu):  # slot-major: a GPU's second slot only once every GPU has a job
        for device in devices:
            if device in claimed:
                continue
            fd = os.open(folder / f"gpu{device}.slot{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            claimed.append(device)
            fds.append(fd)
            if len(claimed) == count:
                return claimed, fds
    for fd in fds:  # not enough free GPUs: hold none, so two waiting jobs cannot deadlock
        os.close(fd)
    return [], []


def claim(folder: Path, devices: list[str], jobs_per_gpu: int, count: int,
          poll_s: float = 1.0, log=sys.stderr) -> tuple[list[str], list[int]]:
    """Wait until ``count`` GPUs each have a free slot, then claim them."""
    if count > len(devices):
        raise SystemExit(f"gpu_slots: the job needs {count} GPU(s) but {len(devices)} are visible "
                         f"({','.join(devices) or 'none'})")
    waited = False
    while True:
        claimed, fds = try_claim(folder, devices, jobs_per_gpu, count)
        if claimed:
            return claimed, fds
        if not waited:
            print(f"gpu_slots: all slots of GPUs {','.join(devices)} are taken; waiting", file=log, flush=True)
            waited = True
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m compressible.gpu_slots", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="folder of the lock files")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs the job needs (training.gpus_per_run)")
    parser.add_argument("--jobs-per-gpu", type=int, default=1, help="training.jobs_per_gpu")
    parser.add_argument("--devices", help="the GPU ids to claim from (default: visible_gpus())")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the job's command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    if args.gpus < 1 or args.jobs_per_gpu < 1:
        parser.error(f"--gpus={args.gpus} and --jobs-per-gpu={args.jobs_per_gpu} must be >= 1")
    devices = args.devices.split(",") if args.devices is not None else visible_gpus()
    if devices and not under_slurm():
        claimed, fds = claim(args.dir, devices, args.jobs_per_gpu, args.gpus)
        for fd in fds:
            os.set_inheritable(fd, True)  # the locks live as long as the command
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
        print(f"gpu_slots: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
