"""Compressors as CrAM's C (pure functions of the prunable tensors): exact sparsity, N:M pattern,
≤ 2^k levels per channel, idempotence; every registered compressor declares its level kind."""
import pytest
import torch

from compressible.compress.base import FRACTION_KINDS
from compressible.optim.methods_cram import DenseEnds
from compressible.registry import COMPRESSORS


def GlobalTopK(sparsity):
    return COMPRESSORS.get("global_magnitude").at(sparsity)


def UniformTopK(sparsity, dense_ends=False):
    bound = COMPRESSORS.get("uniform_magnitude").at(sparsity)
    return DenseEnds(bound) if dense_ends else bound


def NMSparsity(n, m):
    return COMPRESSORS.get("nm").at(f"{n}:{m}")


def SymmetricQuant(bits):
    return COMPRESSORS.get("quantize").at(bits)


GEN = torch.Generator().manual_seed(0)
TENSORS = [torch.randn(8, 3, 3, 3, generator=GEN), torch.randn(16, 8, 3, 3, generator=GEN),
           torch.randn(10, 16, generator=GEN)]


LEVEL_KINDS = {"global_magnitude": "sparsity", "uniform_magnitude": "sparsity", "nm": "pattern",
               "filters": "filter fraction", "filters_global": "filter fraction",
               "filters_weights_only": "filter fraction",
               "lowrank": "rank reduction", "lowrank_energy": "energy", "quantize": "bits", "obert": "sparsity"}
TENSOR_WISE = {"global_magnitude": 0.6, "uniform_magnitude": 0.6, "nm": "2:4", "quantize": 4}


def test_every_registered_compressor_declares_its_level_kind():
    assert set(COMPRESSORS.names()) == set(LEVEL_KINDS)
    for name, kind in LEVEL_KINDS.items():
        compressor = COMPRESSORS.get(name)
        assert compressor.name == name and compressor.level_kind == kind
        assert compressor.removes_fraction == (kind in FRACTION_KINDS)


@pytest.mark.parametrize("name", sorted(LEVEL_KINDS))
def test_only_tensor_wise_compressors_serve_training(name):
    compressor = COMPRESSORS.get(name)
    level = TENSOR_WISE.get(name, 0.5)
    if name in TENSOR_WISE:
        values, _ = compressor.at(level)(TENSORS)
        assert [v.shape for v in values] == [t.shape for t in TENSORS]
    else:
        with pytest.raises(TypeError, match="one-shot use only"):
            compressor.at(level)(TENSORS)


def test_nm_pattern_is_parsed_once():
    assert NMSparsity(2, 4).level == (2, 4)
    with pytest.raises(ValueError, match="0 < N < M"):
        COMPRESSORS.get("nm").at("4:2")


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.97])
def test_global_topk_exact_sparsity_and_one_threshold(sparsity):
    values, masks = GlobalTopK(sparsity)(TENSORS)
    total = sum(t.numel() for t in TENSORS)
    assert sum(int((~m).sum()) for m in masks) == int(sparsity * total)
    kept = torch.cat([t[m].abs() for t, m in zip(TENSORS, masks)])
    pruned = torch.cat([t[~m].abs() for t, m in zip(TENSORS, masks)])
    if pruned.numel():
        assert kept.min() >= pruned.max()  # one threshold across all tensors
    for v, t, m in zip(values, TENSORS, masks):
        assert torch.equal(v, t.masked_fill(~m, 0.0))


@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_uniform_topk_exact_sparsity_per_tensor(sparsity):
    values, masks = UniformTopK(sparsity)(TENSORS)
    for v, t, m in zip(values, TENSORS, masks):
        assert int((~m).sum()) == int(sparsity * t.numel())
        assert int((v == 0).sum()) == int(sparsity * t.numel())
        assert t[m].abs().min() >= t[~m].abs().max()


def test_uniform_topk_dense_ends():
    values, masks = UniformTopK(0.5, dense_ends=True)(TENSORS)
    assert torch.equal(values[0], TENSORS[0]) and torch.equal(values[-1], TENSORS[-1])
    assert masks[0].all() and masks[-1].all()
    assert int((~masks[1]).sum()) == TENSORS[1].numel() // 2


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_pattern_in_every_group_along_input_channels(n, m):
    values, masks = NMSparsity(n, m)((TENSORS[1], TENSORS[2]))
    conv, linear = masks
    groups = conv.permute(0, 2, 3, 1).reshape(-1, m)  # groups of m input channels
    assert (groups.sum(dim=1) == n).all()
    assert (linear.reshape(-1, m).sum(dim=1) == n).all()
    kept = TENSORS[1].abs().permute(0, 2, 3, 1).reshape(-1, m)
    lo = torch.where(groups, kept, torch.inf).amin(1)
    hi = torch.where(groups, -torch.inf, kept).amax(1)
    assert (lo >= hi).all()  # the n largest magnitudes of each group survive


def test_nm_leaves_indivisible_input_dense():
    values, masks = NMSparsity(2, 4)([TENSORS[0]])  # 3 input channels
    assert masks[0].all() and torch.equal(values[0], TENSORS[0])


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantization_levels_per_channel(bits):
    values, masks = SymmetricQuant(bits)(TENSORS)
    assert masks is None
    for v, t in zip(values, TENSORS):
        for row, orig in zip(v.reshape(v.shape[0], -1), t.reshape(t.shape[0], -1)):
            assert row.unique().numel() <= 2 ** bits
            torch.testing.assert_close(row.abs().max(), orig.abs().max())
        step = t.reshape(t.shape[0], -1).abs().amax(1) / (2 ** (bits - 1) - 1)
        err = (v - t).reshape(t.shape[0], -1).abs().amax(1)
        assert (err <= step / 2 + 1e-6).all()  # round to nearest


@pytest.mark.parametrize("compressor", [GlobalTopK(0.7), UniformTopK(0.6), UniformTopK(0.5, True),
                                        NMSparsity(2, 4), SymmetricQuant(4)], ids=lambda c: c.name)
def test_idempotent(compressor):
    once, _ = compressor(TENSORS)
    twice, _ = compressor(once)
    for a, b in zip(once, twice):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_names_distinguish_levels():
    names = {c.name for c in (GlobalTopK(0.5), GlobalTopK(0.7), UniformTopK(0.5),
                              NMSparsity(2, 4), NMSparsity(4, 8), SymmetricQuant(4))}
    assert len(names) == 6
