"""Feasible sets of Stochastic Frank-Wolfe and their linear minimization oracles (LMOs).

One class per set. A constraint belongs to exactly one tensor (it lives in that tensor's param
group) and exposes

- ``lmo(d)``: argmin_{v in C} <d, v>, a tensor shaped like ``d``;
- ``radius`` (the radius in the set's own norm) and ``diameter`` (its L2 diameter);
- ``norm(w)``: the gauge of the set (C = {w : norm(w) <= radius});
- ``shift_inside(w)``: a feasible point (w rescaled onto the boundary when outside).

Sets with a size parameter K keep their L2 diameter fixed when K changes (``set_active_k``), so the
delayed-K schedule of compression-aware SFW trains first with K = n, then with K, at one diameter.
Matrices: conv weights are seen as c_out x (c_in*kh*kw), vectors as n x 1.
"""
from __future__ import annotations

import math

import torch

from ..compress.masks import row_norms
from ..compress.matrices import as_matrix, matrix_shape, top_singular_triplets
from ..registry import CONSTRAINTS

TINY = 1e-12  # below this a direction counts as zero (the LMO then returns 0, a feasible point)


def top_k_indices(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest |x_i| (flat).

    The LMOs select with ``topk`` rather than ``masks.topk_mask``: they need indices for a sparse
    scatter (one selection pass, so an SFW step costs about an SGD step).
    """
    return x.reshape(-1).abs().topk(k, sorted=False).indices


def scatter_rows(values: torch.Tensor, index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A tensor shaped like ``like``: ``values`` at ``index`` along dim 0, zero elsewhere."""
    return torch.zeros_like(like).index_put_((index,), values)


def scatter_flat(values: torch.Tensor, index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A tensor shaped like ``like``: ``values`` at flat ``index``, zero elsewhere."""
    return scatter_rows(values, index, like.reshape(-1)).view_as(like)


def top_k_l2(x: torch.Tensor, k: int) -> torch.Tensor:
    """sqrt of the sum of the k largest squares: the dual norm of the k-support norm."""
    return x.reshape(-1).abs().topk(k).values.norm()


def k_support_norm(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-support norm of Argyriou et al. (2012), Prop. 2.1.

    With z = |x| sorted decreasingly, the unique j in {0..k-1} with
    z_{j-1} > T_j/(k-j) >= z_j (z_{-1} = inf, T_j = sum_{i>=j} z_i) gives
    norm^2 = sum_{i<j} z_i^2 + T_j^2/(k-j).
    """
    z = x.reshape(-1).abs().double().sort(descending=True).values
    k = min(k, z.numel())
    tail = z.flip(0).cumsum(0).flip(0)[:k]  # T_j
    head_sq = torch.cat([z.new_zeros(1), (z[: k - 1] ** 2).cumsum(0)])  # sum_{i<j} z_i^2
    avg = tail / torch.arange(k, 0, -1, dtype=z.dtype, device=z.device)  # T_j/(k-j)
    left = torch.cat([z.new_full((1,), math.inf), z[: k - 1]])
    slack = 1e-9 * z[0].clamp_min(TINY)
    valid = (left + slack > avg) & (avg + slack >= z[:k])
    j = int(valid.nonzero()[-1]) if valid.any() else k - 1  # numerically ties: any valid j agrees
    return (head_sq[j] + tail[j] ** 2 / (k - j)).sqrt().to(x.dtype)


def _register(name: str):
    """Register a constraint class under ``name`` and remember the name on the class."""

    def decorator(cls):
        cls.name = name
        return CONSTRAINTS.register(name)(cls)

    return decorator


class Constraint:
    """A feasible set for one tensor of shape ``shape``, given by its radius or its L2 diameter."""

    name = "constraint"
    uses_k = False

    def __init__(self, shape, *, radius: float | None = None, diameter: float | None = None,
                 k: int | None = None):
        self.shape = tuple(shape)
        self.k = self._check_k(k)
        self.k_active = self.k
        if (radius is None) == (diameter is None):
            raise ValueError(f"{self.name}: give exactly one of radius and diameter")
        per_radius = self.diameter_per_radius(self.k)
        self.diameter = float(diameter) if diameter is not None else float(radius) * per_radius

    @classmethod
    def k_space(cls, shape) -> int:
        """How many atoms K counts (entries, filters or singular values)."""
        return math.prod(shape)

    def _check_k(self, k):
        if not self.uses_k:
            if k is not None:
                raise ValueError(f"{self.name} takes no k")
            return None
        n = self.k_space(self.shape)
        if k is None or not 1 <= int(k) <= n:
            raise ValueError(f"{self.name} needs 1 <= k <= {n}, got {k}")
        return int(k)

    def diameter_per_radius(self, k) -> float:
        """L2 diameter of the set with radius 1."""
        return 2.0

    @property
    def radius(self) -> float:
        return self.diameter / self.diameter_per_radius(self.k_active)

    def set_active_k(self, k: int | None) -> None:
        """Use ``k`` atoms from now on at the same L2 diameter (delayed-K schedule)."""
        if self.uses_k:
            self.k_active = min(int(k), self.k_space(self.shape))

    def lmo(self, d: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def norm(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def shift_inside(self, w: torch.Tensor) -> torch.Tensor:
        """Rescale ``w`` onto the boundary if it lies outside (a feasible point, not a projection)."""
        norm = float(self.norm(w))
        return w * (self.radius / norm) if norm > self.radius else w

    def state_dict(self) -> dict:
        """Plain values only, so checkpoints load with ``weights_only=True``."""
        return {"name": self.name, "shape": list(self.shape), "k": self.k,
                "k_active": self.k_active, "diameter": self.diameter}

    def load_state_dict(self, state: dict) -> None:
        if state["name"] != self.name or tuple(state["shape"]) != self.shape:
            raise ValueError(f"saved constraint {state['name']} {state['shape']} does not match "
                             f"{self.name} {list(self.shape)}")
        self.k, self.k_active, self.diameter = state["k"], state["k_active"], state["diameter"]

    def __repr__(self) -> str:
        k = f", k={self.k_active}" if self.uses_k else ""
        return f"{type(self).__name__}({list(self.shape)}, radius={self.radius:.4g}{k})"


@_register("l1")
class L1Ball(Constraint):
    """{w : ||w||_1 <= r}; vertices +-r e_i."""

    def lmo(self, d):
        flat = d.reshape(-1)
        i = flat.abs().argmax().reshape(1)  # stays on the device: index_put, no host read
        return scatter_flat(flat[i].sign() * -self.radius, i, d)

    def norm(self, w):
        return w.abs().sum()


@_register("l2")
class L2Ball(Constraint):
    """{w : ||w||_2 <= r}; the LMO is -r d/||d||."""

    def lmo(self, d):
        return d * (-self.radius / d.norm().clamp_min(TINY))

    def norm(self, w):
        return w.norm()


@_register("linf")
class LinfBall(Constraint):
    """{w : ||w||_inf <= r}; the LMO is -r sign(d); L2 diameter 2 r sqrt(n)."""

    def diameter_per_radius(self, k):
        return 2.0 * math.sqrt(math.prod(self.shape))

    def lmo(self, d):
        return d.sign() * -self.radius

    def norm(self, w):
        return w.abs().max()


@_register("k_sparse")
class KSparsePolytope(Constraint):
    """conv{v : ||v||_0 = K, v_i in {0, +-r}} = B_inf(r) cap B_1(K r) (SFW-pruning, Sec. 3).

    LMO (Miao et al.): v_i = -r sign(d_i) on the K largest |d_i|, 0 elsewhere; L2 diameter 2 r sqrt(K).
    """

    uses_k = True

    def diameter_per_radius(self, k):
        return 2.0 * math.sqrt(k)

    def lmo(self, d):
        index = top_k_indices(d, self.k_active)
        return scatter_flat(d.reshape(-1)[index].sign() * -self.radius, index, d)

    def norm(self, w):
        return torch.maximum(w.abs().max(), w.abs().sum() / self.k_active)


@_register("k_support")
class KSupportNormBall(Constraint):
    """conv{v : ||v||_0 <= k, ||v||_2 <= r}: the LMO keeps d's k largest entries, scaled to norm r."""

    uses_k = True

    def lmo(self, d):
        index = top_k_indices(d, self.k_active)
        kept = d.reshape(-1)[index]
        return scatter_flat(kept * (-self.radius / kept.norm().clamp_min(TINY)), index, d)

    def norm(self, w):
        return k_support_norm(w, self.k_active)


@_register("group_k_support")
class GroupKSupportNormBall(Constraint):
    """k-support norm ball over the filters (rows) of a weight seen as c_out x (c_in*kh*kw).

    LMO: the k rows of d with the largest L2 norm, scaled jointly to Frobenius norm r.
    """

    uses_k = True

    @classmethod
    def k_space(cls, shape):
        return shape[0]

    def lmo(self, d):
        rows = as_matrix(d)
        index = top_k_indices(row_norms(rows), self.k_active)
        kept = rows[index]
        return scatter_rows(kept * (-self.radius / kept.norm().clamp_min(TINY)), index, rows).view_as(d)

    def norm(self, w):
        return k_support_norm(row_norms(as_matrix(w)), self.k_active)


@_register("nuclear")
class NuclearNormBall(Constraint):
    """{W : ||W||_* <= r}; the LMO is -r u_1 v_1^T (top singular pair of d)."""

    def lmo(self, d):
        u, s, vh = top_singular_triplets(as_matrix(d), 1)
        # a zero direction gives 0 (a feasible point), chosen on the device: no host read
        return torch.where(s[0] > TINY, (u @ vh).mul_(-self.radius), 0.0).view_as(d)

    def norm(self, w):
        return torch.linalg.matrix_norm(as_matrix(w), ord="nuc")


@_register("spectral_k_support")
class SpectralKSupportNormBall(Constraint):
    """k-support norm of the singular values (compression-aware SFW, Sec. 3).

    Lemma 3.1: W = -r ||sigma(Sigma_k)||_2^-1 U_k Sigma_k V_k^T, only the top-k triplets of d.
    """

    uses_k = True

    @classmethod
    def k_space(cls, shape):
        return min(matrix_shape(shape))

    def lmo(self, d):
        u, s, vh = top_singular_triplets(as_matrix(d), self.k_active)
        scale = -self.radius / s.norm().clamp_min(TINY)
        return ((u * (s * scale)) @ vh).view_as(d)

    def norm(self, w):
        return k_support_norm(torch.linalg.svdvals(as_matrix(w)), self.k_active)


@_register("spectral_k_sparse")
class SpectralKSparsePolytope(Constraint):
    """K-sparse polytope of the singular values: {W : sigma_max <= r, ||sigma||_1 <= K r}.

    LMO: -r U_k V_k^T (K singular values at r); L2 diameter 2 r sqrt(K).
    """

    uses_k = True
    k_space = SpectralKSupportNormBall.k_space

    def diameter_per_radius(self, k):
        return 2.0 * math.sqrt(k)

    def lmo(self, d):
        u, _, vh = top_singular_triplets(as_matrix(d), self.k_active)
        return (u @ vh).mul_(-self.radius).view_as(d)

    def norm(self, w):
        sigma = torch.linalg.svdvals(as_matrix(w))
        return torch.maximum(sigma.max(), sigma.sum() / self.k_active)
