"""SFW-Init: learned per-tensor scales that minimize the loss after one SFW step."""
import copy
import io

import pytest
import torch
from torch import nn

from compressible.optim.methods_sfw import build_sfw
from compressible.optim.sfw import SFW
from compressible.optim.sfw_init import _trial_step
from compressible.registry import CONSTRAINTS


def linear_loss_setup(name, rescale):
    """L(w) = <c, w>: the gradient c does not depend on w, so the first-order dJ/ds is exact."""
    g = torch.Generator().manual_seed(0)
    c, w0 = torch.randn(12, generator=g, dtype=torch.float64), torch.randn(12, generator=g, dtype=torch.float64)
    cls = CONSTRAINTS.get(name)
    constraint = cls((12,), radius=3.0, **({"k": 4} if cls.uses_k else {}))
    return c, w0, constraint


def post_step_loss(c, w0, constraint, s, lr, rescale):
    """J(s) = <c, (1 - eta) s w0 + eta v>, computed from the definition."""
    w = s * w0
    v = constraint.lmo(c)
    factor = float(c.norm() / (w - v).norm()) if rescale == "gradient" else 1 / constraint.diameter
    eta = min(max(lr * factor, 0.0), 1.0)
    return float((c * ((1 - eta) * w + eta * v)).sum())


@pytest.mark.parametrize("name", ["l2", "k_sparse", "k_support"])
@pytest.mark.parametrize("rescale", ["gradient", "diameter"])
def test_scale_gradient_matches_finite_differences_when_the_gradient_is_constant(name, rescale):
    c, w0, constraint = linear_loss_setup(name, rescale)
    s, lr, h = 0.7, 0.05, 1e-6
    w = nn.Parameter(s * w0.clone())
    opt = SFW([{"params": [w], "constraint": constraint}], lr=lr, rescale=rescale, init_iterations=1)
    opt.state[w]["init_origin"] = w0.clone()
    w.grad = c.clone()
    with torch.no_grad():  # as inside SFW.step
        _, dw_ds = _trial_step(opt, opt.param_groups[0])
    numeric = (post_step_loss(c, w0, constraint, s + h, lr, rescale)
               - post_step_loss(c, w0, constraint, s - h, lr, rescale)) / (2 * h)
    assert float((c * dw_ds).sum()) == pytest.approx(numeric, rel=1e-5)
    assert float((c * w.detach()).sum()) == pytest.approx(post_step_loss(c, w0, constraint, s, lr, rescale))


def toy_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 6, generator=g)
    y = torch.tanh(x @ torch.randn(6, 3, generator=g))
    torch.manual_seed(seed)
    return x, y, nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def closure_of(model, opt, x, y, flags=None):
    def closure(track_bn_stats=True):
        if flags is not None:
            flags.append(track_bn_stats)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss.detach()

    return closure


def one_step_loss(model, x, y, lr):
    """Loss after one plain SFW step (momentum 0) from the model's current weights."""
    model = copy.deepcopy(model)
    opt = build_sfw(model, [], seed=0, constraint="k_sparse", k="20%", lr=lr, momentum=0.0, init_samples=2)
    opt.step(closure_of(model, opt, x, y))
    return float(nn.functional.mse_loss(model(x), y).detach())


def test_sfw_init_lowers_the_loss_after_one_sfw_step():
    x, y, model = toy_problem()
    before = one_step_loss(model, x, y, lr=0.5)
    opt = build_sfw(model, [], seed=0, constraint="k_sparse", k="20%", lr=0.5, init="sfw_init",
                    init_iterations=40, init_lr=0.02, init_samples=2)
    flags = []
    for _ in range(40):
        opt.step(closure_of(model, opt, x, y, flags))
    assert one_step_loss(model, x, y, lr=0.5) < before
    assert flags == [False] * 80  # two passes per iteration, BatchNorm running stats untouched


def test_init_phase_ends_in_a_feasible_point_then_sfw_trains():
    x, y, model = toy_problem()
    opt = build_sfw(model, [], seed=0, constraint="k_sparse", k="20%", lr=0.5, init="sfw_init",
                    init_iterations=3, init_lr=0.1, init_min_scale=0.5, init_samples=2)
    origins = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        opt.step(closure_of(model, opt, x, y))
    for group, origin in zip(opt.param_groups, origins):
        w, state = group["params"][0].detach(), opt.state[group["params"][0]]
        assert group["init_iterations"] == 0 and not any(key.startswith("init_") for key in state)
        ratio = w[origin != 0] / origin[origin != 0]  # w = s * w0 (then shifted inside)
        assert torch.allclose(ratio, ratio[0].expand_as(ratio)) and float(ratio[0]) > 0
        assert float(group["constraint"].norm(w)) <= group["constraint"].radius * (1 + 1e-6)
    opt.step(closure_of(model, opt, x, y))
    assert all("momentum_buffer" in opt.state[g["params"][0]] for g in opt.param_groups)


def test_scales_respect_the_minimum():
    x, y, model = toy_problem()
    opt = build_sfw(model, [], seed=0, constraint="l2", lr=0.5, init="sfw_init", init_iterations=5,
                    init_lr=10.0, init_min_scale=0.3, init_samples=2)
    for _ in range(4):
        opt.step(closure_of(model, opt, x, y))
    assert all(float(opt.state[g["params"][0]]["init_scale"]) >= 0.3 for g in opt.param_groups)


def test_state_dict_round_trips_during_init():
    x, y, model = toy_problem()
    kwargs = dict(seed=0, constraint="k_sparse", k="20%", lr=0.5, init="sfw_init", init_iterations=4,
                  init_lr=0.05, init_samples=2)
    opt = build_sfw(model, [], **kwargs)
    twin = copy.deepcopy(model)
    for _ in range(2):
        opt.step(closure_of(model, opt, x, y))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    expected = [float(opt.step(closure_of(model, opt, x, y))) for _ in range(4)]
    resumed = build_sfw(twin, [], **kwargs)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    twin.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["opt"])
    assert [float(resumed.step(closure_of(twin, resumed, x, y))) for _ in range(4)] == expected


def test_init_needs_a_closure():
    x, y, model = toy_problem()
    opt = build_sfw(model, [], seed=0, init="sfw_init", init_iterations=2, init_samples=1)
    with pytest.raises(ValueError):
        opt.step()
