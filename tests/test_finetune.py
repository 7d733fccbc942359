"""The sparse finetune after one-shot pruning (CrAM Sec. 4.2, App. D): the pruned weights stay
+0.0 through training, the others train, and a rerun gives the same weights."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from compressible.compress.prunable import prunable_parameters
from compressible.config import validate_config
from compressible.evaluate import compress
from compressible.runs import Experiment
from compressible.tasks import task_of
from compressible.training.finetune import finetune_spec, sparse_finetune
from compressible.training.loop import model_for
from conftest import synthetic_splits

TINY = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").read_text())


@pytest.fixture(scope="module")
def setting():
    raw = copy.deepcopy(TINY)
    raw["oneshot"][0]["finetune"] = {"epochs": 1, "params": {"lr": 1.0e-2}}
    cfg = validate_config(raw)
    run = Experiment(cfg).runs()[0]
    return cfg, run, synthetic_splits(n_train=128)


def pruned(cfg, run, splits):
    torch.manual_seed(0)
    model = model_for(Experiment(cfg).spec(run), splits)
    prunable = prunable_parameters(model, cfg.prunable)
    compress(model, "global_magnitude", 0.7, prunable, None)
    return model, {name: p.detach().clone() for name, p in prunable}


def tuned(cfg, run, splits):
    model, before = pruned(cfg, run, splits)
    spec = finetune_spec(cfg, run, cfg.oneshot[0])
    sparse_finetune(model, splits, task_of(cfg.dataset), spec)
    return model, before


def test_the_spec_is_the_runs_with_method_masked_and_the_finetunes_epochs(setting):
    cfg, run, _ = setting
    spec = finetune_spec(cfg, run, cfg.oneshot[0])
    assert (spec.method.name, spec.method.params, spec.training.epochs) == ("masked", {"lr": 1.0e-2}, 1)
    assert spec.training.batch_size == cfg.training.batch_size and spec.run == run


def test_pruned_weights_stay_positive_zero_and_the_kept_ones_train(setting):
    cfg, run, splits = setting
    model, before = tuned(cfg, run, splits)
    after = dict(prunable_parameters(model, cfg.prunable))
    moved = 0
    for name, weights in before.items():
        zeros = weights == 0
        assert zeros.any(), f"{name}: nothing pruned"
        value = after[name].detach()
        assert torch.equal(value[zeros], torch.zeros_like(value[zeros])), f"{name}: a pruned weight came back"
        assert not torch.signbit(value[zeros]).any(), f"{name}: a pruned weight is -0.0"
        moved += int((value[~zeros] != weights[~zeros]).sum())
    assert moved > 0  # the kept weights did train


def test_the_finetune_is_deterministic(setting):
    cfg, run, splits = setting
    first, _ = tuned(cfg, run, splits)
    second, _ = tuned(cfg, run, splits)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
