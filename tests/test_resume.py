"""Resume states: every optimizer's state round-trips, and a killed or signalled `python -m
compressible train` process, rerun, writes the same checkpoint bytes as an uninterrupted run."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from compressible.data import save_prepared
from compressible.training.distributed import Processes
from compressible.registry import METHODS
from compressible.training.resume import Position, load_state, restore, save_state
from compressible.training.stops import EXIT_INTERRUPTED
from compressible.training.loop import train_run, train_step
from compressible.optim.schedules import lr_factor

from conftest import synthetic_splits
from test_train import SGD, spec

ONE = Processes(0, 1, torch.device("cpu"))
STEPS, SAVED_AT = 6, 3
# Every method with its defaults, and the states that live across steps: the delayed-K
# schedule, CrAM masks reused for several steps.
CASES = [(name, {}) for name in sorted(METHODS.names())] + [
    ("sfw", {"constraint": "k_support", "delay_k_steps": 4, "momentum_style": "heavy_ball"}),
    ("cram_plus_multi", {"mask_every": 2, "sparse_grad": True}),
    ("nuclear_prox", {"layers": "conv_linear", "nuclear": 0.01}),
]


def fresh(name: str, params: dict):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    named = dict(model.named_parameters())
    optimizer = METHODS.get(name)(model, [(n, named[n]) for n in ("0.weight", "4.weight")], seed=0, **params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor("cosine", STEPS, 2))
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler}


def batches():
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 3, (16,), generator=gen))
            for _ in range(STEPS)]


def steps(parts: dict, data) -> None:
    for x, y in data:
        train_step(parts["model"], parts["optimizer"], parts["scheduler"], (x, y), ONE)


def same(a, b) -> bool:
    """Equal nested states: tensors bitwise, everything else by value."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_optimizer_state_round_trips_through_a_resume_file(tmp_path, name, params):
    data = batches()
    reference = fresh(name, params)
    steps(reference, data)
    first = fresh(name, params)
    steps(first, data[:SAVED_AT])
    save_state(tmp_path / "s.pt", "hash", first, Position(0, SAVED_AT, torch.Generator().get_state()), [])
    second = fresh(name, params)  # a new process: same init, then the saved state
    position, _ = restore(load_state(tmp_path / "s.pt", "hash"), second)
    assert position.step == SAVED_AT
    steps(second, data[SAVED_AT:])
    for part in ("model", "optimizer", "scheduler"):
        assert same(reference[part].state_dict(), second[part].state_dict()), part
    assert not same(reference["model"].state_dict(), fresh(name, params)["model"].state_dict())


def test_a_state_of_another_run_is_not_used(tmp_path, splits, capsys):
    save_prepared(splits, tmp_path / "data.pt")
    run = spec(SGD, epochs=1)
    parts = fresh("sgd", {})
    save_state(tmp_path / "resume.pt", "another-run", parts, Position(0, 1, torch.Generator().get_state()), [])
    train_run(run, tmp_path / "data.pt", tmp_path / "a.pt", resume=tmp_path / "resume.pt")
    err = capsys.readouterr().err
    assert "not using" in err and "its run_hash is 'another-run'" in err and "from the start" in err
    assert not (tmp_path / "resume.pt").exists()  # removed once the checkpoint is written
    (tmp_path / "b").mkdir()
    train_run(run, tmp_path / "data.pt", tmp_path / "b" / "a.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b" / "a.pt").read_bytes()


def test_a_state_of_other_code_is_not_used(tmp_path, capsys):
    save_state(tmp_path / "s.pt", "hash", fresh("sgd", {}), Position(0, 1, torch.Generator().get_state()), [])
    assert load_state(tmp_path / "s.pt", "hash") is not None
    payload = torch.load(tmp_path / "s.pt", weights_only=True)
    torch.save(dict(payload, code_version="0123456789abcdef"), tmp_path / "s.pt")
    assert load_state(tmp_path / "s.pt", "hash") is None
    assert "its code_version is '0123456789abcdef'" in capsys.readouterr().err
    (tmp_path / "s.pt").write_bytes(b"truncated")
    assert load_state(tmp_path / "s.pt", "hash") is None and "unreadable" in capsys.readouterr().err


# --- real processes ---------------------------------------------------------------------------
EPOCHS = 3
METHOD = {"label": "CrAM+-Multi", "name": "cram_plus_multi",
          "params": {"lr": 0.05, "sparsities": [0.5, 0.9], "sparse_grad": True, "mask_every": 2}}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A config and data for a CLI train job of a few seconds per epoch."""
    root = tmp_path_factory.mktemp("job")
    save_prepared(synthetic_splits(n_train=256, n_test=64), root / "data.pt")
    cfg = {"experiment": "resume", "dataset": {"name": "mnist_embedded"}, "archs": [{"name": "resnet20", "width": 4}],
           "methods": [METHOD], "seeds": [0], "training": {"epochs": EPOCHS, "batch_size": 32, "eval_batch_size": 64},
           "oneshot": [{"operator": "global_magnitude", "levels": [0.5]}]}
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root


def start(job: Path, workdir: Path) -> subprocess.Popen:
    workdir.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "compressible", "train", "--config", str(job / "config.yaml"),
               "--arch", "resnet20", "--method", METHOD["label"], "--seed", "0", "--data", str(job / "data.pt"),
               "--out", str(workdir / "checkpoints" / "run.pt"), "--resume", str(workdir / "resume" / "run.pt")]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out + err


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 600
    while not path.exists():
        assert process.poll() is None, f"the job ended before writing {path}: {finish(process)}"
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture(scope="module")
def uninterrupted(job):
    rc, log = finish(start(job, job / "uninterrupted"))
    assert rc == 0, log
    return job / "uninterrupted" / "checkpoints"


def assert_same_run(workdir: Path, reference: Path) -> None:
    ours = workdir / "checkpoints"
    assert (ours / "run.pt").read_bytes() == (reference / "run.pt").read_bytes()
    curves = [json.loads((d / "run.json").read_text())["curves"] for d in (ours, reference)]
    assert curves[0] == curves[1] and len(curves[0]) == EPOCHS
    assert not (workdir / "resume" / "run.pt").exists()


@pytest.mark.xdist_group("resume_job")  # one worker trains `uninterrupted` for these
def test_kill_9_mid_epoch_then_rerun_gives_the_same_checkpoint(job, uninterrupted):
    workdir = job / "killed"
    process = start(job, workdir)
    wait_for(workdir / "resume" / "run.pt", process)  # the end of epoch 1
    process.send_signal(signal.SIGKILL)
    assert finish(process)[0] == -signal.SIGKILL
    assert not (workdir / "checkpoints" / "run.pt").exists()
    saved = torch.load(workdir / "resume" / "run.pt", weights_only=True)
    assert saved["position"]["epoch"] == 1 and saved["position"]["step"] == 0
    rc, log = finish(start(job, workdir))
    assert rc == 0 and "resume: run resnet20-CrAM+-Multi-s0, epoch 2, step 0" in log, log
    assert_same_run(workdir, uninterrupted)


@pytest.mark.xdist_group("resume_job")
@pytest.mark.parametrize("stop", [signal.SIGUSR1, signal.SIGTERM])
def test_a_stop_signal_saves_mid_epoch_and_the_rerun_continues_exactly(job, uninterrupted, stop):
    workdir = job / f"signalled-{stop.name}"
    process = start(job, workdir)
    wait_for(workdir / "resume" / "run.pt", process)
    process.send_signal(stop)
    rc, log = finish(process)
    assert rc == EXIT_INTERRUPTED and f"stopped by {stop.name}" in log and "rerun the same command" in log, log
    position = torch.load(workdir / "resume" / "run.pt", weights_only=True)["position"]
    assert position["epoch"] == 1 and position["step"] >= 1 and len(position["losses"]) == position["step"]
    rc, log = finish(start(job, workdir))
    assert rc == 0 and f"epoch 2, step {position['step']} from" in log, log
    assert_same_run(workdir, uninterrupted)


def test_the_rng_state_holds_the_current_device_only():
    """One CUDA generator state (the job's device), so a resume that sees fewer GPUs restores it;
    none when CUDA was not used (every CPU run)."""
    from compressible.training.resume import rng_state, set_rng_state
    if not torch.cuda.is_initialized():
        assert rng_state()["cuda"] == []
    if not torch.cuda.is_available():
        pytest.skip("the CUDA half needs a CUDA device (torch.cuda.is_available() is False)")
    torch.zeros(1, device="cuda")  # CUDA in use, as in a CUDA run
    state = rng_state()
    assert len(state["cuda"]) == 1
    want = torch.rand(4, device="cuda")
    set_rng_state(state)
    assert torch.equal(torch.rand(4, device="cuda"), want)
