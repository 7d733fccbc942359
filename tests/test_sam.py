"""SAM: equals its base optimizer at ρ = 0, matches a hand-computed step, leaves BatchNorm
running statistics to the clean pass, shares lr with the base optimizer, round-trips state."""
import copy

import torch
from torch import nn
from torch.func import functional_call

from compressible.training.loop import make_closure as trainer_closure
from compressible.optim.sam import SAM

X = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))


def mlp(bn: bool = False) -> nn.Module:
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(6)] if bn else []
    return nn.Sequential(nn.Linear(4, 6), *norm, nn.Tanh(), nn.Linear(6, 3))


def make_closure(model: nn.Module, opt: torch.optim.Optimizer):
    """The trainer's own closure (grads zeroed in place, BN frozen on request)."""
    return trainer_closure(model, X, Y, opt)


def grads_at(model: nn.Module, weights: dict) -> dict:
    """∇L at arbitrary weights (no BatchNorm in this model)."""
    weights = {k: v.detach().requires_grad_() for k, v in weights.items()}
    loss = nn.functional.cross_entropy(functional_call(model, weights, (X,)), Y)
    return dict(zip(weights, torch.autograd.grad(loss, list(weights.values()))))


def test_rho_zero_equals_base_optimizer():
    kwargs = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
    a, b = mlp(), mlp()
    sam = SAM(a.parameters(), torch.optim.SGD, rho=0.0, **kwargs)
    sgd = torch.optim.SGD(b.parameters(), **kwargs)
    for _ in range(5):
        sam.step(make_closure(a, sam))
        sgd.step(make_closure(b, sgd))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)


def test_step_matches_hand_computation():
    model, rho, lr = mlp(), 0.3, 0.5
    w = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = grads_at(model, w)
    norm = torch.sqrt(sum((t ** 2).sum() for t in g.values()))
    g_tilde = grads_at(model, {k: w[k] + rho * g[k] / norm for k in w})
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=lr)
    opt.step(make_closure(model, opt))
    for k, p in model.named_parameters():
        torch.testing.assert_close(p, w[k] - lr * g_tilde[k])


def test_adaptive_step_matches_hand_computation():
    model, rho, lr = mlp(), 0.3, 0.5
    w = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = grads_at(model, w)
    norm = torch.sqrt(sum(((w[k].abs() * g[k]) ** 2).sum() for k in w))
    g_tilde = grads_at(model, {k: w[k] + rho * w[k] ** 2 * g[k] / norm for k in w})
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, adaptive=True, lr=lr)
    opt.step(make_closure(model, opt))
    for k, p in model.named_parameters():
        torch.testing.assert_close(p, w[k] - lr * g_tilde[k])


def test_bn_running_stats_only_from_the_clean_pass():
    model = mlp(bn=True)
    reference = copy.deepcopy(model)
    reference(X)  # one train-mode forward at w
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    opt.step(make_closure(model, opt))
    bn, ref = model[1], reference[1]
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, ref.running_var, rtol=0, atol=0)
    assert int(bn.num_batches_tracked) == 1


def test_scheduler_drives_the_base_optimizer_lr():
    model = mlp()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.5 ** epoch)
    opt.step(make_closure(model, opt))
    scheduler.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == 0.5
    assert opt.param_groups is opt.base_optimizer.param_groups


def test_state_dict_round_trip_continues_identically():
    kwargs = dict(rho=0.2, lr=0.1, momentum=0.9, weight_decay=5e-4)
    model = mlp(bn=True)
    opt = SAM(model.parameters(), torch.optim.SGD, **kwargs)
    for _ in range(3):
        opt.step(make_closure(model, opt))
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert all("momentum_buffer" in s for s in saved_opt["state"].values())
    assert not any("origin" in s for s in saved_opt["state"].values())
    for _ in range(3):
        opt.step(make_closure(model, opt))
    resumed = mlp(bn=True)
    resumed.load_state_dict(saved_model)
    opt2 = SAM(resumed.parameters(), torch.optim.SGD, **kwargs)
    opt2.load_state_dict(saved_opt)
    assert opt2.base_optimizer.state is opt2.state
    for _ in range(3):
        opt2.step(make_closure(resumed, opt2))
    for p, q in zip(model.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
