"""How the rules start a job (torch-free: the Snakefile imports it at parse time)."""
from __future__ import annotations

import shlex
import sys

# The interpreter running Snakemake, not whatever `python` is first on PATH: `.venv/bin/snakemake`
# then works with nothing activated (its jobs import the package it was installed with).
PYTHON = shlex.quote(sys.executable)


def launcher(gpus_per_run: int) -> str:
    """What follows the interpreter: the package, or ``torch.distributed.run`` (torchrun) with
    one process per GPU (``training.gpus_per_run``)."""
    if gpus_per_run == 1:
        return "-m compressible"
    return f"-m torch.distributed.run --standalone --nproc_per_node={gpus_per_run} -m compressible"
