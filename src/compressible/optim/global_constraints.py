"""Global constraints: one feasible set over several tensors (compression-aware SFW's "global"
option), next to the per-tensor sets of ``constraints.py``.

The tensors of one global set are read as one vector, their concatenation: the L_p balls, the
K-sparse polytope and the k-support ball are the per-tensor sets over that vector, with K
counted over the total number of entries; the group-k-support ball takes the filters (rows of
each tensor seen as c_out x (c_in*kh*kw)) of every tensor as its groups, K counted over all of
them. The LMO then chooses its K entries or filters across tensors: a layer may get many, or
none. Spectral and nuclear sets have no global form (the compression-aware SFW code refuses it
for decompositions too): the tensors form no single matrix.

A global set exposes the per-tensor interface on lists of tensors: ``lmo(ds)``, ``norm(ws)``,
``shift_inside(ws)``, ``radius``, ``diameter``, ``k``/``k_active``/``set_active_k``, ``state_dict``.
"""
from __future__ import annotations

import math

import torch

from ..compress.masks import row_norms
from ..compress.matrices import as_matrix
from ..registry import CONSTRAINTS
from .constraints import TINY, k_support_norm, top_k_indices

ENTRYWISE = ("l1", "l2", "linf", "k_sparse", "k_support")
GROUPED = ("group_k_support",)
GLOBAL_CONSTRAINTS = ENTRYWISE + GROUPED


def global_k_space(name: str, shapes) -> int:
    """How many atoms K counts over all ``shapes``: entries, or filters for group-k-support."""
    cls = CONSTRAINTS.get(name)
    return sum(cls.k_space(tuple(s)) for s in shapes)


def make_global(name: str, shapes, **size) -> "GlobalConstraint":
    """The global form of constraint ``name`` over tensors of ``shapes`` (``size``: radius or
    diameter, and k for the sets that use it)."""
    if name not in GLOBAL_CONSTRAINTS:
        raise ValueError(f"constraint {name!r} has no global form (its tensors form no single matrix); "
                         f"allowed with constraint_scope 'global': {', '.join(GLOBAL_CONSTRAINTS)}")
    cls = GlobalGroupKSupport if name in GROUPED else GlobalEntrywise
    return cls(name, shapes, **size)


class GlobalConstraint:
    """A feasible set of the per-tensor kind ``name`` over the concatenation of ``shapes``."""

    spans_tensors = True

    def __init__(self, name: str, shapes, **size):
        self.name = name
        self.shapes = [tuple(s) for s in shapes]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.base = self._base(**size)

    def _base(self, **size):
        raise NotImplementedError

    # the sizes (radius, diameter, K) are the base set's
    uses_k = property(lambda self: self.base.uses_k)
    k = property(lambda self: self.base.k)
    k_active = property(lambda self: self.base.k_active)
    radius = property(lambda self: self.base.radius)
    diameter = property(lambda self: self.base.diameter)

    shape = property(lambda self: self.base.shape)  # the concatenation's (entries or filters)

    def k_space(self, shape) -> int:
        return self.base.k_space(shape)

    def set_active_k(self, k) -> None:
        self.base.set_active_k(k)

    @torch.no_grad()
    def shift_inside(self, ws: list) -> list:
        """Rescale all tensors by one factor onto the boundary when outside (as per tensor)."""
        norm = float(self.norm(ws))
        return [w * (self.radius / norm) for w in ws] if norm > self.radius else list(ws)

    def state_dict(self) -> dict:
        return {**self.base.state_dict(), "scope": "global", "shapes": [list(s) for s in self.shapes]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("scope") != "global" or [tuple(s) for s in state["shapes"]] != self.shapes:
            raise ValueError(f"saved constraint {state['name']} (scope {state.get('scope', 'layer')}) does not "
                             f"match the global {self.name} over {len(self.shapes)} tensors")
        self.base.load_state_dict({k: v for k, v in state.items() if k not in ("scope", "shapes")})

    def __repr__(self) -> str:
        return f"Global{self.base!r} over {len(self.shapes)} tensors"


class GlobalEntrywise(GlobalConstraint):
    """An entry-wise set (L_p ball, K-sparse polytope, k-support ball) on the concatenation."""

    def _base(self, **size):
        return CONSTRAINTS.get(self.name)((sum(self.sizes),), **size)

    def _flat(self, xs: list) -> torch.Tensor:
        return torch.cat([x.reshape(-1) for x in xs])

    def lmo(self, ds: list) -> list:
        v = self.base.lmo(self._flat(ds))
        return [part.view(s) for part, s in zip(v.split(self.sizes), self.shapes)]

    def norm(self, ws: list) -> torch.Tensor:
        return self.base.norm(self._flat(ws))


class GlobalGroupKSupport(GlobalConstraint):
    """The group-k-support ball whose groups are the filters of every tensor: the LMO keeps the
    k filters with the largest gradient norm over all layers, scaled jointly to Frobenius norm r."""

    def _base(self, **size):
        return CONSTRAINTS.get(self.name)((global_k_space(self.name, self.shapes), 1), **size)

    def _row_norms(self, xs: list) -> torch.Tensor:
        return torch.cat([row_norms(as_matrix(x)) for x in xs])

    def lmo(self, ds: list) -> list:
        norms = self._row_norms(ds)
        index = top_k_indices(norms, self.k_active).sort().values  # in position order, as a mask selects
        chosen = torch.zeros_like(norms, dtype=torch.bool).index_fill_(0, index, True)
        scale = -self.radius / norms[index].norm().clamp_min(TINY)
        masks = chosen.split([s[0] for s in self.shapes])
        return [d * (mask.view(-1, *([1] * (d.dim() - 1))) * scale) for d, mask in zip(ds, masks)]

    def norm(self, ws: list) -> torch.Tensor:
        return k_support_norm(self._row_norms(ws), self.k_active)
