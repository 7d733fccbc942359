"""CrAM over Adam (CrAM App. D) against a hand computation; p(Adam) (Table 19): plain base steps
with probability p_base, drawn from the run's generator and resumable; the base's keys."""
import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

import compressible.optim  # noqa: F401  (registers the METHODS)
from compressible.optim.errors import ParamError
from compressible.registry import METHODS

LR, BETAS, EPS, RHO, SPARSITY = 1e-2, (0.9, 0.999), 1e-8, 0.05, 0.5


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)


def prunable_of(model):
    return [("0.weight", model[0].weight), ("2.weight", model[2].weight)]


def closure_for(model, opt, x, y, calls=None):
    def closure(track_bn_stats=True):
        if calls is not None:
            calls.append(track_bn_stats)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()
    return closure


# --- the independent computation ------------------------------------------------------------

def gradient(model, weights: dict, x, y) -> dict:
    """∇L at ``weights`` (a name -> tensor mapping), by autograd on a functional call."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in weights.items()}
    loss = nn.functional.cross_entropy(functional_call(model, leaves, (x,)), y)
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))


def global_topk(weights: dict, names: list, sparsity: float) -> dict:
    """Keep the n − ⌊s·n⌋ largest |w| over the named tensors together (sorted, not masks.py)."""
    flat = torch.cat([weights[n].reshape(-1) for n in names])
    pruned = int(sparsity * flat.numel())
    order = torch.sort(flat.abs(), stable=True).indices  # ascending; ties: first position first
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[order[:pruned]] = False
    out, start = dict(weights), 0
    for n in names:
        k = weights[n].numel()
        out[n] = torch.where(keep[start:start + k].view_as(weights[n]), weights[n], torch.zeros_like(weights[n]))
        start += k
    return out


def adam_by_hand(w: dict, grads: list[dict]) -> dict:
    """Adam's update from its formulas (Kingma & Ba, Alg. 1), one step per gradient in ``grads``."""
    m = {k: torch.zeros_like(v) for k, v in w.items()}
    v2 = {k: torch.zeros_like(v) for k, v in w.items()}
    w = dict(w)
    for t, g in enumerate(grads, start=1):
        for k in w:
            m[k] = BETAS[0] * m[k] + (1 - BETAS[0]) * g[k]
            v2[k] = BETAS[1] * v2[k] + (1 - BETAS[1]) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - BETAS[0] ** t), v2[k] / (1 - BETAS[1] ** t)
            w[k] = w[k] - LR * m_hat / (v_hat.sqrt() + EPS)
    return w


def cram_plus_gradient(model, w: dict, x, y) -> dict:
    """CrAM+ (Eq. 4): ∇L(C(w + ρg)) + g; every tensor climbs, the prunable ones are compressed."""
    g = gradient(model, w, x, y)
    climbed = {k: w[k] + RHO * g[k] for k in w}
    compressed = global_topk(climbed, ["0.weight", "2.weight"], SPARSITY)
    g_tilde = gradient(model, compressed, x, y)
    return {k: g_tilde[k] + g[k] for k in w}


def test_cram_plus_over_adam_equals_the_hand_computation():
    model, (x, y) = mlp(), batch()
    w0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = METHODS.get("cram_plus")(model, prunable_of(model), seed=0, base="adam", lr=LR, rho=RHO,
                                   sparsity=SPARSITY)
    assert isinstance(opt.base_optimizer, torch.optim.AdamW)
    # hand: two steps, each from the weights the previous hand step produced
    g1 = cram_plus_gradient(model, w0, x, y)
    w1 = adam_by_hand(w0, [g1])
    g2 = cram_plus_gradient(model, w1, x, y)
    w2 = adam_by_hand(w0, [g1, g2])
    for expected in (w1, w2):
        opt.step(closure_for(model, opt, x, y))
        for k, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), expected[k], rtol=1e-12, atol=1e-12)
    assert not torch.equal(w1["0.weight"], w0["0.weight"])


def test_sam_over_adam_equals_the_hand_computation():
    model, (x, y) = mlp(), batch()
    w0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = METHODS.get("sam")(model, prunable_of(model), seed=0, base="adam", lr=LR, rho=RHO)
    g = gradient(model, w0, x, y)
    norm = torch.linalg.vector_norm(torch.cat([v.reshape(-1) for v in g.values()]))
    g_sam = gradient(model, {k: w0[k] + RHO * g[k] / (norm + 1e-12) for k in w0}, x, y)
    opt.step(closure_for(model, opt, x, y))
    expected = adam_by_hand(w0, [g_sam])
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[k], rtol=1e-12, atol=1e-12)


def test_adam_method_is_plain_adam():
    model, (x, y) = mlp(), batch()
    w0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = METHODS.get("adam")(model, [], seed=0, lr=LR)
    grads = []
    for _ in range(3):
        grads.append(gradient(model, {k: v.detach() for k, v in model.named_parameters()}, x, y))
        opt.step(closure_for(model, opt, x, y))
    expected = adam_by_hand(w0, grads)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[k], rtol=1e-12, atol=1e-12)


# --- p(Adam) ---------------------------------------------------------------------------------

def run(p_base, steps, seed=0, opt_seed=7, **extra):
    model, (x, y) = mlp(seed), batch()
    opt = METHODS.get("cram_plus")(model, prunable_of(model), seed=opt_seed, base="adam", lr=LR,
                                   p_base=p_base, sparsity=SPARSITY, **extra)
    passes = []
    for _ in range(steps):
        calls = []
        opt.step(closure_for(model, opt, x, y, calls))
        passes.append(len(calls))
    return model, opt, passes


def test_p_base_one_is_plain_adam_at_every_step():
    model, _, passes = run(1.0, 5)
    reference, (x, y) = mlp(), batch()
    adam = METHODS.get("adam")(reference, [], seed=0, lr=LR)
    for _ in range(5):
        adam.step(closure_for(reference, adam, x, y))
    assert passes == [1] * 5
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.equal(p, q)


def test_p_base_zero_is_cram_at_every_step_and_draws_nothing():
    model, opt, passes = run(0.0, 4)
    plain_cram = METHODS.get("cram_plus")(mlp(), [], seed=7, base="adam", lr=LR)
    assert passes == [2] * 4
    assert torch.equal(opt.generator.get_state(), plain_cram.generator.get_state())  # never drawn
    assert "base_drawn" not in opt.state_dict()["cram"]


def test_p_base_sequence_is_seeded_and_has_the_asked_frequency():
    _, _, first = run(0.5, 24)
    _, _, again = run(0.5, 24)
    _, _, other = run(0.5, 24, opt_seed=8)
    assert first == again and first != other and set(first) == {1, 2}
    opt = METHODS.get("cram_plus")(mlp(), [], seed=3, base="adam", p_base=0.3)
    plain = sum(opt._plain_base_step() for _ in range(2000))
    assert abs(plain - 600) < 5 * (2000 * 0.3 * 0.7) ** 0.5  # binomial: within 5 standard deviations


@pytest.mark.parametrize("name", ["cram_plus", "cram_plus_multi"])
def test_p_base_survives_a_state_dict_round_trip(name):
    """Resume mid-way (draws ahead pending, Adam's moments, Multi's choices): the rest is identical."""
    model, (x, y) = mlp(), batch()
    kwargs = dict(base="adam", lr=LR, p_base=0.4, mask_every=2)
    opt = METHODS.get(name)(model, prunable_of(model), seed=11, **kwargs)
    for _ in range(5):
        opt.step(closure_for(model, opt, x, y))
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    passes = []
    for _ in range(9):
        calls = []
        opt.step(closure_for(model, opt, x, y, calls))
        passes.append(len(calls))
    resumed = mlp(seed=5)
    resumed.load_state_dict(saved_model)
    opt2 = METHODS.get(name)(resumed, prunable_of(resumed), seed=0, **kwargs)  # the seed comes from the state
    opt2.load_state_dict(saved_opt)
    passes2 = []
    for _ in range(9):
        calls = []
        opt2.step(closure_for(resumed, opt2, x, y, calls))
        passes2.append(len(calls))
    assert passes == passes2 and set(passes) == {1, 2}
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


# --- the base's parameters --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sam", "cram", "cram_plus_multi", "topk_plus"])
def test_adam_base_refuses_sgd_keys_and_sgd_base_refuses_adam_keys(name):
    model = mlp()
    with pytest.raises(ParamError, match="momentum") as err:
        METHODS.get(name)(model, prunable_of(model), seed=0, base="adam", momentum=0.9)
    assert err.value.param == "momentum"
    with pytest.raises(ParamError, match="betas") as err:
        METHODS.get(name)(model, prunable_of(model), seed=0, betas=[0.9, 0.99])
    assert err.value.param == "betas"
    with pytest.raises(ParamError) as err:
        METHODS.get(name)(model, prunable_of(model), seed=0, base="adagrad")
    assert err.value.param == "base"
    opt = METHODS.get(name)(model, prunable_of(model), seed=0, base="adam", betas=[0.8, 0.99], eps=1e-6,
                            weight_decay=0.01, lr=3e-5)
    group = opt.param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"], group["lr"]) == ((0.8, 0.99), 1e-6, 0.01, 3e-5)


def test_every_sam_and_cram_method_takes_base_and_the_cram_presets_p_base():
    names = [n for n in METHODS.names() if n == "sam" or "p_base" in METHODS.fact(n, "params")]
    assert {"sam", "cram", "cram_plus", "cram_plus_multi", "c_sam", "topk", "topk_plus"} <= set(names)
    for name in names:
        params = METHODS.fact(name, "params")
        assert params["base"] == "sgd" and {"betas", "eps", "momentum"} <= set(params)
        assert params.get("p_base", 0.0) == 0.0
    with pytest.raises(ParamError, match="p_base"):
        METHODS.get("cram")(mlp(), [], seed=0, p_base=1.5)
