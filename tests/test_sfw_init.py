"""SFW-Init: learned per-tensor scales that lower the loss after one SFW step, on batches of
their own, second order through the step, clipped, and leaving the training run's data order,
global RNG and BatchNorm statistics alone."""
import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compressible.config import Method
from compressible.data import save_prepared, train_batches
from compressible.optim.methods_sfw import build_sfw
from compressible.optim.sfw_init import SFWInit, _scale_gradient, learn_initialization, sfw_init
from compressible.training.interrupt import StopRequest
from compressible.runtime import make_deterministic
from compressible.training.loop import build_trainer, end_epoch, init_batches, run_epoch, starting_position, train_run

from conftest import synthetic_splits
from test_train import spec

SFW_INIT = Method("SFW", "sfw", {"lr": 1.0, "constraint": "k_sparse", "k": "20%", "init": "sfw_init",
                                 "init_iterations": 3, "init_samples": 2}, None)


def small_net(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Tanh(), nn.Flatten(),
                         nn.Linear(4 * 10 * 10, 4)).to(dtype)


def sfw_for(model, lr=0.5, **init):
    return build_sfw(model, [], seed=0, constraint="k_sparse", k="20%", lr=lr, init="sfw_init",
                     init_samples=2, **init)


def fixed_batches(seed, count, dtype=torch.float32, images_seed=0):
    """Augmented training batches of synthetic splits (images drawn from ``images_seed``)."""
    splits = synthetic_splits(n_train=128, seed=images_seed)
    gen = torch.Generator().manual_seed(seed)
    pool = itertools.chain.from_iterable(train_batches(splits, 16, gen, True) for _ in range(count))
    return [(x.to(dtype), y) for x, y in itertools.islice(pool, count)]


def post_step_loss(model, groups, scales, three):
    """J(s) from its definition: one SFW step from s * w0 on B0 u B1, loss on B0 u B2, / lr."""
    net = copy.deepcopy(model)
    params = list(net.parameters())
    (x0, y0), (x1, y1), (x2, y2) = three
    with torch.no_grad():
        for p, group, s in zip(params, groups, scales):
            p.copy_(s * group["params"][0])
    net.eval()
    net[1].train()
    net[1].track_running_stats = False
    grads = torch.autograd.grad(F.cross_entropy(net(torch.cat([x0, x1])), torch.cat([y0, y1])), params)
    with torch.no_grad():
        for p, group, g in zip(params, groups, grads):
            v = group["constraint"].lmo(g)
            eta = min(max(group["lr"] * float(g.norm() / (p - v).norm()), 0.0), 1.0)
            p.mul_(1 - eta).add_(eta * v)
        return float(F.cross_entropy(net(torch.cat([x0, x2])), torch.cat([y0, y2]))) / groups[0]["lr"]


# Rounding in one float64 evaluation of J: thousands of operations through the net, each within
# eps relative; 1e3 * eps * |J| bounds what kernels of any instruction set accumulate (about
# 20 eps * |J| was seen with AVX-512).
ROUNDING = 1e3 * torch.finfo(torch.float64).eps


def central_difference(f, x, i, h):
    """f'(x) along coordinate i by a central difference, and a bound on its error: truncation
    (c h^2, estimated by Richardson from the difference at h/2, D(h) - D(h/2) = 3/4 c h^2) plus
    rounding (an error delta in each value of f moves D(h) by at most delta / h)."""
    def diff(step):
        up, down = x.clone(), x.clone()
        up[i] += step
        down[i] -= step
        return (f(up) - f(down)) / (2 * step)

    coarse, fine = diff(h), diff(h / 2)
    delta = ROUNDING * abs(f(x))
    return coarse, 4 / 3 * abs(coarse - fine) + 3 * delta / h  # fine's rounding is in |coarse - fine|


def test_scale_gradient_is_the_derivative_of_the_post_step_loss_hessian_term_included():
    model = small_net(dtype=torch.float64)
    groups = sfw_for(model, lr=0.02).param_groups
    three = fixed_batches(0, 3, torch.float64)
    keys = [name for name, _ in model.named_parameters()]
    origins = [g["params"][0].detach().clone() for g in groups]
    scales = torch.tensor([0.9, 1.1, 1.2, 0.8, 1.05, 0.95], dtype=torch.float64)
    model[1].track_running_stats = False  # as inside sfw_init
    analytic = _scale_gradient(model, groups, keys, origins, scales, three)
    loss = lambda s: post_step_loss(model, groups, s, three)  # noqa: E731
    for i in range(len(scales)):
        # h balances truncation (~h^2) and rounding (~eps |J| / h) for |J| ~ 100
        numeric, error = central_difference(loss, scales, i, h=1e-4)
        assert abs(float(analytic[i]) - numeric) <= error, (i, float(analytic[i]), numeric, error)


def held_out_objective(model, groups, scales, batches):
    return sum(post_step_loss(model, groups, scales, batches[i:i + 3]) for i in range(0, len(batches), 3))


def test_learned_scales_lower_the_post_step_loss_on_held_out_batches():
    model = small_net()
    opt = sfw_for(model)
    groups = copy.deepcopy(opt.param_groups)  # the starting point w0
    held_out = fixed_batches(99, 12, images_seed=7)  # other images of the same task
    before = held_out_objective(model, groups, torch.ones(len(groups)), held_out)
    recipe = SFWInit(iterations=25, lr=0.03)
    scales = sfw_init(model, opt.param_groups, recipe, iter(fixed_batches(1, 75)))
    assert not torch.equal(scales, torch.ones_like(scales))
    assert held_out_objective(model, groups, scales, held_out) < before


def test_the_weights_become_the_scaled_start_inside_the_constraints_and_no_optimizer_state_is_left():
    model = small_net()
    opt = sfw_for(model)
    origins = [p.detach().clone() for p in model.parameters()]
    stats = [b.clone() for b in model[1].buffers()]
    model.train()
    scales = sfw_init(model, opt.param_groups, SFWInit(iterations=4, lr=0.05), iter(fixed_batches(1, 12)))
    for group, w0, s in zip(opt.param_groups, origins, scales):
        w = group["params"][0].detach()
        constraint = group["constraint"]
        assert float(constraint.norm(w)) <= constraint.radius * (1 + 1e-6)
        assert torch.allclose(w, constraint.shift_inside(w0 * s))
    assert all(torch.equal(a, b) for a, b in zip(stats, model[1].buffers()))  # running stats untouched
    assert model.training and model[1].training and not opt.state


def test_clipping_bounds_every_adam_step_by_the_learning_rate():
    """Gradients clipped to +-c all have |g| = c when c is small, so Adam's |m_hat| <= sqrt(v_hat):
    no scale moves more than lr per iteration (unclipped Adam can move up to ~3 lr)."""
    lr, iterations = 0.01, 6
    runs = {}
    for clip in (1e-6, 0.0):
        model = small_net()
        opt = sfw_for(model)
        recipe = SFWInit(iterations=iterations, lr=lr, grad_clip=clip, min_scale=1e-3)
        runs[clip] = sfw_init(model, opt.param_groups, recipe, iter(fixed_batches(1, 3 * iterations)))
    assert float((runs[1e-6] - 1).abs().max()) <= iterations * lr * (1 + 1e-5)
    assert not torch.equal(runs[1e-6], runs[0.0])


def test_scales_stay_at_or_above_their_floors():
    model = small_net()
    opt = sfw_for(model)
    recipe = SFWInit(iterations=6, lr=0.5, min_scale=0.7, bias_min_scale=0.9)
    scales = sfw_init(model, opt.param_groups, recipe, iter(fixed_batches(1, 18)))
    floors = torch.tensor([0.9 if name.endswith("bias") else 0.7 for name, _ in model.named_parameters()])
    assert bool((scales >= floors - 1e-7).all()) and bool((scales <= floors + 1e-7).any())


def test_same_seed_same_batches_another_seed_others():
    splits = synthetic_splits(n_train=64)
    first, again, other = (list(itertools.islice(init_batches(splits, 16, seed, True), 6)) for seed in (3, 3, 4))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))
    assert len(first) == 6  # 64 images give 4 batches an epoch: the draws run on into the next epoch


def built(method, data):
    """A trainer built from the same global RNG state, and that state afterwards."""
    torch.manual_seed(5)
    trainer = build_trainer(spec(method), data, None)
    return trainer, torch.get_rng_state()


def test_the_trainer_runs_sfw_init_and_leaves_the_data_order_and_global_rng_alone(tmp_path):
    save_prepared(synthetic_splits(), tmp_path / "data.pt")
    plain = Method("SFW", "sfw", {k: v for k, v in SFW_INIT.params.items() if not k.startswith("init")}
                   | {"init_samples": 2}, None)
    (with_init, rng_with), (without, rng_without) = (built(m, tmp_path / "data.pt") for m in (SFW_INIT, plain))
    assert torch.equal(rng_with, rng_without)
    assert torch.equal(with_init.data_order.get_state(), without.data_order.get_state())
    assert any(not torch.equal(a, b) for a, b in zip(with_init.model.parameters(), without.model.parameters()))


def test_a_run_with_sfw_init_is_deterministic(tmp_path):
    save_prepared(synthetic_splits(), tmp_path / "data.pt")
    for folder in ("a", "b"):  # the same file name: it is part of the checkpoint's archive
        train_run(spec(SFW_INIT, epochs=1), tmp_path / "data.pt", tmp_path / folder / "run.pt")
    assert (tmp_path / "a" / "run.pt").read_bytes() == (tmp_path / "b" / "run.pt").read_bytes()


def test_a_run_resumed_after_its_first_epoch_writes_the_same_checkpoint(tmp_path, capsys, monkeypatch):
    """On a resume SFW-Init is skipped (the saved weights and scales would replace its result) and
    the checkpoint is the uninterrupted run's."""
    save_prepared(synthetic_splits(), tmp_path / "data.pt")
    run = spec(SFW_INIT, epochs=2)
    train_run(run, tmp_path / "data.pt", tmp_path / "a" / "run.pt")
    make_deterministic(run.run.seed, run.training.threads)
    first = build_trainer(run, tmp_path / "data.pt", tmp_path / "resume.pt")
    position, curves = starting_position(first)
    run_epoch(first, position, StopRequest(), curves)
    end_epoch(first, position, curves)  # saves the state at the start of epoch 2, then "dies"
    capsys.readouterr()
    ran = []  # SFW-Init's own function, counted: it must not run when a resume state exists
    monkeypatch.setattr("compressible.optim.sfw_init.sfw_init", lambda *a: ran.append(1) or sfw_init(*a))
    train_run(run, tmp_path / "data.pt", tmp_path / "b" / "run.pt", resume=tmp_path / "resume.pt")
    assert "resume: run resnet20-SFW-s0, epoch 2" in capsys.readouterr().out and ran == []
    train_run(run, tmp_path / "data.pt", tmp_path / "c" / "run.pt", resume=tmp_path / "none.pt")
    assert ran == [1]  # without a resume state it runs (the counter counts)
    assert (tmp_path / "a" / "run.pt").read_bytes() == (tmp_path / "b" / "run.pt").read_bytes()


def test_without_sfw_init_nothing_runs():
    model = small_net()
    opt = build_sfw(model, [], seed=0, init_samples=2)
    before = [p.detach().clone() for p in model.parameters()]
    learn_initialization(model, opt, None)  # would fail on the missing batches if it ran
    assert opt.sfw_init is None and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_sync_batch_norm_is_refused_before_any_work():
    model = nn.SyncBatchNorm.convert_sync_batchnorm(small_net())
    opt = sfw_for(model)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="sync_bn: false"):
        learn_initialization(model, opt, None)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
