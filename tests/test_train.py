"""Training runs: determinism on CPU, learning on separable data, BN handling of the closure."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from compressible.data import save_prepared

from compressible.bn import frozen_bn_stats
from compressible.checkpoint import load_checkpoint
from compressible.config import Arch, Method, Training
from compressible.runs import Run, RunSpec
from compressible.training.interrupt import StopRequest
from compressible.training.loop import build_trainer, end_epoch, make_closure, run_epoch, starting_position, train_run


def spec(method: Method, seed: int = 0, epochs: int = 2) -> RunSpec:
    training = Training(epochs=epochs, batch_size=32, eval_batch_size=64, warmup_epochs=0,
                        schedule="cosine", schedule_unit="step", milestones=[0.5, 0.75], augment=True,
                        threads=1, gpus=0, gpus_per_run=1, sync_bn=False, device="cpu",
                        precision="fp32", compile=False, jobs_per_gpu=1)
    return RunSpec(Run("resnet20", method.label, seed), {"name": "synthetic"}, Arch("resnet20", 4, None),
                   method, training, "weights")


SGD = Method("SGD", "sgd", {"lr": 0.05}, None)
SAM = Method("SAM", "sam", {"lr": 0.05, "rho": 0.05}, None)


def train(tmp_path, splits, method, seed, name):
    save_prepared(splits, tmp_path / "data.pt")
    info = train_run(spec(method, seed), tmp_path / "data.pt", tmp_path / f"{name}.pt")
    return load_checkpoint(tmp_path / f"{name}.pt").state_dict(), info


def test_same_seed_same_checkpoint_for_one_and_two_pass_methods(tmp_path, splits):
    for method in (SGD, SAM):
        a, info = train(tmp_path, splits, method, 0, "a")
        b, _ = train(tmp_path, splits, method, 0, "b")
        c, _ = train(tmp_path, splits, method, 1, "c")
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
        assert info["seed"] == 0 and "git_commit" in info and info["packages"]["torch"]
        assert info["run"] == {"arch": "resnet20", "method": method.label, "seed": 0}


def test_training_learns_the_separable_task(tmp_path, splits):
    _, info = train(tmp_path, splits, SGD, 0, "a")
    assert info["curves"][-1]["test_accuracy"] > 60.0  # chance is 25 %
    assert info["curves"][-1]["train_loss"] < info["curves"][0]["train_loss"] * 1.01


def test_closure_leaves_bn_statistics_alone_when_asked(splits):
    from compressible.models import build_model

    model = build_model("resnet20", num_classes=4, in_channels=1, width=4).train()
    x, y = splits.train_images[:8].float() / 255, splits.train_labels[:8]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    closure = make_closure(model, x, y, opt)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    closure(track_bn_stats=False)
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)
    closure()
    assert not torch.equal(before["bn1.running_mean"], model.state_dict()["bn1.running_mean"])
    with frozen_bn_stats(model):
        pass
    assert all(m.track_running_stats for m in model.modules() if hasattr(m, "track_running_stats"))


def test_epoch_unit_holds_the_factor_within_an_epoch_like_the_cram_authors_cosine():
    from compressible.optim.schedules import lr_factor

    spe, epochs, warmup = 10, 20, 5
    factor = lr_factor("cosine", spe * epochs, warmup * spe, steps_per_epoch=spe, per_epoch=True)
    for e in range(epochs):
        values = {factor(e * spe + i) for i in range(spe)}
        assert len(values) == 1
        expected = (e + 1) / warmup if e < warmup else 0.5 * (1 + math.cos(math.pi * (e - warmup) / (epochs - warmup)))
        assert values.pop() == pytest.approx(expected)


def test_sfw_dynamic_schedule_follows_the_sfw_pruning_script():
    from compressible.optim.schedules import sfw_dynamic

    epochs = 180
    flat = [1.0] * 179
    assert sfw_dynamic(59, epochs, flat) == 1.0 and sfw_dynamic(60, epochs, flat) == pytest.approx(0.1)
    assert sfw_dynamic(120, epochs, flat) == pytest.approx(0.01)
    rising = [float(e) for e in range(179)]  # the recent 5 epochs average more than the last 10
    assert sfw_dynamic(25, epochs, rising) == pytest.approx(0.7)
    assert sfw_dynamic(30, epochs, rising) == pytest.approx(0.7 ** 2)
    falling = [-float(e) for e in range(179)]
    assert sfw_dynamic(25, epochs, falling) == pytest.approx(1.06)
    assert sfw_dynamic(20, epochs, rising) == 1.0  # only from epoch 21 on


def test_last_batch_losses_flip_a_dynamic_lr_decision_the_epoch_means_do_not():
    """The authors' train_prune.py compares each epoch's last-batch loss (its list of step losses
    is emptied inside the step loop): epochs whose means fall while their last batches rise."""
    from compressible.optim.schedules import sfw_dynamic

    epochs = [[3.0 - 0.01 * e, 2.0 - 0.01 * e, 0.5 + 0.01 * e] for e in range(25)]
    means = [sum(losses) / 3 for losses in epochs]
    last = [losses[-1] for losses in epochs]
    assert sfw_dynamic(25, 180, means) == pytest.approx(1.06)  # recent 5 below the 10: raise
    assert sfw_dynamic(25, 180, last) == pytest.approx(0.7)  # recent 5 above the 10: cut


def test_the_trainer_feeds_the_schedule_the_last_batch_loss_when_asked_and_resumes_it(tmp_path, splits):
    save_prepared(splits, tmp_path / "data.pt")
    run = dataclasses.replace(spec(SGD, epochs=3), training=dataclasses.replace(
        spec(SGD).training, epochs=3, schedule="sfw_dynamic", schedule_loss="last_batch"))
    t = build_trainer(run, tmp_path / "data.pt", tmp_path / "resume.pt")
    position, curves = starting_position(t)
    for _ in range(2):
        ran = run_epoch(t, position, StopRequest(), curves)
        last = position.losses[-1]
        position = end_epoch(t, position, curves, ran)
        assert t.epoch_losses[-1] == last == curves[-1]["last_batch_loss"] != curves[-1]["train_loss"]
    resumed = build_trainer(run, tmp_path / "data.pt", tmp_path / "resume.pt")
    starting_position(resumed)
    assert resumed.epoch_losses == t.epoch_losses
    default = build_trainer(spec(SGD), tmp_path / "data.pt", None)
    position, curves = starting_position(default)
    position = end_epoch(default, position, curves, run_epoch(default, position, StopRequest(), curves))
    assert default.epoch_losses == [curves[-1]["train_loss"]] and "last_batch_loss" not in curves[-1]


def test_zero_epochs_evaluate_the_pretrained_weights_as_given(tmp_path):
    """`epochs: 0` (CrAM Table 16's Baseline: torchvision's weights as downloaded): the
    checkpoint holds the pretrained weights bit for bit and its accuracy is theirs."""
    from pathlib import Path

    import yaml

    from compressible.config import ConfigError, validate_config
    from compressible.data import save_prepared
    from compressible.evaluate import evaluate
    from compressible.models import build_arch
    from compressible.runs import Experiment, Run
    from compressible.training.loop import train_run
    from conftest import synthetic_splits

    splits = synthetic_splits()
    save_prepared(splits, tmp_path / "data.pt")
    torch.manual_seed(3)
    pretrained = build_arch({"name": "resnet20", "width": 4}, splits.num_classes, splits.in_channels)
    torch.save(pretrained.state_dict(), tmp_path / "weights.pt")
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").read_text())
    raw["archs"] = [{"name": "resnet20", "width": 4, "pretrained": str(tmp_path / "weights.pt")}]
    raw["methods"][0]["epochs"] = 0
    spec = Experiment(validate_config(raw, check_files=False)).spec(Run("resnet20", "SGD", 0))
    info = train_run(spec, tmp_path / "data.pt", tmp_path / "run.pt")
    saved = load_checkpoint(tmp_path / "run.pt").state_dict()
    assert all(torch.equal(saved[k], v) for k, v in pretrained.state_dict().items())
    assert info["curves"] == [dict(info["curves"][0], epoch=0)] and "train_loss" not in info["curves"][0]
    assert info["final_test_accuracy"] == evaluate(pretrained.eval(), splits, 200)[0]
    del raw["archs"][0]["pretrained"]  # 0 epochs of a random initialization: refused
    with pytest.raises(ConfigError, match=r"methods\.0\.epochs': 0 epochs evaluate the pretrained weights.*resnet20 has no 'pretrained'"):
        validate_config(raw, check_files=False)
