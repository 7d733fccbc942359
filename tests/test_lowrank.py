"""Low-rank surgery: the factorized layer computes the rank-r truncated weight exactly."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compressible.compress import lowrank


def truncated(weight: torch.Tensor, r: int) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(weight.reshape(weight.shape[0], -1).double(), full_matrices=False)
    return ((u[:, :r] * s[:r]) @ vh[:r]).to(weight.dtype).view_as(weight)


def test_truncation_rank_formula():
    assert [lowrank.truncation_rank(16, s) for s in (0.0, 0.5, 0.9, 0.99)] == [16, 8, 1, 1]
    assert lowrank.truncation_rank(10, 0.25) == 7  # floor(7.5)
    with pytest.raises(ValueError):
        lowrank.truncation_rank(10, 1.0)


def test_energy_rank():
    sigma = torch.tensor([3.0, 2.0, 1.0, 0.0])  # energies 9, 4, 1 of 14
    assert [lowrank.energy_rank(sigma, e) for e in (0.5, 9 / 14, 0.7, 13 / 14, 1.0)] == [1, 1, 2, 2, 3]


@pytest.mark.parametrize("r", [1, 3, 7])
def test_conv_factorization_equals_truncated_weight(r):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 10, 3, stride=2, padding=1, bias=True)
    pair = lowrank.factorize_module(conv, r)
    assert pair.rank == r and pair.reduce.out_channels == r and pair.expand.kernel_size == (1, 1)
    assert torch.linalg.matrix_rank(pair.effective_weight().reshape(10, -1)) == r
    x = torch.randn(2, 4, 9, 9)
    expected = F.conv2d(x, truncated(conv.weight.detach(), r), conv.bias, stride=2, padding=1)
    torch.testing.assert_close(pair(x), expected, atol=1e-5, rtol=1e-5)


def test_full_rank_reproduces_dense_conv_and_linear():
    torch.manual_seed(1)
    conv, linear = nn.Conv2d(3, 5, 3, padding=1), nn.Linear(6, 4)
    x, z = torch.randn(2, 3, 6, 6), torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(lowrank.factorize_module(conv, 5)(x), conv(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lowrank.factorize_module(linear, 4)(z), linear(z), atol=1e-5, rtol=1e-5)


def test_linear_factorization_is_two_linears_of_rank_r():
    torch.manual_seed(2)
    linear = nn.Linear(12, 9)
    pair = lowrank.factorize_module(linear, 4)
    assert isinstance(pair.reduce, nn.Linear) and pair.reduce.out_features == 4 and pair.reduce.bias is None
    z = torch.randn(3, 12)
    with torch.no_grad():
        torch.testing.assert_close(pair(z), F.linear(z, truncated(linear.weight, 4), linear.bias),
                                   atol=1e-5, rtol=1e-5)


def test_replace_module_in_sequential():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    lowrank.replace_module(model, "0", lowrank.factorize_module(model[0], 2))
    assert isinstance(model[0], lowrank.LowRank)
    assert sorted(n for n, _ in model.named_parameters()) == ["0.expand.bias", "0.expand.weight", "0.reduce.weight"]
