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


def test_an_epoch_drawn_up_front_is_the_batch_by_batch_epoch():
    """Order, crops and flips drawn at the epoch's start equal the draws a batch-by-batch loop
    makes (order first, then each batch's dy, dx, flips), and leave the generator in the same state."""
    from compressible.data.batches import augment, train_batches
    from conftest import synthetic_splits

    splits = synthetic_splits(n_train=70)
    splits.crop_padding, splits.flip = 2, True
    one, ahead = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    order = torch.randperm(70, generator=one)
    reference = [(augment(splits.train_images[order[s:s + 16]], splits, one), splits.train_labels[order[s:s + 16]])
                 for s in range(0, 70 - 16 + 1, 16)]
    got = list(train_batches(splits, 16, ahead))
    assert len(got) == len(reference) == 4
    assert all(torch.equal(x, rx) and torch.equal(y, ry) for (x, y), (rx, ry) in zip(got, reference))
    assert torch.equal(one.get_state(), ahead.get_state())
