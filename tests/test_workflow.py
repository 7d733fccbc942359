"""End to end: the real Snakemake DAG on configs/tiny.yaml, and the DVC round trip.

A copy of the project is trained and pushed to the repo's default DVC remote (HOME points into
a temporary directory, so `~/.cache/...` is private to the test); a fresh `git clone` of it
pulls the checkpoints, prepares the data *after* the pull, and must not retrain anything.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ["--configfile", "configs/tiny.yaml"]
pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_project(dest: Path) -> None:
    """The working tree as git sees it (tracked + untracked, not ignored), as a new repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file() or src.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("home")
    # The venv's snakemake and dvc, whichever way pytest was started.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    e = dict(os.environ, PATH=path, HOME=str(home), DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t",
             GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    return e


@pytest.fixture(scope="module")
def clone(tmp_path_factory, env) -> Path:
    """Train in a first copy, commit + push the checkpoints, then clone and pull them."""
    origin = tmp_path_factory.mktemp("origin")
    copy_project(origin)
    run(["git", "init", "-q"], origin, env)
    run(["snakemake", "train_all", "--cores", "2", *CONFIG], origin, env)
    run(["dvc", "commit", "-f", "train@tiny"], origin, env)
    run(["dvc", "push", "train@tiny"], origin, env)
    run(["git", "add", "-A"], origin, env)
    run(["git", "commit", "-qm", "trained tiny"], origin, env)
    fresh = tmp_path_factory.mktemp("fresh") / "repo"
    run(["git", "clone", "-q", str(origin), str(fresh)], fresh.parent, env)
    assert not (fresh / "results/tiny/checkpoints").exists()
    run(["dvc", "pull", "train@tiny"], fresh, env)
    return fresh


def test_pulled_checkpoints_are_never_retrained(clone, env):
    checkpoints = sorted((clone / "results/tiny/checkpoints").glob("*.pt"))
    assert len(checkpoints) == 4  # 1 arch x 2 methods x 2 seeds
    before = {p.name: digest(p) for p in checkpoints}
    # The data is prepared after the pull, so it is newer than every checkpoint.
    run(["snakemake", "resources/data/mnist_embedded.pt", "--cores", "2", *CONFIG], clone, env)
    dry = run(["snakemake", "train_all", "-n", *CONFIG], clone, env)
    assert "Nothing to be done" in dry or "train" not in dry
    run(["snakemake", "--cores", "2", *CONFIG], clone, env)
    assert {p.name: digest(p) for p in checkpoints} == before
    assert not (clone / "logs/tiny/train").exists()  # no training job ran here


def test_dag_outputs_hold_sane_numbers(clone):
    rows = list(csv.DictReader(open(clone / "results/tiny/summary.csv")))
    # 4 runs x 3 levels x (1 before BNT + 2 BNT trials)
    assert len(rows) == 4 * 3 * 3
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 100.0
        assert abs(float(r["sparsity_prunable"]) - float(r["level"])) < 1e-3
        assert float(r["sparsity_total"]) <= float(r["sparsity_prunable"]) + 1e-9
        assert (float(r["relative_distance"]) == 0) == (float(r["level"]) == 0)
    assert {r["method"] for r in rows} == {"SGD", "CrAM+-Multi"}
    for ext in ("pdf", "png"):
        assert (clone / f"figures/tiny/accuracy_vs_sparsity_resnet20_global_magnitude.{ext}").stat().st_size > 1000
    table = (clone / "paper_tables/tiny/resnet20_global_magnitude_bnt.tex").read_text()
    assert "\\toprule" in table and "\\mathbf" in table and table.count(" \\pm ") == 2 * 3


def test_rerun_of_report_is_byte_identical(clone, env):
    outputs = sorted(p for d in ("figures/tiny", "paper_tables/tiny") for p in (clone / d).iterdir())
    outputs.append(clone / "results/tiny/summary.csv")
    before = {p: digest(p) for p in outputs}
    run(["snakemake", "--cores", "2", *CONFIG, "--forcerun", "aggregate", "figures", "tables"], clone, env)
    assert {p: digest(p) for p in outputs} == before


def test_invalid_config_stops_before_any_job(clone, env, tmp_path):
    bad = (clone / "configs/tiny.yaml").read_text().replace("name: cram_plus_multi", "name: adamw_sam")
    (tmp_path / "bad.yaml").write_text(bad)
    proc = subprocess.run(["snakemake", "--cores", "1", "--configfile", str(tmp_path / "bad.yaml")],
                          cwd=clone, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "methods.1.name" in proc.stderr + proc.stdout and "cram_plus" in proc.stderr + proc.stdout
