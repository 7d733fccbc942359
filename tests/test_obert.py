"""oBERT (Kurtic et al. 2022) against the exact OBS solution of a dense KKT system; its
saliency ranking, padding, recomputations and gradient budget; the ``bert_encoder`` prunable
set on a tiny BERT, pruned by oBERT with real loss gradients."""
import pytest
import torch
from torch import nn

from compressible.compress.obert import OBERT
from compressible.compress.prunable import prunable_parameters
from compressible.registry import COMPRESSORS


def random_gradients(shapes, m, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(shape, generator=g, dtype=torch.float64) for shape in shapes] for _ in range(m)]


def dense_fisher(samples, shapes, block_size, dampening):
    """λI + (1/m) Σ g gᵀ over all entries of all tensors, kept only inside each tensor's blocks
    of ``block_size`` consecutive flattened entries (the last block of a tensor may be shorter)."""
    flat = torch.stack([torch.cat([g.reshape(-1) for g in grads]) for grads in samples])
    fisher = flat.T @ flat / len(samples)
    block_id = torch.cat([torch.full((n,), 1000 * i) + torch.arange(n) // block_size
                          for i, n in enumerate(torch.Size(s).numel() for s in shapes)])
    same_block = block_id.unsqueeze(0) == block_id.unsqueeze(1)
    return fisher * same_block + dampening * torch.eye(len(block_id), dtype=fisher.dtype)


def exact_obs(fisher, w, pruned):
    """min ½ δᵀFδ subject to δ_Q = −w_Q, from the KKT system [[F, E], [Eᵀ, 0]] [δ; μ] = [0; −w_Q]."""
    n, q = len(w), pruned.nonzero().squeeze(1)
    e = torch.zeros(n, len(q), dtype=w.dtype)
    e[q, torch.arange(len(q))] = 1.0
    kkt = torch.cat([torch.cat([fisher, e], 1), torch.cat([e.T, torch.zeros(len(q), len(q), dtype=w.dtype)], 1)])
    rhs = torch.cat([torch.zeros(n, dtype=w.dtype), -w[q]])
    return w + torch.linalg.solve(kkt, rhs)[:n]


def smallest_saliency_set(fisher, w, count):
    saliency = w ** 2 / (2 * torch.linalg.inv(fisher).diagonal())
    pruned = torch.zeros_like(w, dtype=torch.bool)
    pruned[torch.sort(saliency, stable=True).indices[:count]] = True
    return pruned


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shapes, level, block_size", [
    ([(2, 5)], 0.4, 5),                # the brief's case: 2 blocks of 5 weights
    ([(2, 5)], 0.7, 5),                # several pruned weights per block: the joint solution
    ([(3, 4), (7,)], 0.5, 5),          # global ranking over two tensors, shorter last blocks (padding)
])
@pytest.mark.parametrize("dampening", [1e-7, 1e-2])
def test_one_step_equals_the_exact_obs_solution(seed, shapes, level, block_size, dampening):
    g = torch.Generator().manual_seed(100 + seed)
    tensors = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in shapes]
    samples = random_gradients(shapes, 64, seed)
    w = torch.cat([t.reshape(-1) for t in tensors])
    fisher = dense_fisher(samples, shapes, block_size, dampening)
    pruned = smallest_saliency_set(fisher, w, int(level * len(w)))
    expected = exact_obs(fisher, w, pruned)

    kept = OBERT(block_size=block_size, dampening=dampening, recomputations=1).apply(
        tensors, level, lambda: iter(samples))
    result = torch.cat([t.reshape(-1) for t in tensors])
    assert torch.equal(~torch.cat([k.reshape(-1) for k in kept]), pruned)  # the smallest-saliency set
    assert torch.equal(result[pruned], torch.zeros(int(pruned.sum()), dtype=result.dtype))  # exactly zero
    torch.testing.assert_close(result, expected, rtol=1e-9, atol=1e-9)
    assert not torch.equal(result[~pruned], w[~pruned])  # the survivors moved (the OBS update)


def test_recomputations_reach_the_target_in_equal_steps_at_fresh_weights():
    shapes = [(6, 10), (25,)]
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in shapes]
    total = sum(t.numel() for t in tensors)
    seen, snapshots = [], []

    def source():  # what a trainer's gradient source sees: the weights as they are now
        seen.append(sum(int((t == 0).sum()) for t in tensors))
        snapshots.append([t.clone() for t in tensors])
        return iter(random_gradients(shapes, 40, seed=len(seen)))

    kept = OBERT(block_size=7, recomputations=4).apply(tensors, 0.8, source)
    assert seen == [0] + [int(0.8 * (k + 1) / 4 * total) for k in range(3)]
    assert sum(int((~k).sum()) for k in kept) == int(0.8 * total)
    for before, after in zip(snapshots[1:], snapshots[2:] + [tensors]):  # once pruned, pruned for good
        for b, a in zip(before, after):
            assert torch.equal(a[b == 0], torch.zeros_like(a[b == 0]))


def test_at_most_samples_gradients_are_read_and_none_is_refused():
    shapes = [(4, 5)]
    read = []

    def stream():
        for grads in random_gradients(shapes, 30):
            read.append(1)
            yield grads

    tensors = [torch.randn(4, 5, dtype=torch.float64)]
    OBERT(block_size=5, samples=8, recomputations=1).apply(tensors, 0.5, stream)
    assert len(read) == 8
    with pytest.raises(ValueError, match="at least one gradient"):
        OBERT(recomputations=1).apply(tensors, 0.5, lambda: iter([]))


def test_registered_defaults_and_model_interface():
    obert = COMPRESSORS.get("obert")
    assert (obert.block_size, obert.dampening, obert.samples, obert.recomputations) == (50, 1e-7, 1024, 4)
    assert obert.needs_gradients and obert.level_kind == "sparsity" and obert.schedule(0.8) == [0.2, 0.4, 0.6000000000000001, 0.8]
    with pytest.raises(ValueError, match="allowed"):
        obert.check(1.0)
    model = nn.Linear(4, 3)
    with pytest.raises(TypeError, match="gradients"):
        obert(model, 0.5, [("weight", model.weight)])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("level", [0.3, 0.6])
def test_on_least_squares_obs_beats_magnitude_pruning(seed, level):
    """At the optimum of a least-squares fit the empirical Fisher is about σ²·H: with features of
    unequal scale, oBERT (one block holding every weight) loses less than magnitude pruning."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.eye(20, dtype=torch.float64) + 0.3 * torch.randn(20, 20, generator=g, dtype=torch.float64)
    scale = 0.1 + 3 * torch.rand(20, generator=g, dtype=torch.float64)
    x = torch.randn(2000, 20, generator=g, dtype=torch.float64) @ mix * scale
    y = x @ torch.randn(20, generator=g, dtype=torch.float64) + 0.1 * torch.randn(2000, generator=g, dtype=torch.float64)
    w_star = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)

    def loss(w):
        return float(((x @ w - y) ** 2).mean() / 2)

    def per_sample_gradients():
        residual = x @ w_star - y
        return ([residual[i] * x[i]] for i in range(len(x)))

    magnitude = COMPRESSORS.get("global_magnitude").at(level)([w_star])[0][0]
    obs = w_star.clone()
    OBERT(block_size=20, samples=2000, recomputations=1).apply([obs], level, per_sample_gradients)
    assert int((obs == 0).sum()) == int((magnitude == 0).sum()) == int(level * 20)
    assert loss(obs) < 0.5 * loss(magnitude)


# --- a tiny BERT ---------------------------------------------------------------------------------

LAYERS = 2


@pytest.fixture(scope="module")
def tiny_bert():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    return transformers.BertForQuestionAnswering(config).eval()


def test_bert_encoder_is_exactly_the_encoders_linear_weights(tiny_bert):
    prunable = prunable_parameters(tiny_bert, "bert_encoder")
    names = [n for n, _ in prunable]
    assert len(names) == LAYERS * 6
    expected = [f"bert.encoder.layer.{i}.{part}.weight" for i in range(LAYERS)
                for part in ("attention.self.query", "attention.self.key", "attention.self.value",
                             "attention.output.dense", "intermediate.dense", "output.dense")]
    assert names == expected
    params = dict(tiny_bert.named_parameters())
    assert all(params[n] is p and p.dim() == 2 for n, p in prunable)
    assert sum(p.numel() for _, p in prunable) == LAYERS * (4 * 32 * 32 + 2 * 32 * 64)
    with pytest.raises(ValueError, match="bert_encoder"):
        prunable_parameters(nn.Sequential(nn.Linear(2, 2)), "bert_encoder")


def test_obert_prunes_a_tiny_bert_with_its_loss_gradients(tiny_bert):
    """The one-shot interface end to end: gradients of the span loss on token batches, global
    sparsity over the encoder, nothing outside it touched."""
    import copy
    model = copy.deepcopy(tiny_bert)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (16, 24), generator=g)
    starts, ends = torch.randint(0, 12, (16,), generator=g), torch.randint(12, 24, (16,), generator=g)
    prunable = prunable_parameters(model, "bert_encoder")

    def gradients():
        for i in range(0, 16, 2):  # mini-batches of 2
            model.zero_grad()
            with torch.enable_grad():
                out = model(input_ids=ids[i:i + 2], start_positions=starts[i:i + 2], end_positions=ends[i:i + 2])
                out.loss.backward()
            yield [p.grad.clone() for _, p in prunable]

    before = {n: p.clone() for n, p in model.named_parameters()}
    COMPRESSORS.get("obert")(model, 0.6, prunable, gradients)
    total = sum(p.numel() for _, p in prunable)
    assert sum(int((p == 0).sum()) for _, p in prunable) == int(0.6 * total)
    pruned_names = {n for n, _ in prunable}
    for n, p in model.named_parameters():
        if n not in pruned_names:
            assert torch.equal(p, before[n])
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids[:2]).start_logits).all()
