"""End to end: the real Snakemake DAG on configs/tiny.yaml, and the DVC round trip.

A copy of the project trains `tiny` and publishes it as docs/running.md says (its name added to
dvc.yaml's list, `dvc commit`, `dvc push` to the repository's bundled remote, git commit). Fresh
`git clone`s of it then run its commands literally, with HOME inside the temporary
directory: the pulled checkpoints are never retrained, whether the data is prepared before the
pull, after it, or by the same `snakemake` run that evaluates them.
"""
from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from clones import clone, digest, job_inputs, planned_jobs, run

TINY = "--configfile configs/tiny.yaml"
CONFIG = TINY.split()
DATA = "resources/data/mnist_embedded.pt"
RUNS = 4  # 1 arch x 2 methods x 2 seeds
pytestmark = pytest.mark.slow
# The tests that read or rerun in the shared pulled clone run on one worker, one at a time (with
# tests/test_html_report.py); those that only clone or copy the origin spread over the workers.
ON_PULLED = pytest.mark.xdist_group("tiny_pulled")


# `env`, `origin` (tiny trained and published) and `pulled` (a fresh clone after the README's
# one-liner) are fixtures of conftest.py, built once per pytest run.
@pytest.fixture(scope="module")
def trained(origin) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted((origin / "results/tiny/checkpoints").glob("*.pt"))}


def checkpoints(repo: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted((repo / "results/tiny/checkpoints").glob("*.pt"))}


def fresh(origin: Path, tmp_path: Path, env: dict) -> Path:
    repo = clone(origin, tmp_path / "repo", env)
    assert not (repo / "results/tiny/checkpoints").exists() and not (repo / DATA).exists()
    return repo


@ON_PULLED
def test_readme_one_liner_never_retrains(pulled, trained):
    repo, output = pulled
    assert len(trained) == RUNS
    # The data was prepared by that same run, after the pull: the case that used to retrain.
    assert planned_jobs(output, "prepare_data") == 1
    assert planned_jobs(output, "oneshot") == RUNS and planned_jobs(output, "train") == 0
    assert planned_jobs(output, "tables") == 1 and (repo / "results/tiny/summary.csv").stat().st_size > 0
    assert checkpoints(repo) == trained
    assert not (repo / "logs/tiny/train").exists()


@pytest.mark.parametrize("order", ["data, pull, snakemake", "pull, data, snakemake", "dvc pull (all)"])
def test_any_arrival_order_runs_no_train_job(order, origin, trained, env, tmp_path):
    repo = fresh(origin, tmp_path, env)
    steps = {"data": f"snakemake {DATA} --cores 1 {TINY}", "pull": "dvc pull train@tiny"}
    if order == "dvc pull (all)":
        run("dvc pull", repo, env)  # every published experiment: the default's and tiny's
        default = run("snakemake --cores all -n", repo, env)
        assert planned_jobs(default, "train") == 0 and planned_jobs(default, "oneshot") == 8
    else:
        for step in order.split(", ")[:2]:
            run(steps[step], repo, env)
    dry = run(f"snakemake --cores all -n {TINY}", repo, env)
    assert planned_jobs(dry, "oneshot") == RUNS and planned_jobs(dry, "train") == 0
    assert checkpoints(repo) == trained


def test_missing_checkpoint_is_trained_after_its_data(origin, env, tmp_path):
    repo = fresh(origin, tmp_path, env)
    unpulled = run(f"snakemake --cores all -n {TINY}", repo, env)
    assert planned_jobs(unpulled, "train") == RUNS and planned_jobs(unpulled, "prepare_data") == 1
    run("dvc pull train@tiny", repo, env)
    (repo / "results/tiny/checkpoints/resnet20-SGD-s1.pt").unlink()
    dry = run(f"snakemake --cores all -n {TINY}", repo, env)
    assert planned_jobs(dry, "train") == 1 and planned_jobs(dry, "prepare_data") == 1
    assert all(DATA in line for line in job_inputs(dry, "train"))


def test_changed_run_settings_retrain_through_the_params_trigger(origin, env, tmp_path):
    """Where Snakemake recorded the train jobs: unchanged runs stay, a changed hash retrains."""
    repo = tmp_path / "origin"
    shutil.copytree(origin, repo, symlinks=True)
    unchanged = run(f"snakemake --cores all -n {TINY}", repo, env)
    assert planned_jobs(unchanged, "train") == 0
    config = repo / "configs/tiny.yaml"
    config.write_text(config.read_text().replace("params: {lr: 0.05}", "params: {lr: 0.04}"))
    dry = run(f"snakemake --cores all -n {TINY}", repo, env)
    assert planned_jobs(dry, "train") == 2  # SGD, both seeds
    assert dry.count("Params have changed since last execution") >= 2
    assert all(DATA in line for line in job_inputs(dry, "train"))


@ON_PULLED
def test_dag_outputs_hold_sane_numbers(pulled):
    repo = pulled[0]
    rows = list(csv.DictReader(open(repo / "results/tiny/summary.csv")))
    # 4 runs x 3 levels x (1 before BNT + 2 BNT trials)
    assert len(rows) == RUNS * 3 * 3
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 100.0
        assert abs(float(r["sparsity_prunable"]) - float(r["level"])) < 1e-3
        assert float(r["sparsity_total"]) <= float(r["sparsity_prunable"]) + 1e-9
        assert (float(r["relative_distance"]) == 0) == (float(r["level"]) == 0)
    assert {r["method"] for r in rows} == {"SGD", "CrAM+-Multi"}
    for ext in ("pdf", "png"):
        assert (repo / f"figures/tiny/accuracy_vs_sparsity_resnet20_global_magnitude.{ext}").stat().st_size > 1000
    table = (repo / "paper_tables/tiny/resnet20_global_magnitude_bnt.tex").read_text()
    assert "\\toprule" in table and "\\mathbf" in table and table.count(" \\pm ") == 2 * 3


@ON_PULLED
def test_rerun_of_report_is_byte_identical(pulled, env):
    repo = pulled[0]
    outputs = sorted(p for d in ("figures/tiny", "paper_tables/tiny") for p in (repo / d).iterdir())
    outputs.append(repo / "results/tiny/summary.csv")
    before = {p: digest(p) for p in outputs}
    out = run(["snakemake", "--cores", "2", *CONFIG, "--forcerun", "aggregate", "figures", "tables"], repo, env)
    assert planned_jobs(out, "train") == 0
    assert {p: digest(p) for p in outputs} == before


@ON_PULLED
def test_invalid_config_stops_before_any_job(pulled, env, tmp_path):
    repo = pulled[0]
    bad = (repo / "configs/tiny.yaml").read_text().replace("name: cram_plus_multi", "name: adamw_sam")
    (tmp_path / "bad.yaml").write_text(bad)
    proc = subprocess.run(["snakemake", "--cores", "1", "--configfile", str(tmp_path / "bad.yaml")],
                          cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "methods.1.name" in proc.stderr + proc.stdout and "cram_plus" in proc.stderr + proc.stdout
