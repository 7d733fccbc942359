"""Fixed-mask fine-tuning (CrAM App. D): the pruned zeros stay +0.0, their optimizer state too,
the rest trains as plain Adam would; the mask survives a state_dict round trip."""
import copy

import pytest
import torch
from torch import nn

import compressible.optim  # noqa: F401  (registers the METHODS)
from compressible.optim.errors import ParamError
from compressible.optim.masked import FixedMask
from compressible.registry import COMPRESSORS, METHODS

LR = 1e-2


def pruned_mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    prunable = [("0.weight", model[0].weight), ("2.weight", model[2].weight)]
    COMPRESSORS.get("global_magnitude")(model, 0.6, prunable)
    return model, prunable


def data(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)


def closure_for(model, opt, x, y):
    def closure(track_bn_stats=True):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()
    return closure


def train(model, opt, steps=15):
    x, y = data()
    for _ in range(steps):
        opt.step(closure_for(model, opt, x, y))


@pytest.mark.parametrize("base", ["adam", "sgd"])
def test_the_pattern_and_its_state_stay_zero_and_the_rest_trains(base):
    model, prunable = pruned_mlp()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    zeros = {n: p == 0 for n, p in prunable}
    opt = METHODS.get("masked")(model, prunable, seed=0, base=base, lr=LR)
    assert isinstance(opt, FixedMask)
    train(model, opt)
    for n, p in prunable:
        assert torch.equal(p == 0, zeros[n])  # the same pattern, neither lost nor grown
        assert not torch.signbit(p[zeros[n]]).any()  # +0.0, also where the weight was negative
        assert not torch.equal(p[~zeros[n]], before[n][~zeros[n]])
        tensors = [v for v in opt.state[p].values() if isinstance(v, torch.Tensor) and v.shape == p.shape]
        assert tensors and all(torch.equal(v[zeros[n]], torch.zeros_like(v[zeros[n]])) for v in tensors)
    assert not torch.equal(model[0].bias, before["0.bias"])  # biases are outside the mask and train


def test_the_kept_weights_follow_plain_adam_with_the_mask_applied_by_hand():
    model, prunable = pruned_mlp()
    reference = copy.deepcopy(model)
    masks = [p == 0 for _, p in prunable]
    opt = METHODS.get("masked")(model, prunable, seed=0, lr=LR)
    plain = torch.optim.Adam(reference.parameters(), lr=LR)  # the unfused kernels, a different code path
    x, y = data()
    for _ in range(10):
        opt.step(closure_for(model, opt, x, y))
        plain.step(closure_for(reference, plain, x, y))
        with torch.no_grad():
            for (_, p), m in zip([("0.weight", reference[0].weight), ("2.weight", reference[2].weight)], masks):
                p[m] = 0.0
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_the_mask_survives_a_state_dict_round_trip():
    model, prunable = pruned_mlp()
    opt = METHODS.get("masked")(model, prunable, seed=0, lr=LR)
    train(model, opt, 4)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    train(model, opt, 5)
    dense = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))  # no zeros: no mask of its own
    opt2 = METHODS.get("masked")(dense, [("0.weight", dense[0].weight), ("2.weight", dense[2].weight)], seed=0, lr=LR)
    dense.load_state_dict(saved_model)
    opt2.load_state_dict(saved_opt)
    train(dense, opt2, 5)
    for p, q in zip(model.parameters(), dense.parameters()):
        assert torch.equal(p, q)


def test_adam_base_refuses_momentum():
    model, prunable = pruned_mlp()
    with pytest.raises(ParamError, match="momentum"):
        METHODS.get("masked")(model, prunable, seed=0, momentum=0.9)
