"""Accounting (ShrinkBench-style sizes and FLOPs) and the relative distance of CA-SFW Fig. 1."""
import copy
import math

import torch
from torch import nn

from compressible.compress.accounting import account
from compressible.compress.distance import relative_distance
from compressible.compress.prunable import prunable_parameters
from compressible.registry import COMPRESSORS


def net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    for norm in (model[1], model[4]):  # nonzero shifts: zeros are counted as removed parameters
        nn.init.constant_(norm.bias, 0.1)
    return model


DENSE_FLOPS = 8 * 8 * 8 * 27 + 4 * 4 * 4 * 72 + 10 * 64  # output elements x weights per output
PARAMS = 8 * 27 + 16 + 4 * 72 + 8 + 64 * 10 + 10


def names(model, policy="weights"):
    return [n for n, _ in prunable_parameters(model, policy)]


def test_dense_model_hand_counted():
    model = net()
    result = account(model, model, names(model), (3, 8, 8))
    assert result["flops_dense"] == result["flops_remaining"] == DENSE_FLOPS
    assert result["params_total"] == result["params_remaining"] == PARAMS
    assert result["sparsity_prunable"] == result["sparsity_total"] == 0.0
    assert result["speedup"] == result["compression_ratio"] == result["flops_ratio"] == 1.0


def test_zeroed_layer_reduces_flops_proportionally_and_keeps_state():
    dense = net()
    model = copy.deepcopy(dense).train()
    with torch.no_grad():
        model[3].weight[:2] = 0  # half of the second conv
    stats = model[1].running_mean.clone()
    result = account(dense, model, names(dense), (3, 8, 8))
    assert result["flops_remaining"] == DENSE_FLOPS - 4 * 4 * 4 * 72 / 2
    assert result["params_remaining"] == PARAMS - 144
    assert math.isclose(result["sparsity_prunable"], 144 / (8 * 27 + 4 * 72 + 640))
    assert math.isclose(result["speedup"], DENSE_FLOPS / result["flops_remaining"])
    assert model.training and torch.equal(model[1].running_mean, stats)


def test_global_magnitude_sparsity_over_prunable_and_total():
    dense = net()
    model = copy.deepcopy(dense)
    model = COMPRESSORS.get("global_magnitude")(model, 0.9, prunable_parameters(model, "weights"))
    result = account(dense, model, names(dense), (3, 8, 8))
    prunable = 8 * 27 + 4 * 72 + 640
    assert math.isclose(result["sparsity_prunable"], int(0.9 * prunable) / prunable)
    assert math.isclose(result["sparsity_total"], int(0.9 * prunable) / PARAMS)
    assert math.isclose(result["compression_ratio"], PARAMS / (PARAMS - int(0.9 * prunable)))


def test_lowrank_reports_the_factorized_model():
    dense = net()
    model = copy.deepcopy(dense)
    model = COMPRESSORS.get("lowrank")(model, 0.5, prunable_parameters(model, "weights"))
    result = account(dense, model, names(dense), (3, 8, 8))
    # ranks: conv0 min(8,27)=8 -> 4, conv3 min(4,72)=4 -> 2, linear min(10,64)=10 -> 5
    factor_params = 4 * 27 + 8 * 4 + 2 * 72 + 4 * 2 + 5 * 64 + 10 * 5
    assert result["params_remaining"] == factor_params + 16 + 8 + 10
    flops = 64 * (4 * 27 + 8 * 4) + 16 * (2 * 72 + 4 * 2) + 5 * 64 + 10 * 5
    assert result["flops_remaining"] == flops and result["flops_dense"] == DENSE_FLOPS
    assert math.isclose(result["sparsity_prunable"], 1 - factor_params / (8 * 27 + 4 * 72 + 640))


def test_relative_distance_values():
    dense = net()
    assert relative_distance(dense, copy.deepcopy(dense)) == 0.0
    zeroed = copy.deepcopy(dense)
    for p in zeroed.parameters():
        p.data.zero_()
    assert relative_distance(dense, zeroed) == 1.0
    half = copy.deepcopy(dense)
    half[3].weight.data[:2] = 0
    w = dense[3].weight.detach()
    assert math.isclose(relative_distance(dense, half, ["3.weight"]), float(w[:2].norm() / w.norm()),
                        rel_tol=1e-6)


def test_relative_distance_of_low_rank_is_the_singular_value_tail():
    dense = net()
    model = copy.deepcopy(dense)
    model = COMPRESSORS.get("lowrank")(model, 0.5, prunable_parameters(model, "weights"))
    sigma = torch.linalg.svdvals(dense[3].weight.detach().reshape(4, -1).double())
    expected = float(sigma[2:].norm() / sigma.norm())  # rank 4 -> 2
    assert math.isclose(relative_distance(dense, model, ["3.weight"]), expected, rel_tol=1e-5)
