"""Compression: pure tensor kernels (masks, matrices), the compressors (one file each, shared by
CrAM's training and the one-shot stage), low-rank surgery, the prunable sets, accounting."""
from . import filters, magnitude, nm, obert, prunable, quantize, rank  # noqa: F401  (registration)
