"""The sync-free optimizer arithmetic gives the bits of the per-tensor arithmetic it replaced
(CPU checkpoints unchanged): SAM's ascent with the norm read as a Python float, Multi's choices
drawn one at a time."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from compressible.optim.cram import DRAW_AHEAD
from compressible.optim.sam import SAM


def reference_first_step(params: list[nn.Parameter], rho: float, adaptive: bool, normalize: bool) -> None:
    """The per-tensor SAM ascent with a host-read norm (the arithmetic before the change)."""
    with torch.no_grad():
        scaled = [p.abs() * p.grad if adaptive else p.grad for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(scaled)))
        inv_norm = 1.0 / (float(norm) + 1e-12) if normalize else 1.0
        for p in params:
            ascent = p.grad * p.square() if adaptive else p.grad
            p.add_(ascent, alpha=rho * inv_norm)


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_sam_ascent_is_bitwise_the_host_read_one(adaptive, normalize):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(37, 19), nn.Linear(19, 5))
    reference = copy.deepcopy(net)
    for model in (net, reference):
        torch.manual_seed(1)
        model(torch.randn(8, 37)).square().sum().backward()
    optimizer = SAM(net.parameters(), torch.optim.SGD, rho=0.07, adaptive=adaptive, normalize=normalize, lr=0.1)
    optimizer.first_step()
    reference_first_step(list(reference.parameters()), 0.07, adaptive, normalize)
    for p, q in zip(net.parameters(), reference.parameters()):
        assert torch.equal(p, q)


def test_drawing_ahead_gives_the_one_by_one_sequence():
    one, ahead = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    singles = [int(torch.randint(5, (1,), generator=one)) for _ in range(3 * DRAW_AHEAD)]
    blocks = [i for _ in range(3) for i in torch.randint(5, (DRAW_AHEAD,), generator=ahead).tolist()]
    assert singles == blocks and torch.equal(one.get_state(), ahead.get_state())
