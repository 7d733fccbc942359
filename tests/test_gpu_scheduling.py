"""`--resources gpu=N` with training.jobs_per_gpu: how many GPU jobs Snakemake runs at once.

Real Snakemake runs of a two-run config whose jobs declare one GPU each (they train on the CPU
here: `device: auto` finds none). With one job per GPU the two train jobs start one after the
other; with two per GPU they start together."""
from __future__ import annotations

import re

import pytest
import yaml

from clones import copy_files, isolated_env, run, with_prepared_data

pytestmark = pytest.mark.slow


def started_together(tmp_path, factory, jobs_per_gpu: int) -> list[int]:
    project = with_prepared_data(copy_files(tmp_path / f"p{jobs_per_gpu}"), factory)
    raw = yaml.safe_load((project / "configs/tiny.yaml").read_text())
    raw["methods"] = raw["methods"][:2]
    raw["seeds"] = raw["seeds"][:1]
    raw["training"].update(epochs=1, gpus=1, jobs_per_gpu=jobs_per_gpu)
    (project / "configs/gpu.yaml").write_text(yaml.safe_dump(raw))
    env = isolated_env(tmp_path)
    out = run("snakemake train_all --profile workflow/profiles/default --cores 2 --resources gpu=1 "
              "--configfile configs/gpu.yaml", project, env)
    assert out.count("rule train:") == 2, out
    # Snakemake's scheduler says how many jobs each round starts
    return [int(n) for n in re.findall(r"Execute (\d+) jobs", out)]


def test_one_job_per_gpu_runs_them_in_turn(tmp_path, tmp_path_factory):
    assert max(started_together(tmp_path, tmp_path_factory, 1)) == 1


def test_two_jobs_per_gpu_share_it(tmp_path, tmp_path_factory):
    assert 2 in started_together(tmp_path, tmp_path_factory, 2)
