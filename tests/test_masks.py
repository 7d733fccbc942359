"""Exact-count invariants of the pure tensor kernels in compress/masks.py."""
import pytest
import torch

from compressible.compress import masks


def test_topk_mask_is_exact_even_with_ties():
    scores = torch.tensor([1.0, 2.0, 2.0, 2.0, 3.0])
    mask = masks.topk_mask(scores, 3)
    assert mask.tolist() == [False, True, True, False, True]  # first tie kept, by position


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_global_topk_one_threshold_exact_count(sparsity):
    gen = torch.Generator().manual_seed(0)
    scores = [torch.rand(s, generator=gen) * scale for s, scale in [((7, 5), 1.0), ((33,), 3.0), ((4, 3, 2), 0.1)]]
    kept = masks.global_topk_masks(scores, sparsity)
    total = sum(s.numel() for s in scores)
    assert sum(int(m.sum()) for m in kept) == masks.keep_count(total, sparsity)
    flat_s, flat_m = torch.cat([s.flatten() for s in scores]), torch.cat([m.flatten() for m in kept])
    if 0 < flat_m.sum() < total:  # one threshold: every kept score beats every pruned one
        assert flat_s[flat_m].min() >= flat_s[~flat_m].max()


def test_uniform_topk_same_sparsity_per_tensor():
    scores = [torch.rand(10, 10), torch.rand(37), torch.rand(3, 3, 3)]
    for s, m in zip(scores, masks.uniform_topk_masks(scores, 0.7)):
        assert int(m.sum()) == s.numel() - int(0.7 * s.numel())


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_mask_groups_along_input_channels(n, m):
    weight = torch.randn(6, 16, 3, 3)
    mask = masks.nm_mask(weight, n, m)
    groups = mask.permute(0, 2, 3, 1).reshape(-1, m)
    assert (groups.sum(1) == n).all()
    kept_min = weight.abs().permute(0, 2, 3, 1).reshape(-1, m).masked_fill(~groups, float("inf")).min(1).values
    pruned_max = weight.abs().permute(0, 2, 3, 1).reshape(-1, m).masked_fill(groups, -1).max(1).values
    assert (kept_min >= pruned_max).all()


def test_nm_mask_leaves_indivisible_input_dense():
    assert masks.nm_mask(torch.randn(8, 3, 3, 3), 2, 4).all()


def test_filter_keep_mask_exact_and_by_l1_norm():
    weight = torch.zeros(5, 2, 1, 1)
    weight[:, 0, 0, 0] = torch.tensor([5.0, -1.0, 3.0, 0.5, -4.0])
    assert masks.filter_keep_mask(weight, 0.4).tolist() == [True, False, True, False, True]


def test_global_filter_masks_exact_total_and_normalized_scores():
    small = torch.full((4, 1, 1, 1), 1.0)         # mean |w| = 1
    large = torch.full((4, 8, 3, 3), 0.5)         # mean |w| = 0.5 but much larger L1 norm
    kept = masks.global_filter_masks([small, large], 0.5)
    assert [int(k.sum()) for k in kept] == [4, 0]  # size-normalized ranking keeps the small layer


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantize_at_most_2_pow_k_values_per_channel(bits):
    weight = torch.randn(8, 16, 3, 3)
    q = masks.quantize_symmetric(weight, bits)
    for row_q, row_w in zip(q.reshape(8, -1), weight.reshape(8, -1)):
        assert row_q.unique().numel() <= 2 ** bits
        step = row_w.abs().max() / (2 ** (bits - 1) - 1)
        assert (row_q - row_w).abs().max() <= step / 2 + 1e-6  # round to nearest


def test_global_topk_magnitude_equals_topk_on_abs():
    gen = torch.Generator().manual_seed(3)
    weights = [torch.randn(s, generator=gen) for s in [(5, 4), (17,), (2, 3, 3, 3)]]
    weights[1][:6] = 0.25  # ties straddling the threshold
    weights[0][0, :3] = -0.25
    for sparsity in (0.0, 0.4, 0.75):
        expected = masks.global_topk_masks([w.abs() for w in weights], sparsity)
        got = masks.global_topk_masks(weights, sparsity, magnitude=True)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("t", [1, 7, 150_000, 299_999, 300_000])
def test_kth_smallest_is_exact_on_large_vectors(t):
    gen = torch.Generator().manual_seed(5)
    flat = torch.randn(300_000, generator=gen).abs()
    flat[::3] = 0.5  # heavy ties
    assert masks.kth_smallest(flat, t) == torch.kthvalue(flat, t).values


def test_kth_smallest_falls_back_when_the_sample_misleads():
    flat = torch.arange(300_000, dtype=torch.float32)
    flat[:: 300_000 // (1 << 16)] = -1.0  # the strided sample sees only these
    assert masks.kth_smallest(flat, 200_000) == torch.kthvalue(flat, 200_000).values


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(12))
def test_topk_mask_is_exact_in_every_dtype_with_ties(dtype, seed):
    """Exactly k entries, every kept score >= every pruned one, ties kept by position; float64
    scores that differ below float32 resolution must not merge (they did with a float32 copy)."""
    gen = torch.Generator().manual_seed(seed)
    n = 257 + 31 * seed
    scores = torch.randn(n, generator=gen, dtype=torch.float64).abs()
    scores[:: 5] = 0.5  # heavy ties
    if dtype == torch.float64:
        scores[1::7] = 0.5 + torch.arange(len(scores[1::7]), dtype=torch.float64) * 1e-12
    scores = scores.to(dtype)
    for k in (1, n // 3, n // 2, n - 1):
        mask = masks.topk_mask(scores, k)
        assert int(mask.sum()) == k
        assert scores[mask].min() >= scores[~mask].max()
        threshold = scores[~mask].max()
        tied = torch.nonzero(scores == threshold).squeeze(1)
        kept_tied = tied[mask[tied]]
        assert torch.equal(kept_tied, tied[: len(kept_tied)])  # the first ties by position
