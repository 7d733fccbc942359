"""Compressors in the one-shot stage, on small models: exact counts, exact zeros, determinism, level checks."""
import copy

import pytest
import torch
from torch import nn

from compressible.compress.lowrank import LowRank
from compressible.compress.prunable import conv_bn_pairs, prunable_parameters
from compressible.registry import COMPRESSORS, PRUNABLE_SETS

LEVELS = {"global_magnitude": 0.8, "uniform_magnitude": 0.5, "nm": "2:4", "filters": 0.5,
          "filters_global": 0.5, "filters_weights_only": 0.5, "lowrank": 0.5, "lowrank_energy": 0.9, "quantize": 4,
          "obert": 0.5}
BAD = {"global_magnitude": 1.0, "uniform_magnitude": -0.1, "nm": 124, "filters": "half",
       "filters_global": True, "filters_weights_only": 1.5, "lowrank": 1.0, "lowrank_energy": 0.0, "quantize": 4.5,
       "obert": 1.0}
# compressors that need nothing but the weights (oBERT also needs loss gradients: tests/test_obert.py)
DATA_FREE = sorted(name for name in LEVELS if not COMPRESSORS.get(name).needs_gradients)


class Block(nn.Module):
    """A residual block (conv -> BN pairs) as in the CIFAR ResNets."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def small_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), Block(8),
                        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    for m in net.modules():  # non-trivial BN so a forgotten channel would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
            nn.init.uniform_(m.weight, 0.5, 1.5), nn.init.uniform_(m.bias, -1, 1)
    return net.eval()


def test_every_registered_compressor_is_swept():
    assert set(LEVELS) == set(COMPRESSORS.names()) == set(BAD)


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_check_rejects_bad_level_naming_the_allowed_ones(name):
    op = COMPRESSORS.get(name)
    op.check(LEVELS[name])
    with pytest.raises(ValueError, match="allowed"):
        op.check(BAD[name])


@pytest.mark.parametrize("name", DATA_FREE)
def test_operators_are_deterministic_and_keep_the_model_usable(name):
    outs = []
    for _ in range(2):
        net = small_net()
        net = COMPRESSORS.get(name)(net, LEVELS[name], prunable_parameters(net, "weights"))
        outs.append((net.state_dict(), net(torch.ones(2, 3, 8, 8))))
    assert outs[0][0].keys() == outs[1][0].keys()
    assert all(torch.equal(outs[0][0][k], outs[1][0][k]) for k in outs[0][0])
    assert torch.equal(outs[0][1], outs[1][1]) and outs[0][1].shape == (2, 10)


def test_global_magnitude_exact_count_and_untouched_rest():
    net, dense = small_net(), small_net()
    prunable = prunable_parameters(net, "weights")
    COMPRESSORS.get("global_magnitude")(net, 0.9, prunable)
    total = sum(p.numel() for _, p in prunable)
    assert sum(int((p == 0).sum()) for _, p in prunable) == int(0.9 * total)
    names = {n for n, _ in prunable}
    for (n, p), q in zip(net.named_parameters(), dense.parameters()):
        if n not in names:
            assert torch.equal(p, q)
        else:  # surviving weights keep their exact value
            assert torch.equal(p[p != 0], q[p != 0])


def test_uniform_magnitude_inner_policy_keeps_first_and_last_dense():
    net = small_net()
    inner = prunable_parameters(net, "weights_inner")
    COMPRESSORS.get("uniform_magnitude")(net, 0.75, inner)
    for _, p in inner:
        assert int((p == 0).sum()) == int(0.75 * p.numel())
    assert (net[0].weight != 0).all() and (net[-1].weight != 0).all()


def test_nm_groups_on_model():
    net = small_net()
    COMPRESSORS.get("nm")(net, "4:8", prunable_parameters(net, "weights"))
    groups = (net[3].conv1.weight != 0).permute(0, 2, 3, 1).reshape(-1, 8)
    assert (groups.sum(1) == 4).all()
    assert (net[0].weight != 0).all()  # 3 input channels: not divisible by 8, left dense
    assert ((net[-1].weight != 0).reshape(-1, 8).sum(1) == 4).all()


@pytest.mark.parametrize("name", ["filters", "filters_global"])
def test_pruned_filters_are_exactly_zero_after_batch_norm(name):
    net = small_net()
    prunable = prunable_parameters(net, "weights")
    COMPRESSORS.get(name)(net, 0.5, prunable)
    convs = [(n, p) for n, p in prunable if p.dim() == 4]
    dead = {n: (p.flatten(1) == 0).all(1) for n, p in convs}
    total = sum(p.shape[0] for _, p in convs)
    assert sum(int(d.sum()) for d in dead.values()) == int(0.5 * total)
    if name == "filters":
        assert all(int(d.sum()) == int(0.5 * d.numel()) for d in dead.values())
    outputs = {}
    for bn_name in ["1", "3.bn1", "3.bn2", "5"]:
        net.get_submodule(bn_name).register_forward_hook(lambda m, i, o, k=bn_name: outputs.__setitem__(k, o))
    net(torch.randn(4, 3, 8, 8))
    for conv_name, bn_name in [("0", "1"), ("3.conv1", "3.bn1"), ("3.conv2", "3.bn2"), ("4", "5")]:
        channels = dead[conv_name + ".weight"]
        assert (outputs[bn_name][:, channels] == 0).all()
        assert (outputs[bn_name][:, ~channels] != 0).any()
    assert (net[0].bias[dead["0.weight"]] == 0).all()


class PreAct(nn.Module):
    """Pre-activation: bn2 normalizes a residual sum, not a conv output."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv1(x)
        return self.conv2(torch.relu(self.bn2(x + self.bn1(y))))


def test_conv_bn_pairs_follow_data_flow():
    net = small_net()
    pairs = conv_bn_pairs(net)
    expected = {"0": "1", "3.conv1": "3.bn1", "3.conv2": "3.bn2", "4": "5"}
    assert set(pairs) == set(expected)
    assert all(pairs[c] is net.get_submodule(b) for c, b in expected.items())
    preact = PreAct()
    assert set(conv_bn_pairs(preact)) == {"conv1"}


def test_lowrank_operator_replaces_prunable_layers_with_rank_r():
    net = small_net()
    net = COMPRESSORS.get("lowrank")(net, 0.5, prunable_parameters(net, "weights_inner"))
    assert not isinstance(net[0], LowRank) and not isinstance(net[-1], LowRank)
    # rank of c_out x (c_in*9) is c_out here: 8 -> 4 and 16 -> 8
    assert (net[3].conv1.rank, net[3].conv2.rank, net[4].rank) == (4, 4, 8)


def test_lowrank_energy_full_energy_is_lossless():
    net = small_net()
    dense = copy.deepcopy(net)
    net = COMPRESSORS.get("lowrank_energy")(net, 1.0, prunable_parameters(net, "weights"))
    assert isinstance(net[0], LowRank) and net[0].rank == 8 and net[-1].rank == 10
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), dense(x), atol=1e-4, rtol=1e-4)


def test_quantize_model_distinct_values_per_channel():
    net = small_net()
    prunable = prunable_parameters(net, "weights")
    COMPRESSORS.get("quantize")(net, 4, prunable)
    for _, p in prunable:
        assert max(row.unique().numel() for row in p.reshape(p.shape[0], -1)) <= 2 ** 4


PRUNABLE = ["weights", "weights_inner", "weights_no_first", "weights_no_last", "conv_weights", "non_bn", "all"]
MODEL_SPECIFIC = ["bert_encoder"]  # tests/test_obert.py, on a tiny BERT


def test_every_prunable_set_is_swept():
    assert set(PRUNABLE + MODEL_SPECIFIC) == set(PRUNABLE_SETS.names())


def test_conv_weights_hold_every_conv_and_no_linear():
    net = small_net()
    names = [n for n, _ in prunable_parameters(net, "conv_weights")]
    assert names == ["0.weight", "3.conv1.weight", "3.conv2.weight", "4.weight"]


def test_filters_weights_only_leaves_bias_and_bn_alone():
    net, reference = small_net(), small_net()
    COMPRESSORS.get("filters_weights_only")(net, 0.5, prunable_parameters(net, "weights"))
    dead = (net[4].weight.flatten(1) == 0).all(1)
    assert int(dead.sum()) == 8
    assert torch.equal(net[5].weight, reference[5].weight) and torch.equal(net[5].bias, reference[5].bias)
    assert torch.equal(net[0].bias, reference[0].bias)


@pytest.mark.parametrize("policy", PRUNABLE)
@pytest.mark.parametrize("name", DATA_FREE)
def test_every_operator_runs_on_every_prunable_set(name, policy):
    net = small_net()
    net = COMPRESSORS.get(name)(net, LEVELS[name], prunable_parameters(net, policy))
    assert torch.isfinite(net(torch.randn(2, 3, 8, 8))).all()


def test_filters_on_the_project_resnet20_and_preact_wrn_pairing():
    models = pytest.importorskip("compressible.models")
    net = models.build_model("resnet20", num_classes=10).eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.bias, 0.5, 1.0)
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    pairs = conv_bn_pairs(net)
    assert set(pairs) == set(convs)  # post-activation ResNet: every conv feeds its own BN
    COMPRESSORS.get("filters")(net, 0.5, prunable_parameters(net, "weights"))
    seen = {}
    for conv in convs:
        pairs[conv].register_forward_hook(lambda m, i, o, k=conv: seen.__setitem__(k, o))
    net(torch.randn(2, 3, 32, 32))
    for conv in convs:
        dead = (net.get_submodule(conv).weight.flatten(1) == 0).all(1)
        assert int(dead.sum()) == dead.numel() // 2 and (seen[conv][:, dead] == 0).all()
    wrn = models.build_model("wrn28_10", num_classes=10, width=1)
    paired = set(conv_bn_pairs(wrn))  # pre-activation: conv2 and shortcuts feed a residual sum
    assert not any(n.endswith("conv2") or n.endswith("shortcut") for n in paired)
    assert all(f"layers.{i}.conv1" in paired for i in range(12))
