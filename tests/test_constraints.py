"""Feasible sets: every LMO is feasible and optimal (brute force, dual norms, full SVD)."""
import itertools
import math

import pytest
import torch

from compressible.compress.matrices import as_matrix, top_singular_triplets
from compressible.optim.constraints import k_support_norm, top_k_l2
from compressible.registry import CONSTRAINTS

SHAPES = [(7,), (6, 5), (4, 3, 2, 2)]


def make(name, shape, radius=1.7, k_frac=0.4):
    cls = CONSTRAINTS.get(name)
    k = max(1, int(k_frac * cls.k_space(shape))) if cls.uses_k else None
    return cls(shape, radius=radius, k=k)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def optimal_value(name, c, g):
    """min_{v in C} <g, v> = -radius * (dual norm of g), computed independently of the LMO."""
    r, k, m = c.radius, c.k_active, as_matrix(g).double()
    sigma = torch.linalg.svdvals(m)
    dual = {
        "l1": lambda: g.abs().max(), "l2": lambda: g.norm(), "linf": lambda: g.abs().sum(),
        "k_sparse": lambda: g.abs().flatten().topk(k).values.sum(),
        "k_support": lambda: top_k_l2(g, k),
        "group_k_support": lambda: m.norm(dim=1).topk(k).values.norm(),
        "nuclear": lambda: sigma[0], "spectral_k_support": lambda: sigma[:k].norm(),
        "spectral_k_sparse": lambda: sigma[:k].sum(),
    }[name]()
    return -r * float(dual)


@pytest.mark.parametrize("name", CONSTRAINTS.names())
@pytest.mark.parametrize("shape", SHAPES)
def test_lmo_is_feasible_and_optimal(name, shape):
    c = make(name, shape)
    for seed in range(3):
        g = torch.randn(shape, generator=gen(seed), dtype=torch.float64)
        v = c.lmo(g)
        assert v.shape == g.shape
        assert float(c.norm(v)) <= c.radius * (1 + 1e-6)
        assert float((g * v).sum()) == pytest.approx(optimal_value(name, c, g), rel=1e-6)


@pytest.mark.parametrize("name", CONSTRAINTS.names())
def test_lmo_of_zero_direction_is_feasible(name):
    c = make(name, (6, 5))
    v = c.lmo(torch.zeros(6, 5))
    assert torch.isfinite(v).all() and float(c.norm(v)) <= c.radius * (1 + 1e-6)


@pytest.mark.parametrize("name", CONSTRAINTS.names())
def test_diameter_is_the_distance_between_opposite_vertices(name):
    """The sets are symmetric: lmo(-g) = -lmo(g), and their distance is the L2 diameter."""
    c = make(name, (6, 5))
    g = torch.randn(6, 5, generator=gen(1), dtype=torch.float64)
    assert float((c.lmo(g) - c.lmo(-g)).norm()) == pytest.approx(c.diameter, rel=1e-6)


@pytest.mark.parametrize("n,k", [(5, 1), (5, 2), (6, 3)])
def test_k_sparse_lmo_matches_brute_force_over_vertices(n, k):
    c = CONSTRAINTS.get("k_sparse")((n,), radius=0.8, k=k)
    g = torch.randn(n, generator=gen(n + k), dtype=torch.float64)
    best = math.inf
    for support in itertools.combinations(range(n), k):
        for signs in itertools.product((-1.0, 1.0), repeat=k):
            v = torch.zeros(n, dtype=torch.float64)
            v[list(support)] = 0.8 * torch.tensor(signs, dtype=torch.float64)
            best = min(best, float((g * v).sum()))
    v = c.lmo(g)
    assert float((g * v).sum()) == pytest.approx(best, rel=1e-9)
    assert int((v != 0).sum()) == k and torch.allclose(v.abs()[v != 0], torch.tensor(0.8, dtype=torch.float64))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_group_k_support_lmo_matches_brute_force_over_filter_subsets(k):
    """Extreme points: Frobenius norm r on k filters; best value on a subset S is -r ||g_S||."""
    c = CONSTRAINTS.get("group_k_support")((5, 2, 3, 3), radius=1.3, k=k)
    g = torch.randn(5, 2, 3, 3, generator=gen(k), dtype=torch.float64)
    rows = as_matrix(g).norm(dim=1)
    best = min(-1.3 * float(rows[list(s)].norm()) for s in itertools.combinations(range(5), k))
    v = c.lmo(g)
    assert float((g * v).sum()) == pytest.approx(best, rel=1e-9)
    assert int((as_matrix(v).norm(dim=1) > 0).sum()) == k


def test_k_support_norm_special_cases():
    x = torch.randn(9, generator=gen(0), dtype=torch.float64)
    assert float(k_support_norm(x, 1)) == pytest.approx(float(x.abs().sum()))
    assert float(k_support_norm(x, 9)) == pytest.approx(float(x.norm()))
    sparse = torch.zeros(9, dtype=torch.float64)
    sparse[[1, 4, 7]] = torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64)
    assert float(k_support_norm(sparse, 3)) == pytest.approx(float(sparse.norm()))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_k_support_norm_is_tight_for_its_dual(k):
    """<x, u> <= ||x||_k^sp ||u||_(k)*, with equality at u = the LMO vertex of x's direction."""
    x = torch.randn(10, generator=gen(k), dtype=torch.float64)
    norm = float(k_support_norm(x, k))
    for seed in range(20):
        u = torch.randn(10, generator=gen(100 + seed), dtype=torch.float64)
        assert float((x * u).sum()) <= norm * float(top_k_l2(u, k)) + 1e-9
    # the maximizing u of the dual pairing: grad of the norm; check via subgradient along x
    c = CONSTRAINTS.get("k_support")((10,), radius=1.0, k=k)
    assert float(c.norm(c.lmo(x))) == pytest.approx(1.0)
    assert norm >= float(x.norm()) - 1e-12 and norm <= float(x.abs().sum()) + 1e-12


@pytest.mark.parametrize("shape,k", [((40, 300), 4), ((300, 120), 6), ((64, 3, 3, 3), 2), ((12, 9), 5)])
def test_top_singular_triplets_match_full_svd(shape, k):
    """Low-rank + noise (a gradient-like spectrum): the top-k triplets agree with a full SVD."""
    g = gen(sum(shape))
    m = shape[0]
    n = math.prod(shape[1:])
    low = torch.randn(m, 8, generator=g) @ torch.randn(8, n, generator=g)
    a = (low + 0.1 * torch.randn(m, n, generator=g)).double()
    u, s, vh = top_singular_triplets(a, k)
    u_ref, s_ref, vh_ref = torch.linalg.svd(a, full_matrices=False)
    assert torch.allclose(s, s_ref[:k], rtol=1e-8)
    assert torch.allclose((u * s) @ vh, (u_ref[:, :k] * s_ref[:k]) @ vh_ref[:k], atol=1e-7)
    assert torch.allclose(vh @ vh.T, torch.eye(k, dtype=a.dtype), atol=1e-8)


def test_top_singular_triplets_on_a_flat_random_spectrum():
    """Gaussian matrices have nearly equal top singular values, the hard case for subspace
    iteration: the captured spectral energy (what the LMO value depends on) stays within 1e-3."""
    a = torch.randn(256, 1024, generator=gen(7))
    k = 12
    u, s, vh = top_singular_triplets(a, k)
    s_ref = torch.linalg.svdvals(a.double())[:k].float()
    assert float(((u * s) @ vh * a).sum()) == pytest.approx(float(s_ref.square().sum()), rel=1e-3)
    assert float(s.norm()) == pytest.approx(float(s_ref.norm()), rel=1e-3)
    assert torch.allclose(u.T @ u, torch.eye(k), atol=1e-4)


@pytest.mark.parametrize("name", ["nuclear", "spectral_k_support", "spectral_k_sparse"])
def test_spectral_lmos_against_full_svd_on_random_matrices(name):
    c = make(name, (48, 200), radius=2.0, k_frac=0.1)
    for seed in range(3):
        g = torch.randn(48, 200, generator=gen(seed), dtype=torch.float64)
        value = float((g * c.lmo(g)).sum())
        assert value == pytest.approx(optimal_value(name, c, g), rel=1e-5)


@pytest.mark.parametrize("name", CONSTRAINTS.names())
def test_shift_inside_makes_points_feasible_and_keeps_feasible_ones(name):
    c = make(name, (6, 5), radius=0.5)
    w = 10 * torch.randn(6, 5, generator=gen(3), dtype=torch.float64)
    inside = c.shift_inside(w)
    assert float(c.norm(inside)) == pytest.approx(c.radius, rel=1e-9)
    assert torch.allclose(inside / inside.norm(), w / w.norm())  # a rescaling, not a new direction
    small = inside * 0.5
    assert torch.equal(c.shift_inside(small), small)


def test_changing_k_keeps_the_l2_diameter():
    c = CONSTRAINTS.get("k_sparse")((100,), diameter=6.0, k=4)
    assert c.radius == pytest.approx(6.0 / (2 * 2))
    c.set_active_k(100)
    assert c.diameter == 6.0 and c.radius == pytest.approx(6.0 / (2 * 10))
    assert int((c.lmo(torch.randn(100)) != 0).sum()) == 100


def test_constraint_state_round_trips_and_rejects_other_sets():
    c = CONSTRAINTS.get("k_support")((4, 5), diameter=3.0, k=7)
    c.set_active_k(20)
    other = CONSTRAINTS.get("k_support")((4, 5), radius=1.0, k=2)
    other.load_state_dict(c.state_dict())
    assert (other.k, other.k_active, other.diameter) == (7, 20, 3.0)
    with pytest.raises(ValueError):
        CONSTRAINTS.get("l2")((4, 5), radius=1.0).load_state_dict(c.state_dict())


def test_constructor_validates_arguments():
    with pytest.raises(ValueError):
        CONSTRAINTS.get("l2")((3,), radius=1.0, diameter=2.0)
    with pytest.raises(ValueError):
        CONSTRAINTS.get("k_sparse")((3,), radius=1.0, k=4)
    with pytest.raises(ValueError):
        CONSTRAINTS.get("l2")((3,), radius=1.0, k=2)


def test_top_singular_triplets_converge_on_the_benchmark_size():
    """ResNet-18's largest conv seen as 512 x 4608, k = 5 % of the rank (benchmarks/bench_sfw.py):
    the spectral-k-support LMO value is within 1e-6 of the exact -||sigma_1..k||_2."""
    gradient = torch.randn(512, 4608, generator=torch.Generator().manual_seed(0))
    k = 25
    u, s, vh = top_singular_triplets(gradient, k)
    exact = torch.linalg.svdvals(gradient.double())[:k].norm()
    v = -(u.double() * s.double()) @ vh.double() / s.double().norm()  # the LMO at radius 1
    gap = float((exact + (gradient.double() * v).sum()) / exact)
    assert 0 <= gap <= 1e-6


def test_top_singular_triplets_iterate_to_convergence_above_the_eigh_rank():
    """Rank above EIGH_MAX_RANK: the subspace iteration runs and stops on converged Ritz values."""
    from compressible.compress import matrices

    rows = matrices.EIGH_MAX_RANK + 76
    gradient = torch.randn(rows, rows + 200, generator=torch.Generator().manual_seed(1))
    k = 20
    u, s, vh = top_singular_triplets(gradient, k)
    exact = torch.linalg.svdvals(gradient.double())[:k]
    v = -(u.double() * s.double()) @ vh.double() / s.double().norm()
    gap = float((exact.norm() + (gradient.double() * v).sum()) / exact.norm())
    assert 0 <= gap <= 1e-6
    torch.testing.assert_close(s.double(), exact, rtol=1e-5, atol=0)


# --- global constraints: one set over the concatenation of several tensors ---------------------

from compressible.optim.global_constraints import GLOBAL_CONSTRAINTS, make_global  # noqa: E402

GLOBAL_SHAPES = [(4, 3), (5,), (3, 2, 2, 2)]


def make_global_set(name, shapes=GLOBAL_SHAPES, radius=1.3, k=4):
    return make_global(name, shapes, radius=radius, **({"k": k} if CONSTRAINTS.get(name).uses_k else {}))


def random_list(shapes, seed, scale=1.0):
    g = gen(seed)
    return [scale * torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]


def global_optimal_value(name, r, k, ds):
    """-r * dual norm of the concatenated direction, computed without the LMO."""
    flat = torch.cat([d.reshape(-1) for d in ds])
    filters = torch.cat([as_matrix(d).norm(dim=1) for d in ds])
    dual = {"l1": lambda: flat.abs().max(), "l2": lambda: flat.norm(), "linf": lambda: flat.abs().sum(),
            "k_sparse": lambda: flat.abs().topk(k).values.sum(), "k_support": lambda: top_k_l2(flat, k),
            "group_k_support": lambda: filters.topk(k).values.norm()}[name]()
    return -r * float(dual)


def inner(ds, vs):
    return float(sum((d * v).sum() for d, v in zip(ds, vs)))


@pytest.mark.parametrize("name", GLOBAL_CONSTRAINTS)
def test_global_lmo_is_feasible_and_optimal_over_the_concatenation(name):
    c = make_global_set(name)
    for seed in range(3):
        ds = random_list(GLOBAL_SHAPES, seed)
        vs = c.lmo(ds)
        assert [v.shape for v in vs] == [d.shape for d in ds]
        assert float(c.norm(vs)) <= c.radius * (1 + 1e-6)
        assert inner(ds, vs) == pytest.approx(global_optimal_value(name, c.radius, c.k_active, ds), rel=1e-6)


def test_global_k_sparse_lmo_matches_brute_force_over_vertices_across_tensors():
    shapes, k, r = [(2, 2), (3,)], 3, 0.7
    c = make_global("k_sparse", shapes, radius=r, k=k)
    ds = random_list(shapes, 5)
    flat = torch.cat([d.reshape(-1) for d in ds])
    best = math.inf
    for support in itertools.combinations(range(7), k):
        for signs in itertools.product((-1.0, 1.0), repeat=k):
            best = min(best, r * float(sum(s * flat[i] for s, i in zip(signs, support))))
    vs = c.lmo(ds)
    assert inner(ds, vs) == pytest.approx(best, rel=1e-9)
    assert sum(int((v != 0).sum()) for v in vs) == k


@pytest.mark.parametrize("k", [1, 2, 4])
def test_global_group_k_support_lmo_matches_brute_force_over_filters_of_all_layers(k):
    """The k filters come from any layer: the best subset of all 3 + 4 filters, value -r ||g_S||."""
    shapes, r = [(3, 2, 2, 2), (4, 3, 1, 1)], 0.9
    c = make_global("group_k_support", shapes, radius=r, k=k)
    ds = random_list(shapes, k)
    rows = torch.cat([as_matrix(d).norm(dim=1) for d in ds])
    best = min(-r * float(rows[list(s)].norm()) for s in itertools.combinations(range(7), k))
    vs = c.lmo(ds)
    assert inner(ds, vs) == pytest.approx(best, rel=1e-9)
    assert sum(int((as_matrix(v).norm(dim=1) > 0).sum()) for v in vs) == k


def test_global_lmo_puts_all_atoms_where_the_gradient_is_large():
    """Per layer each tensor gets K of its own; globally a tensor with small gradients gets none."""
    big, small = 10 * torch.randn(6, generator=gen(0)), 0.01 * torch.randn(6, generator=gen(1))
    vs = make_global("k_sparse", [(6,), (6,)], radius=1.0, k=3).lmo([big, small])
    assert int((vs[0] != 0).sum()) == 3 and torch.equal(vs[1], torch.zeros(6))


@pytest.mark.parametrize("name", GLOBAL_CONSTRAINTS)
def test_global_set_of_one_tensor_is_the_per_tensor_set(name):
    shape = (4, 3, 2, 2) if name == "group_k_support" else (12,)
    per_tensor = make(name, shape, radius=1.3, k_frac=0.5)
    k = per_tensor.k if per_tensor.uses_k else None
    c = make_global(name, [shape], radius=1.3, **({"k": k} if k else {}))
    d = torch.randn(shape, generator=gen(2), dtype=torch.float64)
    assert torch.allclose(c.lmo([d])[0], per_tensor.lmo(d))
    assert float(c.norm([d])) == pytest.approx(float(per_tensor.norm(d)))
    assert c.diameter == pytest.approx(per_tensor.diameter)


@pytest.mark.parametrize("name", GLOBAL_CONSTRAINTS)
def test_global_shift_inside_rescales_every_tensor_by_one_factor(name):
    c = make_global_set(name, radius=0.5)
    ws = random_list(GLOBAL_SHAPES, 3, scale=10.0)
    inside = c.shift_inside(ws)
    assert float(c.norm(inside)) == pytest.approx(c.radius, rel=1e-9)
    factors = {round(float(a.norm() / b.norm()), 12) for a, b in zip(inside, ws)}
    assert len(factors) == 1


def test_global_sets_refuse_spectral_kinds_and_round_trip_their_state():
    for name in ("nuclear", "spectral_k_support", "spectral_k_sparse"):
        with pytest.raises(ValueError, match="allowed with constraint_scope 'global': l1, l2, linf, k_sparse, k_support, group_k_support"):
            make_global(name, GLOBAL_SHAPES, radius=1.0, k=2)
    c = make_global("k_sparse", GLOBAL_SHAPES, diameter=3.0, k=5)
    c.set_active_k(c.k_space(c.shape))
    other = make_global("k_sparse", GLOBAL_SHAPES, radius=1.0, k=2)
    other.load_state_dict(c.state_dict())
    assert (other.k, other.k_active, other.diameter) == (5, 12 + 5 + 24, 3.0)
    with pytest.raises(ValueError):
        make_global("k_sparse", GLOBAL_SHAPES[:2], radius=1.0, k=2).load_state_dict(c.state_dict())
    with pytest.raises(ValueError):  # a per-tensor state is not a global one
        other.load_state_dict(CONSTRAINTS.get("k_sparse")((41,), radius=1.0, k=2).state_dict())
