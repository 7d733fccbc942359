"""GPU slots (gpu_slots.py): concurrent jobs get distinct GPUs, jobs_per_gpu shares them, a job that
ends (crashed or not) frees its slot. Plain Python on a fake device list: no GPU needed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from compressible.gpu_slots import claim, try_claim

# the job: report the GPUs it was given (whole, by a rename), then hold them until told to finish
HOLD = ("import os, sys, time, pathlib; d = pathlib.Path(sys.argv[1]); "
        "t = d / f'{os.getpid()}.tmp'; t.write_text(os.environ['CUDA_VISIBLE_DEVICES']); "
        "t.rename(d / f'{os.getpid()}.gpus'); "
        "[time.sleep(0.05) for _ in iter(lambda: (d / 'finish').exists(), True)]")


def start_job(tmp_path: Path, devices: str, jobs_per_gpu: int = 1, gpus: int = 1) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")}
    return subprocess.Popen([sys.executable, "-m", "compressible.gpu_slots", "--dir", str(tmp_path / "slots"),
                             "--devices", devices, "--jobs-per-gpu", str(jobs_per_gpu), "--gpus", str(gpus),
                             "--", sys.executable, "-c", HOLD, str(tmp_path)],
                            env=env, stderr=subprocess.PIPE, text=True)


def given(tmp_path: Path, expected: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(files := list(tmp_path.glob("*.gpus"))) < expected:
        assert time.monotonic() < deadline, f"only {len(files)} of {expected} jobs started"
        time.sleep(0.05)
    return [f.read_text() for f in files]


def finish(tmp_path: Path, jobs: list[subprocess.Popen]) -> None:
    (tmp_path / "finish").touch()
    for job in jobs:
        assert job.wait(timeout=30) == 0, job.stderr.read()


def test_concurrent_jobs_get_distinct_gpus(tmp_path):
    jobs = [start_job(tmp_path, "0,1,2") for _ in range(3)]
    assert sorted(given(tmp_path, 3)) == ["0", "1", "2"]
    finish(tmp_path, jobs)


def test_jobs_per_gpu_two_shares_each_gpu_between_two_jobs(tmp_path):
    jobs = [start_job(tmp_path, "0,1", jobs_per_gpu=2) for _ in range(4)]
    assert Counter(given(tmp_path, 4)) == {"0": 2, "1": 2}
    finish(tmp_path, jobs)


def test_multi_gpu_jobs_get_disjoint_gpus(tmp_path):
    """Two torchrun jobs of two processes each on four GPUs."""
    jobs = [start_job(tmp_path, "0,1,2,3", gpus=2) for _ in range(2)]
    a, b = (set(g.split(",")) for g in given(tmp_path, 2))
    assert len(a) == len(b) == 2 and not a & b
    finish(tmp_path, jobs)


def test_a_crashed_job_frees_its_slot(tmp_path):
    first = start_job(tmp_path, "7")
    assert given(tmp_path, 1) == ["7"]
    second = start_job(tmp_path, "7")  # waits: the only slot is held
    time.sleep(1.0)
    assert len(list(tmp_path.glob("*.gpus"))) == 1 and second.poll() is None
    first.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs
    first.wait(timeout=30)
    assert given(tmp_path, 2) == ["7", "7"]
    finish(tmp_path, [second])
    assert "waiting" in second.stderr.read()


def test_a_failed_partial_claim_holds_nothing(tmp_path):
    """A job needing two GPUs when one is free takes none, so waiting jobs cannot deadlock."""
    held, fds = try_claim(tmp_path, ["0", "1"], 1, 1)
    assert held == ["0"]
    assert try_claim(tmp_path, ["0", "1"], 1, 2) == ([], [])
    again, more = try_claim(tmp_path, ["0", "1"], 1, 1)
    assert again == ["1"]  # GPU 1's slot was not kept locked
    for fd in fds + more:
        os.close(fd)


def test_more_gpus_than_visible_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="needs 3 GPU.s. but 2 are visible"):
        claim(tmp_path, ["0", "1"], 1, 3)


def test_under_slurm_the_allocation_is_used_as_given(tmp_path):
    env = dict(os.environ, SLURM_JOB_ID="1", CUDA_VISIBLE_DEVICES="3")
    out = subprocess.run([sys.executable, "-m", "compressible.gpu_slots", "--dir", str(tmp_path / "slots"),
                          "--", sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3" and not (tmp_path / "slots").exists()
