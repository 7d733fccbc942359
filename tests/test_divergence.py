"""Divergence: an absurd learning rate stops the run with a clear error and writes nothing; a
non-finite result never reaches summary.csv."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from torch import nn

from compressible.data import save_prepared
from compressible import cli
from compressible.config import Method
from compressible.training.divergence import non_finite_tensors
from compressible.report.aggregate import aggregate
from compressible.training.stops import EXIT_DIVERGED, TrainingDiverged
from compressible.training.loop import train_run

from test_report import result_file
from test_train import spec

ABSURD = Method("SGD", "sgd", {"lr": 1e6}, None)


def test_an_absurd_lr_stops_the_run_naming_run_epoch_step_loss_and_the_fix(tmp_path, splits):
    save_prepared(splits, tmp_path / "data.pt")
    stale = tmp_path / "resume.pt"
    stale.write_bytes(b"a state this run must not overwrite")
    with pytest.raises(TrainingDiverged) as err:
        train_run(spec(ABSURD), tmp_path / "data.pt", tmp_path / "run.pt", resume=stale)
    message = str(err.value)
    for fragment in ("run resnet20-SGD-s0", "epoch 1, step", "training diverged, loss", "Lower the learning rate"):
        assert fragment in message, message
    assert not (tmp_path / "run.pt").exists() and not (tmp_path / "run.json").exists()
    assert stale.read_bytes() == b"a state this run must not overwrite"


def test_the_cli_exits_with_the_divergence_code(tmp_path, splits, capsys):
    save_prepared(splits, tmp_path / "data.pt")
    cfg = {"experiment": "x", "dataset": {"name": "mnist_embedded"}, "archs": [{"name": "resnet20", "width": 4}],
           "methods": [{"label": "SGD", "name": "sgd", "params": {"lr": 1e6}}], "seeds": [0],
           "training": {"epochs": 1, "batch_size": 32}, "oneshot": [{"operator": "global_magnitude", "levels": [0.5]}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code = cli.main(["train", "--config", str(tmp_path / "c.yaml"), "--arch", "resnet20", "--method", "SGD",
                     "--seed", "0", "--data", str(tmp_path / "data.pt"), "--out", str(tmp_path / "run.pt")])
    assert code == EXIT_DIVERGED and "TrainingDiverged: run resnet20-SGD-s0" in capsys.readouterr().err
    assert not (tmp_path / "run.pt").exists()


def test_non_finite_weights_and_buffers_are_named():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    assert non_finite_tensors(model) == []
    with torch.no_grad():
        model[0].weight[0, 0] = float("inf")
    model[1].running_var[1] = float("nan")
    assert non_finite_tensors(model) == ["0.weight", "1.running_var"]


def test_aggregation_rejects_a_non_finite_accuracy_naming_the_file(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    result_file(good, "SGD", 0, {0.0: 90.0, 0.5: 80.0, 0.9: 50.0})
    result_file(bad, "SGD", 1, {0.0: 90.0, 0.5: 80.0, 0.9: 50.0})
    payload = json.loads(bad.read_text())
    payload["levels"][1]["bnt_trials"][0]["accuracy"] = float("nan")
    bad.write_text(json.dumps(payload))  # Python's json writes NaN, and reads it back
    assert aggregate([good], tmp_path / "ok.csv") == 9
    with pytest.raises(ValueError) as err:
        aggregate([good, bad], tmp_path / "summary.csv")
    assert str(bad) in str(err.value) and "accuracy=nan" in str(err.value) and "level 0.5" in str(err.value)
    assert not (tmp_path / "summary.csv").exists()


def _watch_model():
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def test_losses_are_read_once_per_check_every_steps_and_name_the_first_non_finite_step():
    from compressible.training.divergence import LossWatch
    from compressible.host_syncs import HostSyncs

    watch = LossWatch(_watch_model(), every=4)
    with HostSyncs() as syncs:
        read = [watch.add(torch.tensor(float(i)), f"run r, epoch 1, step {i}", 0.1 * i) for i in range(1, 9)]
    assert read == [[], [], [], [1.0, 2.0, 3.0, 4.0], [], [], [], [5.0, 6.0, 7.0, 8.0]]
    assert syncs.counts == {"tolist": 2}  # one read per 4 steps, nothing in between
    for i, loss in enumerate([1.0, float("nan"), float("inf")], start=9):
        watch.add(torch.tensor(loss), f"run r, epoch 1, step {i}", 0.5 + i)
    with pytest.raises(TrainingDiverged) as err:
        watch.read()  # before a save: the pending steps are checked now
    assert str(err.value).startswith("run r, epoch 1, step 10: training diverged, loss nan")
    assert "lr 10.5 at this step" in str(err.value)


def test_weights_gone_non_finite_under_finite_losses_name_the_steps_since_the_last_read():
    from compressible.training.divergence import LossWatch

    model = _watch_model()
    watch = LossWatch(model, every=50)
    watch.add(torch.tensor(1.0), "run r, epoch 2, step 3", 0.1)
    with torch.no_grad():
        model[0].bias[1] = float("inf")
    watch.add(torch.tensor(1.0), "run r, epoch 2, step 4", 0.1)
    with pytest.raises(TrainingDiverged) as err:
        watch.read()
    assert str(err.value).startswith("run r, epoch 2, step 3 to step 4: training diverged")
    assert "non-finite: 0.bias" in str(err.value)
