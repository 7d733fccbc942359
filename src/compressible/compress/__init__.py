"""Compression: pure tensor kernels (masks), one-shot operators, low-rank surgery, accounting."""
from . import oneshot  # noqa: F401  (registration)
