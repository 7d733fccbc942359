"""Training runs: determinism on CPU, learning on separable data, BN handling of the closure."""
from __future__ import annotations

import torch

from compressible.bn import frozen_bn_stats
from compressible.checkpoint import load_checkpoint
from compressible.config import Arch, Method, Training
from compressible.runs import Run, RunSpec
from compressible.train import make_closure, train_run


def spec(method: Method, seed: int = 0, epochs: int = 2) -> RunSpec:
    training = Training(epochs=epochs, batch_size=32, eval_batch_size=64, warmup_epochs=0,
                        schedule="cosine", milestones=[0.5, 0.75], augment=True, threads=1,
                        gpus_per_run=1, sync_bn=False)
    return RunSpec(Run("resnet20", method.label, seed), {"name": "synthetic"}, Arch("resnet20", 4),
                   method, training, "weights")


SGD = Method("SGD", "sgd", {"lr": 0.05}, None)
SAM = Method("SAM", "sam", {"lr": 0.05, "rho": 0.05}, None)


def train(tmp_path, splits, method, seed, name):
    splits.save(tmp_path / "data.pt")
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
