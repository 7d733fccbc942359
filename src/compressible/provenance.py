"""Provenance stamped on every result file: config, commit, versions, device, seed, wall time."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("compressible", "torch", "torchvision", "numpy", "mlxtend", "snakemake", "dvc")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def provenance(config: dict, seed: int | None, wall_time_s: float, device: str) -> dict[str, Any]:
    from .numerics import describe

    return {
        "config": config, "git_commit": git_commit(), "packages": package_versions(),
        "python": platform.python_version(), "device": device, "seed": seed,
        "wall_time_s": round(wall_time_s, 3), **describe(),
    }


def write_json_atomic(path: str | Path, payload: dict) -> None:
    """Write to a temporary name and rename: a killed job never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
