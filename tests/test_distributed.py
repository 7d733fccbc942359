"""One run on several processes: DDP with gloo on CPU, 2 processes, each on its half of every
global batch, trains the weights that one process trains with the whole batch."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from torch import nn

from compressible.data import save_prepared
from compressible.training.distributed import Processes, prepare_model, setup, wrap
from compressible.optim.schedules import lr_factor
from compressible.registry import METHODS
from compressible.training.loop import train_step

from conftest import synthetic_splits

WORLD, BATCH, STEPS = 2, 16, 4
CASES = [("sgd", {"lr": 0.1}), ("cram_plus", {"lr": 0.1, "rho": 0.05, "sparsity": 0.5}),
         ("sfw", {"lr": 0.5, "k": "20%", "init_samples": 2})]


def no_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))


def bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))


def batches():
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, 1, 8, 8, generator=gen), torch.randint(0, 3, (BATCH,), generator=gen))
            for _ in range(STEPS)]


def train(processes: Processes, name: str, params: dict, build) -> nn.Module:
    """The project's own step (sharding, closure, optimizer, scheduler) on ``processes``."""
    model = prepare_model(build(), processes, sync_bn=False)
    named = dict(model.named_parameters())
    prunable = [(n, p) for n, p in named.items() if n.endswith("weight") and p.dim() > 1]
    optimizer = METHODS.get(name)(model, prunable, seed=0, **params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor("cosine", STEPS, 1))
    net = wrap(model, processes)
    for x, y in batches():
        train_step(net, optimizer, scheduler, (x, y), processes)
    return model


def worker(rank: int, port: int, name: str, params: dict, build, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    processes = setup(WORLD, BATCH)  # the group stays; the forked child ends with os._exit
    torch.save(train(processes, name, params, build).state_dict(), f"{out}/rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(tmp_path, name, params, build) -> list[dict]:
    # forked, not spawned: the children start with this process's imports (torch, the project)
    # instead of importing them again (~2 CPU-s each); one intra-op thread (conftest), no CUDA
    mp.start_processes(worker, args=(free_port(), name, params, build, str(tmp_path)), nprocs=WORLD,
                       start_method="fork")
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("name, params", CASES, ids=[c[0] for c in CASES])
def test_two_processes_with_half_batches_equal_one_process_with_the_whole(tmp_path, name, params):
    single = train(Processes(0, 1, torch.device("cpu")), name, params, no_bn_net).state_dict()
    ranks = two_processes(tmp_path, name, params, no_bn_net)
    start = no_bn_net().state_dict()
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # every process took the same step
        torch.testing.assert_close(ranks[0][key], single[key], rtol=1e-5, atol=1e-6)
        assert not torch.equal(single[key], start[key]), key


def test_the_frozen_bn_perturbed_pass_works_under_ddp(tmp_path):
    """CrAM+ under DDP: both passes all-reduce (identical weights on every process), and the
    perturbed pass leaves the BatchNorm statistics alone (one tracked batch per step)."""
    ranks = two_processes(tmp_path, "cram_plus", CASES[1][1], bn_net)
    for key in ranks[0]:
        if ranks[0][key].is_floating_point() and "running" not in key:
            assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert int(ranks[0]["1.num_batches_tracked"]) == STEPS


def test_each_process_gets_its_contiguous_shard_of_the_global_batch():
    from compressible.training.distributed import shard

    x, y = torch.arange(8.0).view(8, 1), torch.arange(8)
    parts = [shard(x, y, Processes(rank, 2, torch.device("cpu"))) for rank in range(2)]
    assert parts[0][1].tolist() == [0, 1, 2, 3] and parts[1][1].tolist() == [4, 5, 6, 7]
    assert torch.equal(parts[1][0], x[4:])
    assert shard(x, y, Processes(0, 1, torch.device("cpu")))[1] is y


def test_the_mismatched_launch_and_an_indivisible_batch_are_refused():
    from compressible.config import ConfigError

    with pytest.raises(ConfigError, match="gpus_per_run=2 but 1 process"):
        setup(2, 32)
    with pytest.raises(ConfigError, match="batch_size=33"):
        os.environ["WORLD_SIZE"] = "2"
        try:
            setup(2, 33)
        finally:
            del os.environ["WORLD_SIZE"]


def test_torchrun_trains_one_run_and_only_process_0_writes(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    save_prepared(synthetic_splits(n_train=64, n_test=32), tmp_path / "data.pt")
    cfg = {"experiment": "x", "dataset": {"name": "mnist_embedded"}, "archs": [{"name": "resnet20", "width": 4}],
           "methods": [{"label": "SGD", "name": "sgd", "params": {"lr": 0.05}}], "seeds": [0],
           "training": {"epochs": 2, "batch_size": 16, "gpus_per_run": 2},
           "oneshot": [{"operator": "global_magnitude", "levels": [0.5]}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    command = [torchrun, "--standalone", f"--nproc_per_node={WORLD}", "-m", "compressible", "train",
               "--config", "c.yaml", "--arch", "resnet20", "--method", "SGD", "--seed", "0",
               "--data", "data.pt", "--out", "out/run.pt", "--resume", "resume/run.pt"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"), OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("test accuracy") == 1  # printed by process 0 alone
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run.json", "run.pt"]
    assert not (tmp_path / "resume" / "run.pt").exists()


def test_process_count_enters_the_run_hash_only_when_above_one():
    from compressible.config import validate_config
    from compressible.runs import Experiment, Run

    def spec(**training):
        raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").read_text())
        raw["training"].update(training)
        return Experiment(validate_config(raw)).spec(Run("resnet20", "SGD", 0))

    single = spec()
    assert "gpus_per_run" not in single.hashed()["training"] and "sync_bn" not in single.hashed()["training"]
    assert spec(sync_bn=True).hash() == single.hash()  # no effect with one process
    two = spec(gpus_per_run=2)
    assert two.hash() != single.hash() and two.hashed()["training"]["gpus_per_run"] == 2
    assert spec(gpus_per_run=2, sync_bn=True).hash() != two.hash()
