"""SFW optimizer, its builders and the proximal nuclear-norm baseline."""
import copy
import io
import math

import pytest
import torch
from torch import nn

from compressible.compress.matrices import as_matrix
from compressible.optim.methods_sfw import build_nuclear_prox, build_sfw, expected_init_norms, resolve_k
from compressible.optim.nuclear import NuclearProxSGD, singular_value_soft_threshold
from compressible.optim.sfw import SFW
from compressible.optim.step_size import fw_step_size
from compressible.registry import CONSTRAINTS, METHODS


def l2(shape, radius):
    return CONSTRAINTS.get("l2")(shape, radius=radius)


def quadratic_closure(params, targets):
    """closure(track_bn_stats) of 0.5 * sum ||w - t||^2: the gradient is w - t."""

    def closure(track_bn_stats=True):
        for p in params:
            p.grad = None
        with torch.enable_grad():
            loss = sum(0.5 * (p - t).square().sum() for p, t in zip(params, targets))
            loss.backward()
        return loss

    return closure


def test_hand_computed_step_in_an_l2_ball():
    w = nn.Parameter(torch.tensor([1.0, 0.0]))
    opt = SFW([{"params": [w], "constraint": l2((2,), 2.0)}], lr=0.5, momentum=0.0)
    opt.step(quadratic_closure([w], [torch.tensor([1.0, 3.0])]))  # g = (0, -3)
    v = torch.tensor([0.0, 2.0])  # -r g/||g||
    eta = 0.5 * 3.0 / math.dist([1.0, 0.0], [0.0, 2.0])  # lr ||g|| / ||w - v||
    assert torch.allclose(w.detach(), (1 - eta) * torch.tensor([1.0, 0.0]) + eta * v)


@pytest.mark.parametrize("style,expected", [("exponential", 0.9 * 1.0 + 0.1 * 3.0), ("heavy_ball", 0.9 * 1.0 + 3.0)])
def test_momentum_styles(style, expected):
    w = nn.Parameter(torch.zeros(1))
    opt = SFW([{"params": [w], "constraint": l2((1,), 100.0)}], lr=0.0, momentum=0.9, momentum_style=style)
    for g in (1.0, 3.0):
        w.grad = torch.tensor([g])
        opt.step()
    assert float(opt.state[w]["momentum_buffer"]) == pytest.approx(expected)


@pytest.mark.parametrize("rescale", ["gradient", "fast_gradient", "diameter", "none"])
def test_rescaled_step_sizes_stay_in_unit_interval(rescale):
    g = torch.Generator().manual_seed(0)
    for lr in (0.0, 1e-3, 0.5, 10.0, 1e6):
        for scale in (0.0, 1e-6, 1.0, 1e3):
            d, w, v = (scale * torch.randn(5, generator=g) for _ in range(3))
            eta = float(fw_step_size(lr, rescale, d, w, v, diameter=0.7))
            assert 0.0 <= eta <= 1.0
    assert float(fw_step_size(0.1, "gradient", torch.ones(3), torch.zeros(3), torch.zeros(3), 1.0)) == 1.0
    assert float(fw_step_size(0.1, "gradient", torch.zeros(3), torch.zeros(3), torch.zeros(3), 1.0)) == 0.0


def test_rescale_factors():
    d, w, v = torch.tensor([3.0, 4.0]), torch.tensor([1.0, 1.0]), torch.tensor([-1.0, 1.0])
    assert float(fw_step_size(0.1, "gradient", d, w, v, 8.0)) == pytest.approx(0.1 * 5 / 2)
    assert float(fw_step_size(0.1, "fast_gradient", d, w, v, 8.0)) == pytest.approx(0.1 * 5 / 4)
    assert float(fw_step_size(0.1, "diameter", d, w, v, 8.0)) == pytest.approx(0.1 / 8)
    assert float(fw_step_size(0.1, "none", d, w, v, 8.0)) == pytest.approx(0.1)


def test_parameter_without_gradient_does_not_shift_other_constraints():
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.full((4,), 0.1))
    b_alone = nn.Parameter(b.detach().clone())
    groups = [{"params": [a], "constraint": l2((3,), 0.2)}, {"params": [b], "constraint": l2((4,), 5.0)}]
    opt = SFW(groups, lr=0.3)
    ref = SFW([{"params": [b_alone], "constraint": l2((4,), 5.0)}], lr=0.3)
    target = torch.tensor([1.0, -2.0, 3.0, 0.5])
    for _ in range(3):
        opt.step(quadratic_closure([b], [target]))  # a never gets a gradient
        ref.step(quadratic_closure([b_alone], [target]))
    assert torch.equal(a.detach(), torch.ones(3)) and a not in opt.state
    assert torch.equal(b.detach(), b_alone.detach())


def test_groups_must_hold_one_tensor_and_a_constraint():
    with pytest.raises(ValueError):
        SFW([{"params": [nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))], "constraint": l2((2,), 1.0)}])
    with pytest.raises(ValueError):
        SFW([{"params": [nn.Parameter(torch.ones(2))]}])


def toy_regression(seed=0):
    """A small MLP learning a fixed teacher: data, model."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 6, generator=g)
    y = torch.tanh(x @ torch.randn(6, 3, generator=g))
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    return x, y, model


def model_closure(model, opt, x, y):
    def closure(track_bn_stats=True):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss.detach()

    return closure


@pytest.mark.parametrize("name", CONSTRAINTS.names())
def test_loss_decreases_for_every_registered_constraint(name):
    x, y, model = toy_regression()
    opt = build_sfw(model, [], seed=0, constraint=name, k="50%", tau=5.0, lr=0.2, momentum=0.5,
                    init_samples=4)
    closure = model_closure(model, opt, x, y)
    first = float(closure())
    for _ in range(150):
        opt.step(closure)
    assert float(closure()) < 0.5 * first
    for group in opt.param_groups:  # the iterates stay feasible
        assert float(group["constraint"].norm(group["params"][0].detach())) <= group["constraint"].radius * (1 + 1e-5)


def run(opt, closure, steps):
    return [float(opt.step(closure)) for _ in range(steps)]


def test_state_dict_round_trips_through_weights_only_load():
    x, y, model = toy_regression()
    kwargs = dict(seed=0, constraint="k_sparse", k="30%", momentum=0.9, lr=0.5, delay_k_steps=4, init_samples=2)
    opt = build_sfw(model, [], **kwargs)
    resumed_model = copy.deepcopy(model)
    run(opt, model_closure(model, opt, x, y), 3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    expected = run(opt, model_closure(model, opt, x, y), 4)

    resumed = build_sfw(resumed_model, [], **{**kwargs, "radius_mode": "radius"})  # other radii
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed_model.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["opt"])
    assert run(resumed, model_closure(resumed_model, resumed, x, y), 4) == expected
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)


def test_delayed_k_trains_with_k_equal_n_first_at_the_same_diameter():
    w = nn.Parameter(torch.zeros(50))
    c = CONSTRAINTS.get("k_sparse")((50,), diameter=4.0, k=5)
    opt = SFW([{"params": [w], "constraint": c}], lr=0.0, delay_k_steps=2)
    nonzeros = []
    for _ in range(4):
        w.grad = torch.randn(50)
        opt.step()
        nonzeros.append(int((c.lmo(w.grad) != 0).sum()))
    assert nonzeros == [50, 50, 5, 5] and c.diameter == 4.0


def test_lr_scheduler_drives_the_step():
    w = nn.Parameter(torch.tensor([1.0, 0.0]))
    opt = SFW([{"params": [w], "constraint": l2((2,), 2.0)}], lr=0.5, momentum=0.0, rescale="none")
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.0)
    opt.step(quadratic_closure([w], [torch.tensor([1.0, 3.0])]))
    assert torch.equal(w.detach(), torch.tensor([1.0, 0.0]))


def test_resolve_k_follows_sfw_pruning_rule():
    for n in (5, 100, 1000, 10_000):
        assert resolve_k("5%", 10, n) == min(max(10, math.floor(0.05 * n)), n)
    assert resolve_k(7, 1, 100) == 7 and resolve_k("100%", 1, 9) == 9 and resolve_k(500, 1, 9) == 9
    assert resolve_k("2.5%", 1, 1000) == 25
    for bad in (0, 0.05, 1.0, 1.5, -2, True, "0%", "101%", "5", "x%"):
        with pytest.raises(ValueError):
            resolve_k(bad, 1, 10)


def bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def test_initialization_radius_is_keyed_per_parameter():
    model = bn_model()
    norms = expected_init_norms(model, samples=50, seed=0)
    assert norms["1.weight"] == pytest.approx(math.sqrt(8))  # BN weight: ones
    assert norms["1.bias"] == 1.0  # BN bias: zeros -> 1, not the BN weight's value of the same shape
    # default conv init: U(-b, b), b = 1/sqrt(fan_in) -> E||W|| ~ sqrt(n / (3 fan_in))
    assert norms["0.weight"] == pytest.approx(math.sqrt(8 * 27 / (3 * 27)), rel=0.03)
    opt = build_sfw(model, [], seed=0, tau=2.0, init_samples=50)
    diameters = {g["name"]: g["constraint"].diameter for g in opt.param_groups}
    assert diameters["1.weight"] == pytest.approx(2 * 2.0 * math.sqrt(8)) and diameters["1.bias"] == 4.0


def test_initialization_norms_leave_the_global_rng_alone():
    model = bn_model()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    expected_init_norms(model, samples=3, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_structured_constraint_on_conv_weights_and_l2_elsewhere():
    opt = build_sfw(bn_model(), [], seed=0, constraint="group_k_support", constrain="structured_conv_l2_rest",
                    momentum_style="heavy_ball", init_samples=2)
    kinds = {g["name"]: g["constraint"].name for g in opt.param_groups}
    assert kinds == {"0.weight": "group_k_support", "0.bias": "l2", "1.weight": "l2", "1.bias": "l2",
                     "4.weight": "l2", "4.bias": "l2"}
    everywhere = build_sfw(bn_model(), [], seed=0, constraint="k_sparse", init_samples=2)
    assert {g["constraint"].name for g in everywhere.param_groups} == {"k_sparse"}


def test_builder_makes_the_start_feasible_and_checks_options():
    model = bn_model()
    opt = build_sfw(model, [], seed=0, constraint="l1", radius_mode="radius", radius=0.1)
    for g in opt.param_groups:
        assert float(g["constraint"].norm(g["params"][0].detach())) <= 0.1 * (1 + 1e-6)
    assert METHODS.get("sfw") is build_sfw and METHODS.get("nuclear_prox") is build_nuclear_prox
    for bad in ({"weight_decay": 5e-4}, {"constraint": "nope"}, {"radius_mode": "x"}, {"constrain": "x"},
                {"delay_k_epochs": 2}, {"init": "x"}):
        with pytest.raises((ValueError, KeyError)):
            build_sfw(bn_model(), [], seed=0, init_samples=1, **bad)
    delayed = build_sfw(bn_model(), [], seed=0, delay_k_epochs=2, steps_per_epoch=10, init_samples=1)
    assert delayed.param_groups[0]["delay_k_steps"] == 20


def test_singular_value_soft_threshold():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 2, 2, 2, generator=g, dtype=torch.float64)
    s = torch.linalg.svdvals(as_matrix(w))
    out = singular_value_soft_threshold(w, float(s[2]))
    assert out.shape == w.shape
    assert torch.allclose(torch.linalg.svdvals(as_matrix(out))[:2], s[:2] - s[2])
    assert int(torch.linalg.matrix_rank(as_matrix(out))) == 2


def test_nuclear_prox_is_sgd_then_prox_on_regularized_groups_only():
    model = bn_model()
    reference = copy.deepcopy(model)
    opt = build_nuclear_prox(model, [], seed=0, lr=0.1, nuclear=0.5, weight_decay=0.0)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(4, 3, 6, 6)
    for m, o in ((model, opt), (reference, sgd)):
        o.step(lambda track_bn_stats=True, m=m, o=o: (o.zero_grad(), m(x).square().mean().backward())[0])
    expected = singular_value_soft_threshold(reference[0].weight.detach(), 0.1 * 0.5)
    assert torch.allclose(model[0].weight, expected, atol=1e-6)
    assert torch.equal(model[4].weight, reference[4].weight)  # linear weight: plain SGD
    assert isinstance(opt, NuclearProxSGD) and opt.param_groups[1]["nuclear"] == 0.0


def test_init_norms_keyed_by_shape_collide_as_in_the_sfw_pruning_code():
    """BN weight (ones: sqrt(4) = 2) and BN bias (zeros -> 1) and the classifier bias all have
    shape (4,): keyed by shape, every one of them takes the last layer's value in module order
    (the classifier bias); keyed by parameter, each keeps its own."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 4))
    own = expected_init_norms(model, samples=50, seed=1)
    shared = expected_init_norms(model, samples=50, seed=1, key="shape")
    assert own["1.weight"] == pytest.approx(2.0) and own["1.bias"] == 1.0
    assert shared["1.weight"] == shared["1.bias"] == shared["3.bias"] == own["3.bias"]
    assert own["3.bias"] < 1.0  # U(-1/2, 1/2) entries: E||b|| < 1
    assert shared["0.weight"] == own["0.weight"] and shared["3.weight"] == own["3.weight"]
    opt = build_sfw(model, [], seed=1, constraint="k_sparse", k="50%", tau=2.0, init_samples=50,
                    init_norm_key="shape")
    bn_weight = next(g for g in opt.param_groups if g["name"] == "1.weight")["constraint"]
    assert bn_weight.diameter == pytest.approx(2 * 2.0 * own["3.bias"])


CA_SFW = dict(constraint="group_k_support", constrain="structured_conv_l2_rest", k="30%", tau=10.0,
              radius_mode="initialization", momentum_style="heavy_ball", init_samples=5)


def test_compression_aware_sfw_as_its_authors_a_bn_weight_radius_tau_and_the_start_left_as_is():
    """configs/ca_sfw: radii keyed by shape (a 512-channel BN weight takes its bias's zero norm
    replaced by 1: radius tau, not tau sqrt(512)) and no shift into the set (their fixed_init
    option off): the BN weight starts at ones, outside its ball, and SFW steps move it in."""
    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 512, 1, bias=False), nn.BatchNorm2d(512), nn.Flatten(),
                             nn.Linear(512, 3))

    ours = build_sfw(model(), [], seed=0, **CA_SFW)
    net = model()
    authors = build_sfw(net, [], seed=0, init_norm_key="shape", feasible_start=False, **CA_SFW)
    radius = {o: next(g for g in o.param_groups if g["name"] == "1.weight")["constraint"].radius
              for o in (ours, authors)}
    assert radius[authors] == pytest.approx(10.0)
    assert radius[ours] == pytest.approx(10.0 * math.sqrt(512))
    gamma = net[1].weight
    assert torch.equal(gamma, torch.ones(512))  # not shifted: norm 22.6 > 10
    x = torch.randn(8, 3, 1, 1)
    for _ in range(30):
        authors.step(lambda: (authors.zero_grad(), net(x).square().mean().backward())[0])
    assert float(gamma.detach().norm()) < math.sqrt(512)
    shifted = model()
    build_sfw(shifted, [], seed=0, init_norm_key="shape", **CA_SFW)
    assert float(shifted[1].weight.norm()) <= 10.0 * (1 + 1e-6)  # the project's default: shifted inside


# --- global constraints and the restore after the delayed-K phase ------------------------------

from compressible.optim.global_constraints import GLOBAL_CONSTRAINTS, make_global  # noqa: E402
from compressible.optim.methods_sfw import raw_init_norms  # noqa: E402


def global_feasible(opt):
    for group in opt.param_groups:
        c, ws = group["constraint"], [w.detach() for w in group["params"]]
        assert float(c.norm(ws)) <= c.radius * (1 + 1e-5), group["name"]


@pytest.mark.parametrize("name", GLOBAL_CONSTRAINTS)
def test_global_constraint_trains_and_keeps_the_iterate_feasible(name):
    x, y, model = toy_regression()
    opt = build_sfw(model, [], seed=0, constraint=name, k="50%", tau=5.0, lr=0.2, momentum=0.5,
                    init_samples=4, constraint_scope="global")
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 4
    closure = model_closure(model, opt, x, y)
    first = float(closure())
    for _ in range(150):
        opt.step(closure)
        global_feasible(opt)
    assert float(closure()) < 0.5 * first


def test_global_sizes_follow_the_authors_definition():
    """K over all entries of the set (or all filters), D = 2 tau sqrt(sum of squared E||W_i||)."""
    opt = build_sfw(bn_model(), [], seed=0, constraint="group_k_support", constrain="structured_conv_l2_rest",
                    k="25%", tau=3.0, init_samples=5, constraint_scope="global")
    conv, rest = opt.param_groups
    assert conv["names"] == ["0.weight"] and rest["names"] == ["0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    assert conv["constraint"].name == "group_k_support" and rest["constraint"].name == "l2"
    assert conv["constraint"].k == 2  # 25 % of 8 filters
    raw = raw_init_norms(bn_model(), 5, 0)
    assert raw["1.bias"] == 0.0  # adds nothing globally (per tensor it would become 1)
    expected = 2 * 3.0 * math.sqrt(sum(raw[n] ** 2 for n in rest["names"]))
    assert rest["constraint"].diameter == pytest.approx(expected)
    everything = build_sfw(bn_model(), [], seed=0, constraint="k_sparse", k="10%", init_samples=2,
                           constraint_scope="global")
    n = sum(p.numel() for p in bn_model().parameters())
    assert [len(g["params"]) for g in everything.param_groups] == [6]
    assert everything.param_groups[0]["constraint"].k == int(0.1 * n)


def test_global_scope_refuses_what_it_cannot_mean():
    for bad, message in (({"constraint": "spectral_k_support"}, "no global form"),
                         ({"init": "sfw_init"}, "one scale per tensor"),
                         ({"init_norm_key": "shape"}, "one radius"),
                         ({"constraint_scope": "model"}, "constraint_scope must be one of")):
        with pytest.raises(ValueError, match=message):
            build_sfw(bn_model(), [], seed=0, init_samples=1, **{"constraint_scope": "global", **bad})


def test_global_group_without_gradients_in_one_tensor_scales_it_with_the_rest():
    a, b = nn.Parameter(torch.full((3,), 0.1)), nn.Parameter(torch.full((2,), 0.1))
    c = make_global("l2", [(3,), (2,)], radius=1.0)
    opt = SFW([{"params": [a, b], "constraint": c}], lr=0.5, momentum=0.0, rescale="none")
    a.grad = torch.tensor([1.0, 0.0, 0.0])
    opt.step()  # v = (-1, 0, 0 | 0, 0), eta = 0.5
    assert torch.allclose(a.detach(), torch.tensor([-0.45, 0.05, 0.05]))
    assert torch.allclose(b.detach(), torch.tensor([0.05, 0.05]))
    with pytest.raises(ValueError, match="shapes"):
        SFW([{"params": [b, a], "constraint": c}])


def test_global_state_dict_round_trips():
    x, y, model = toy_regression()
    kwargs = dict(seed=0, constraint="k_support", k="30%", lr=0.5, delay_k_steps=2, init_samples=2,
                  constraint_scope="global", delay_k_restore="rescale")
    opt = build_sfw(model, [], **kwargs)
    resumed_model = copy.deepcopy(model)
    run(opt, model_closure(model, opt, x, y), 2)
    saved = copy.deepcopy({"model": model.state_dict(), "opt": opt.state_dict()})
    expected = run(opt, model_closure(model, opt, x, y), 3)
    resumed = build_sfw(resumed_model, [], **kwargs)
    resumed_model.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["opt"])
    assert run(resumed, model_closure(resumed_model, resumed, x, y), 3) == expected


def k_sparse_after_delay(restore, scope="layer"):
    """w on the K = n set's vertex (1, ..., 1) r_n: outside the K = 5 polytope at the same diameter."""
    w = nn.Parameter(torch.full((50,), 4.0 / (2 * math.sqrt(50))))
    maker = (lambda **kw: make_global("k_sparse", [(50,)], **kw)) if scope == "global" else \
        (lambda **kw: CONSTRAINTS.get("k_sparse")((50,), **kw))
    c = maker(diameter=4.0, k=5)
    opt = SFW([{"params": [w], "constraint": c}], lr=0.0, momentum=0.0, delay_k_steps=2, delay_k_restore=restore)
    norms = []
    for _ in range(4):
        w.grad = torch.randn(50)
        opt.step()
        norms.append(float(c.norm([w.detach()]) if scope == "global" else c.norm(w.detach())) / c.radius)
    return norms


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_delay_k_restore_rescales_the_iterate_into_the_new_set(scope):
    none, rescale = k_sparse_after_delay("none", scope), k_sparse_after_delay("rescale", scope)
    assert none[:2] == pytest.approx([1.0, 1.0]) and rescale[:2] == pytest.approx([1.0, 1.0])
    assert none[2] == pytest.approx(math.sqrt(10))  # ||w||_1 / K over r_K: outside, and it stays
    assert rescale[2:] == pytest.approx([1.0, 1.0])  # on the boundary of the K = 5 polytope


@pytest.mark.parametrize("constraint", ["k_sparse", "k_support", "group_k_support"])
def test_iterates_are_feasible_after_the_delayed_k_change_in_training(constraint):
    x, y, model = toy_regression()
    opt = build_sfw(model, [], seed=0, constraint=constraint, k=1, tau=5.0, lr=0.5, delay_k_steps=20,
                    init_samples=2, delay_k_restore="rescale")
    closure = model_closure(model, opt, x, y)
    for step in range(30):
        opt.step(closure)
        if step >= 20:
            for group in opt.param_groups:
                c = group["constraint"]
                assert c.k_active == c.k
                assert float(c.norm(group["params"][0].detach())) <= c.radius * (1 + 1e-5)


def test_new_options_at_their_neutral_values_keep_the_run_hash():
    from compressible.config import validate_config
    from compressible.runs import Experiment, Run
    import yaml

    raw = yaml.safe_load(open("configs/default.yaml"))
    before = Experiment(validate_config(copy.deepcopy(raw))).spec(Run("resnet20", "SFW", 0)).hash()
    sfw = next(m for m in raw["methods"] if m["name"] == "sfw")
    sfw["params"].update(constraint_scope="layer", delay_k_restore="none")
    assert Experiment(validate_config(copy.deepcopy(raw))).spec(Run("resnet20", "SFW", 0)).hash() == before
    sfw["params"].update(constraint_scope="global")
    assert Experiment(validate_config(raw)).spec(Run("resnet20", "SFW", 0)).hash() != before


@pytest.mark.parametrize("shape", [(16, 8, 3, 3), (64, 4, 1, 1), (10, 64)])
def test_the_gram_prox_equals_the_exact_svd_prox(shape):
    """Against U max(S - t, 0) V^T from a full float64 SVD: random weights, wide and tall, and a
    rank-deficient one (exact zero singular values must stay zero, not turn into noise)."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(*shape, generator=g)
    low = (torch.randn(shape[0], 3, generator=g) @ torch.randn(3, as_matrix(w).shape[1], generator=g)).view(shape)
    for weight in (w, low):
        u, s, vh = torch.linalg.svd(as_matrix(weight).double(), full_matrices=False)
        for t in (0.0, float(s[1]) / 2, float(s[0]) * 2):
            want = ((u * (s - t).clamp_min(0)) @ vh).view(shape)
            got = singular_value_soft_threshold(weight, t)
            assert got.dtype == weight.dtype
            assert torch.allclose(got.double(), want, atol=1e-6 * float(s[0]), rtol=0)  # float32 output rounding
