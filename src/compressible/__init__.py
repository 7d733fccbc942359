"""compressible: reproducible compression-aware training (CrAM, SFW-pruning, compression-aware SFW)."""
__version__ = "0.1.0"
