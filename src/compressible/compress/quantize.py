"""Symmetric per-output-channel k-bit quantization, round to nearest (CrAM App. C.7, Table 16).

Weights keep their dequantized float values, so at most 2^k − 1 distinct values remain per
channel. Level: bits.
"""
from __future__ import annotations

import numbers

from . import masks
from .base import Compressed, Compressor, Tensors, register


class Quantize(Compressor):
    name = "quantize"
    level_kind = "bits"
    allowed = "an integer number of bits from 2 to 16, e.g. 4 or 8"

    def check(self, level: object) -> int:
        if isinstance(level, numbers.Integral) and not isinstance(level, bool) and 2 <= level <= 16:
            return int(level)
        raise ValueError(f"level {level!r} not allowed; allowed: {self.allowed}")

    def compress(self, tensors: Tensors, level: int) -> Compressed:
        return [masks.quantize_symmetric(t, level) for t in tensors], None


register(Quantize())
