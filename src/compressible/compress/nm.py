"""N:M semi-structured sparsity (CrAM App. C.5, Tables 10 and 14): level "N:M", e.g. "2:4".

Groups of M run along input channels (``masks.nm_mask``); tensors whose input dimension is not a
multiple of M (a 3-channel first conv), and 1-D tensors, stay dense. The CrAM authors' code
differs there: it prunes every conv, the first included, grouping M consecutive entries in
(out, kh, kw, in) order, which then straddle kernel positions.
"""
from __future__ import annotations

from . import masks
from .base import Compressed, Compressor, Tensors, apply_masks, register


class NM(Compressor):
    name = "nm"
    level_kind = "pattern"
    allowed = "a string 'N:M' with 0 < N < M, e.g. '2:4' or '4:8' (quote it in YAML)"

    def check(self, level: object) -> tuple[int, int]:
        parts = level.split(":") if isinstance(level, str) else []
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            n, m = (int(p) for p in parts)
            if 0 < n < m:
                return n, m
        hint = " (YAML reads an unquoted 2:4 as the base-60 integer 124)" if isinstance(level, int) else ""
        raise ValueError(f"level {level!r} not allowed; allowed: {self.allowed}{hint}")

    def compress(self, tensors: Tensors, level: tuple[int, int]) -> Compressed:
        n, m = level
        return apply_masks(tensors, [masks.nm_mask(t, n, m) for t in tensors])


register(NM())
