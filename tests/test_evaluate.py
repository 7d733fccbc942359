"""One-shot evaluation of a model: accounting matches the level, BNT trials reproduce."""
from __future__ import annotations

import torch

from compressible.config import BNT as BNTConfig
from compressible.evaluate import bnt_seed, oneshot_level
from compressible.models import build_model

BNT = BNTConfig(trials=2, samples=64, batch_size=32, batches=2, momentum=None)


def dense_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet20", num_classes=4, in_channels=1, width=4).eval()


def test_level_records_sparsity_distance_and_seeded_trials(splits):
    dense = dense_model()
    before = {k: v.clone() for k, v in dense.state_dict().items()}
    result = oneshot_level(dense, splits, "global_magnitude", 0.7, "weights", BNT, run_seed=3, eval_batch=64)
    assert abs(result["accounting"]["sparsity_prunable"] - 0.7) < 1e-3
    assert 0 < result["accounting"]["relative_distance"] < 1
    assert [t["seed"] for t in result["bnt_trials"]] == [bnt_seed(3, 0), bnt_seed(3, 1)]
    assert all(torch.equal(before[k], v) for k, v in dense.state_dict().items())  # dense untouched
    again = oneshot_level(dense, splits, "global_magnitude", 0.7, "weights", BNT, run_seed=3, eval_batch=64)
    assert again["bnt_trials"] == result["bnt_trials"]


def test_dense_level_has_zero_distance_and_full_flops(splits):
    result = oneshot_level(dense_model(), splits, "global_magnitude", 0.0, "weights", BNT, run_seed=0, eval_batch=64)
    assert result["accounting"]["relative_distance"] == 0.0
    assert result["accounting"]["flops_ratio"] == 1.0
