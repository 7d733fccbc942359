"""Optimizers by method name (METHODS registry): SGD, the SAM/CrAM family, the Frank-Wolfe family."""
from . import baseline, masked, methods_cram, methods_sfw  # noqa: F401  (registration)
