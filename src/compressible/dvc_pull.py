"""Which experiments have published checkpoints, and pulling them with a clear answer.

An experiment's checkpoints are published when `dvc.lock` holds its stage `train@<experiment>`
(the hash of `results/<experiment>/checkpoints` that `dvc push` sent to a remote). `dvc pull`
of any other experiment fails with DVC's own message; :func:`pull` names the published ones
instead, before DVC runs.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

STAGE = "train@"


class NotPublished(ValueError):
    """An experiment whose checkpoints are not in dvc.lock."""


def published(root: str | Path = ".") -> dict[str, str]:
    """Experiment -> the DVC hash of its checkpoints directory, for each locked train stage."""
    lock = Path(root) / "dvc.lock"
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.exists() else {}
    return {name[len(STAGE):]: stage["outs"][0]["md5"]
            for name, stage in sorted(stages.items()) if name.startswith(STAGE) and stage.get("outs")}


def check_published(experiments: list[str], root: str | Path = ".") -> list[str]:
    """The experiments to pull (all published ones when none is named); raises for the others."""
    available = published(root)
    missing = [e for e in experiments if e not in available]
    if missing:
        listed = ", ".join(available) or "none"
        raise NotPublished(
            f"no published checkpoints for {', '.join(missing)}: dvc.lock has no stage "
            f"{', '.join(STAGE + e for e in missing)} (published: {listed}). Train them with "
            f"`snakemake --cores all --configfile configs/<experiment>.yaml`.")
    return experiments or list(available)


def pull(experiments: list[str], root: str | Path = ".") -> int:
    """`dvc pull train@<experiment>` for each experiment, after checking that it is published."""
    targets = [STAGE + e for e in check_published(experiments, root)]
    if not targets:
        raise NotPublished("dvc.lock holds no train stage: no experiment has published checkpoints")
    print(f"pulling {', '.join(targets)}", flush=True)
    return subprocess.run(["dvc", "pull", *targets], cwd=root).returncode
