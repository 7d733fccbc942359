"""CrAM family: every update equals a step computed by hand on a tiny model; Multi sampling,
infrequent masks, BatchNorm statistics, state_dict round-trip, loss decrease per METHODS entry."""
import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from compressible.training.loop import make_closure as trainer_closure
from compressible.optim import methods_cram
from compressible.registry import COMPRESSORS
from compressible.optim.cram import CrAM
from compressible.registry import METHODS

X = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
WEIGHTS = ("0.weight", "2.weight")  # the prunable tensors of mlp()
RHO, LR, SPARSITY = 0.3, 0.5, 0.5
CRAM_METHODS = [n for n in METHODS.names() if METHODS.get(n).__module__ == methods_cram.__name__]


def topk(sparsity: float):
    """CrAM's C: global magnitude Top-K at one sparsity."""
    return COMPRESSORS.get("global_magnitude").at(sparsity)


def mlp(bn: bool = False) -> nn.Module:
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(6)] if bn else []
    return nn.Sequential(nn.Linear(4, 6), *norm, nn.Tanh(), nn.Linear(6, 3))


def groups(model: nn.Module) -> list[dict]:
    params = dict(model.named_parameters())
    return [{"params": [params[k] for k in WEIGHTS], "compress": True},
            {"params": [p for k, p in params.items() if k not in WEIGHTS], "compress": False}]


def make_closure(model: nn.Module, opt: torch.optim.Optimizer, x=X, y=Y):
    """The trainer's own closure (grads zeroed in place, BN frozen on request)."""
    return trainer_closure(model, x, y, opt)


# --- the hand computation: autograd at given points, Top-K by a full sort --------------------

def grads_at(model: nn.Module, weights: dict) -> dict:
    weights = {k: v.detach().requires_grad_() for k, v in weights.items()}
    loss = nn.functional.cross_entropy(functional_call(model, weights, (X,)), Y)
    return dict(zip(weights, torch.autograd.grad(loss, list(weights.values()))))


def topk_masks(point: dict, sparsity: float = SPARSITY) -> dict:
    """Global magnitude masks of the prunable tensors, by sorting all magnitudes."""
    flat = torch.cat([point[k].abs().flatten() for k in WEIGHTS])
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[flat.argsort()[: int(sparsity * flat.numel())]] = False
    return dict(zip(WEIGHTS, keep.split([point[k].numel() for k in WEIGHTS])))


def compress(point: dict, masks: dict) -> dict:
    return {k: v * masks[k].view_as(v) if k in masks else v for k, v in point.items()}


def sparsify(grads: dict, masks: dict) -> dict:
    return compress(grads, masks)


def run_one_step(opt_kwargs: dict) -> tuple[nn.Module, dict]:
    model = mlp()
    w = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = CrAM(groups(model), torch.optim.SGD, [topk(SPARSITY)], lr=LR, **opt_kwargs)
    opt.step(make_closure(model, opt))
    return model, w


def assert_update(model: nn.Module, w: dict, direction: dict) -> None:
    for k, p in model.named_parameters():
        torch.testing.assert_close(p, w[k] - LR * direction[k])


def cram_point(model: nn.Module, w: dict) -> tuple[dict, dict, dict]:
    """g = ∇L(w), M = mask of w + ρg, G = ∇L(C(w + ρg)) (Eq. 2, not normalized)."""
    g = grads_at(model, w)
    extrapolated = {k: w[k] + RHO * g[k] for k in w}
    masks = topk_masks(extrapolated)
    return g, masks, grads_at(model, compress(extrapolated, masks))


# --- hand-computed updates -------------------------------------------------------------------

def test_cram_step_eq2():
    model, w = run_one_step(dict(rho=RHO))
    _, _, G = cram_point(mlp(), w)
    assert_update(model, w, G)


def test_cram_plus_step_eq4():
    model, w = run_one_step(dict(rho=RHO, plus=True))
    g, _, G = cram_point(mlp(), w)
    assert_update(model, w, {k: G[k] + g[k] for k in w})


def test_cram_sparse_gradient_step():
    model, w = run_one_step(dict(rho=RHO, sparse_grad=True))
    _, masks, G = cram_point(mlp(), w)
    assert_update(model, w, sparsify(G, masks))


def test_cram_plus_sparse_gradient_step():
    model, w = run_one_step(dict(rho=RHO, plus=True, sparse_grad=True))
    g, masks, G = cram_point(mlp(), w)
    G = sparsify(G, masks)
    assert_update(model, w, {k: G[k] + g[k] for k in w})


def test_normalized_cram_step():
    model, w = run_one_step(dict(rho=RHO, normalize=True))
    g = grads_at(mlp(), w)
    norm = torch.sqrt(sum((t ** 2).sum() for t in g.values()))
    extrapolated = {k: w[k] + RHO * g[k] / norm for k in w}
    assert_update(model, w, grads_at(mlp(), compress(extrapolated, topk_masks(extrapolated))))


def test_c_sam_step_eq11():
    model, w = run_one_step(dict(rho=RHO, normalize=True, sparse_grad=True, perturb_from="compressed"))
    ref = mlp()
    m0 = topk_masks(w)
    g0 = sparsify(grads_at(ref, compress(w, m0)), m0)  # M ⊙ ∇L(C(w))
    norm = torch.sqrt(sum((t ** 2).sum() for t in g0.values()))
    extrapolated = {k: w[k] + RHO * g0[k] / norm for k in w}
    m1 = topk_masks(extrapolated)
    assert_update(model, w, sparsify(grads_at(ref, compress(extrapolated, m1)), m1))


def test_topk_step_eq12():
    model, w = run_one_step(dict(rho=0.0, perturb_from="compressed", extra_gradient=False))
    assert_update(model, w, grads_at(mlp(), compress(w, topk_masks(w))))


def test_topk_plus_step_eq13():
    model, w = run_one_step(dict(rho=0.0, plus=True, sparse_grad=True))
    ref, masks = mlp(), topk_masks(w)
    g, G = grads_at(ref, w), sparsify(grads_at(ref, compress(w, masks)), masks)
    assert_update(model, w, {k: g[k] + G[k] for k in w})


def test_cram_plus_with_momentum_and_weight_decay_over_two_steps():
    """Base optimizer composition: SGD momentum/decay act on the CrAM+ direction at dense w."""
    model = mlp()
    opt = CrAM(groups(model), torch.optim.SGD, [topk(SPARSITY)], rho=RHO, plus=True,
               lr=LR, momentum=0.9, weight_decay=0.01)
    w = {k: v.detach().clone() for k, v in model.named_parameters()}
    buf = {k: torch.zeros_like(v) for k, v in w.items()}  # torch SGD: buf₁ = d₁, then μ·buf + d
    for _ in range(2):
        opt.step(make_closure(model, opt))
        g, _, G = cram_point(mlp(), w)
        for k in w:
            buf[k] = 0.9 * buf[k] + (G[k] + g[k] + 0.01 * w[k])
            w[k] = w[k] - LR * buf[k]
    for k, p in model.named_parameters():
        torch.testing.assert_close(p, w[k])


# --- Multi, infrequent masks, BatchNorm ------------------------------------------------------

def sampled_names(seed: int, compressors: list, steps: int = 40) -> list[str]:
    model = mlp()
    opt = CrAM(groups(model), torch.optim.SGD, compressors, lr=0.01, seed=seed)
    names = []
    for _ in range(steps):
        opt.step(make_closure(model, opt))
        names.append(opt._compressor.name)
    return names


def test_multi_sampling_reproducible_from_seed():
    levels = [topk(s) for s in (0.3, 0.5, 0.7, 0.9)]
    first, again, other = sampled_names(3, levels), sampled_names(3, levels), sampled_names(4, levels)
    assert first == again and first != other
    assert set(first) == {c.name for c in levels}


def test_nm_multi_samples_both_patterns():
    names = sampled_names(0, [COMPRESSORS.get("nm").at("2:4"), COMPRESSORS.get("nm").at("4:8")], steps=60)
    assert 15 <= names.count("nm:2:4") <= 45 and set(names) == {"nm:2:4", "nm:4:8"}


class CountingTopK:
    """Global Top-K at 50 % that counts how often it computes a mask."""
    calls = 0
    name = "counting"

    def __call__(self, tensors):
        CountingTopK.calls += 1
        return topk(0.5)(tensors)


@pytest.mark.parametrize("every", [1, 3])
def test_mask_reused_for_mask_every_steps(every):
    CountingTopK.calls = 0
    model = mlp()
    opt = CrAM(groups(model), torch.optim.SGD, [CountingTopK()], rho=RHO, lr=0.5,
               sparse_grad=True, mask_every=every)
    masks = []
    for _ in range(7):
        opt.step(make_closure(model, opt))
        masks.append(opt.state[model[0].weight][opt._mask_key()].clone())
    assert CountingTopK.calls == len(range(0, 7, every))
    for step in range(7):  # reused within a window of `every` steps
        assert torch.equal(masks[step], masks[step - step % every])
    assert any(not torch.equal(masks[0], m) for m in masks)  # a refresh does change the mask


def test_mask_every_keeps_one_counter_per_level():
    model = mlp()
    levels = [topk(0.3), topk(0.8)]
    opt = CrAM(groups(model), torch.optim.SGD, levels, lr=0.1, mask_every=5, seed=1)
    for _ in range(12):
        opt.step(make_closure(model, opt))
    assert sum(opt.mask_steps.values()) == 12 and len(opt.mask_steps) == 2
    for c in levels:  # both levels keep their own cached mask
        assert f"mask@{c.name}" in opt.state[model[0].weight]


@pytest.mark.parametrize("name", ["cram_plus", "c_sam", "topk", "topk_plus"])
def test_bn_running_stats_come_from_the_first_pass_only(name):
    model = mlp(bn=True)
    prunable = [(k, p) for k, p in model.named_parameters() if k in ("0.weight", "3.weight")]
    opt = METHODS.get(name)(model, prunable, seed=0, sparsity=0.5)
    reference = copy.deepcopy(model)
    if name in ("c_sam", "topk"):  # first pass at C(w)
        masks = topk(0.5)([p for _, p in prunable])[1]
        with torch.no_grad():
            for (k, _), m in zip(prunable, masks):
                reference.get_parameter(k).mul_(m)
    reference(X)
    opt.step(make_closure(model, opt))
    torch.testing.assert_close(model[1].running_mean, reference[1].running_mean, rtol=0, atol=0)
    torch.testing.assert_close(model[1].running_var, reference[1].running_var, rtol=0, atol=0)
    assert int(model[1].num_batches_tracked) == 1


def test_invalid_options():
    params = groups(mlp())
    with pytest.raises(ValueError):
        CrAM(params, torch.optim.SGD, [topk(0.5)], plus=True, perturb_from="compressed", lr=0.1)
    with pytest.raises(ValueError):
        CrAM(params, torch.optim.SGD, [topk(0.5)], extra_gradient=False, lr=0.1)
    with pytest.raises(ValueError):
        CrAM(params, torch.optim.SGD, [topk(0.5)], mask_every=0, lr=0.1)
    with pytest.raises(ValueError):
        METHODS.get("cram")(mlp(), [], seed=0, topk_scope="layerwise")


# --- every registered METHODS entry ----------------------------------------------------------

def toy_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=gen)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.5).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    prunable = [("0.weight", model[0].weight), ("3.weight", model[3].weight)]
    return model, prunable, x, y


def dense_loss(model, x, y) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model.eval()(x), y))


def test_registered_names():
    assert set(CRAM_METHODS) == {"sam", "cram", "cram_plus", "cram_plus_multi", "cram_plus_nm",
                                 "cram_plus_quant", "c_sam", "topk", "topk_plus"}


@pytest.mark.parametrize("name", CRAM_METHODS)
def test_loss_decreases(name):
    model, prunable, x, y = toy_problem()
    before = dense_loss(model, x, y)
    opt = METHODS.get(name)(model, prunable, seed=0, lr=0.05)
    for _ in range(60):
        model.train()
        opt.step(make_closure(model, opt, x, y))
    assert dense_loss(model, x, y) < 0.7 * before


@pytest.mark.parametrize("name", CRAM_METHODS)
def test_state_dict_round_trip_continues_identically(name):
    kwargs = {"mask_every": 2} if "mask_every" in METHODS.fact(name, "params") else {}
    model, prunable, x, y = toy_problem()
    opt = METHODS.get(name)(model, prunable, seed=5, **kwargs)
    for _ in range(3):
        opt.step(make_closure(model, opt, x, y))
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    for _ in range(4):
        opt.step(make_closure(model, opt, x, y))
    resumed, prunable2, _, _ = toy_problem()
    resumed.load_state_dict(saved_model)
    opt2 = METHODS.get(name)(resumed, prunable2, seed=0, **kwargs)  # seed comes from the state
    opt2.load_state_dict(saved_opt)
    for _ in range(4):
        opt2.step(make_closure(resumed, opt2, x, y))
    for p, q in zip(model.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
