"""One training run and what it needs: the loop, resume state, stop signals, divergence checks, processes."""
