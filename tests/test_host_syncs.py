"""No host sync in the training loop: counted on the CPU for every method, the CrAM family and
every SFW constraint kind (``compressible.host_syncs``), as runs of two lengths differenced.

The losses and the weights' finiteness are read once per ``CHECK_EVERY`` steps and once per
epoch; a run of 2n steps then reads as often as a run of n steps (n < CHECK_EVERY), so any
per-step read shows in the difference. Also the counter itself, the Top-K mask's two
thresholds and the resumable Multi draws.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from compressible.compress.masks import mask_at, topk_mask
from compressible.training.divergence import CHECK_EVERY
from compressible.host_syncs import HostSyncs, host_read

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_overhead import CASES, counted_run, spec  # noqa: E402

STEPS = 6  # and 12: both below CHECK_EVERY


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("syncs")


@pytest.mark.parametrize("label", list(CASES))
def test_no_host_sync_per_step(label, folder):
    name, params = CASES[label]
    run = spec(name, params, batch=4)
    short, _ = counted_run(run, STEPS, folder, count_ops=False)
    long, _ = counted_run(run, 2 * STEPS, folder, count_ops=False)
    assert STEPS * 2 < CHECK_EVERY
    assert long.counts - short.counts == {}, f"{label}: per-step host reads {dict(long.counts - short.counts)}"


@pytest.mark.parametrize("label", ["sgd", "cram_plus_multi"])
def test_a_read_every_check_every_steps(label, folder):
    """Past CHECK_EVERY steps the loop reads once per CHECK_EVERY steps (amortized <= 1/50);
    CrAM-Multi's choices come from a CPU generator (host-only reads, counted apart)."""
    run = spec(*CASES[label], batch=2)
    short, _ = counted_run(run, 4, folder, count_ops=False)
    long, _ = counted_run(run, CHECK_EVERY + 4, folder, count_ops=False)
    assert (long.counts - short.counts) == {"tolist": 1}


def test_the_counter_sees_every_kind_of_read():
    x = torch.arange(6.0)
    with HostSyncs() as syncs:
        x.sum().item(), float(x[0]), int(x[1]), bool(x[2] > 1), x.tolist(), x.nonzero()
        x[x > 2], f"{x[0]:.1f}", x.numpy()
        y = x.clone()
        y[y > 3] = 0
    assert syncs.counts == {"item": 1, "float": 1, "int": 1, "bool": 1, "tolist": 1, "nonzero": 1,
                            "boolean index": 2, "format": 1, "numpy": 1}


def test_host_read_is_counted_apart_and_refuses_device_tensors():
    with HostSyncs() as syncs:
        assert host_read(torch.arange(3)) == [0, 1, 2]
    assert syncs.total == 0 and syncs.host == {"tolist": 1}
    with pytest.raises(ValueError, match="CPU tensors only"):
        host_read(torch.empty(2, device="meta"))


def test_topk_mask_both_thresholds_give_exactly_k_ties_by_position():
    """The CPU threshold (largest pruned, kthvalue) and the GPU one (smallest kept, topk) give
    the same mask: all entries above, then the first ties by position."""
    g = torch.Generator().manual_seed(0)
    for trial in range(60):
        n = int(torch.randint(2, 500, (1,), generator=g))
        k = int(torch.randint(1, n, (1,), generator=g))
        x = torch.randint(0, 5, (n,), generator=g).float() if trial % 2 else torch.randn(n, generator=g)
        gpu_threshold = x.topk(k, sorted=False).values.min()
        mask = topk_mask(x, k)
        assert torch.equal(mask, mask_at(x, gpu_threshold, k)) and int(mask.sum()) == k
        kept_ties = (mask & (x == x[mask].min())).nonzero().squeeze(1)
        all_ties = (x == x[mask].min()).nonzero().squeeze(1)
        assert torch.equal(kept_ties, all_ties[:len(kept_ties)])  # the first ones by position
        assert bool(x[mask].min() >= x[~mask].max()) if (~mask).any() else True
