"""Fresh clones of the project for the DVC tests: a new git repository holding the working tree
as git sees it, clones of it, the commands run in them, and the jobs Snakemake plans or runs."""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GIT_USER = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}


def isolated_env(home: Path) -> dict:
    """HOME inside the test's temporary directory (DVC's global config and site cache live
    there); the venv's snakemake and dvc first on PATH, whichever way pytest was started."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return dict(os.environ, PATH=path, HOME=str(home), DVC_NO_ANALYTICS="1", **GIT_USER)


def run(cmd: list[str] | str, cwd: Path, env: dict) -> str:
    """A command (a string runs through bash, as a README line would); its stdout + stderr."""
    args = ["bash", "-c", cmd] if isinstance(cmd, str) else cmd
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    shown = cmd if isinstance(cmd, str) else " ".join(cmd)
    assert proc.returncode == 0, f"{shown} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def digest(path: Path, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def copy_files(dest: Path) -> Path:
    """The working tree as git sees it (tracked + untracked, not ignored), copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        src = ROOT / name
        if src.is_file() or src.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)
    return dest


def copy_project(dest: Path, env: dict) -> Path:
    """:func:`copy_files`, committed in a new repo."""
    copy_files(dest)
    run(["git", "init", "-q"], dest, env)
    commit(dest, env, "project")
    return dest


def commit(repo: Path, env: dict, message: str) -> None:
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", message], repo, env)


def clone(origin: Path, dest: Path, env: dict) -> Path:
    run(["git", "clone", "-q", str(origin), str(dest)], dest.parent, env)
    return dest


def planned_jobs(output: str, rule: str) -> int:
    """Jobs of ``rule`` in Snakemake's output (dry run: planned; real run: executed)."""
    return len(re.findall(rf"^\s*(?:local)?rule {re.escape(rule)}:\s*$", output, flags=re.M))


def job_inputs(output: str, rule: str) -> list[str]:
    """The ``input:`` line of each job of ``rule`` in Snakemake's output."""
    blocks = re.split(r"^\s*(?:local)?rule ", output, flags=re.M)[1:]
    return [re.search(r"^\s*input: (.*)$", b, flags=re.M).group(1)
            for b in blocks if b.startswith(f"{rule}:")]


# --- one build per pytest run, shared by the parallel workers ----------------------------------
def run_root(factory: pytest.TempPathFactory) -> Path:
    """This pytest run's temporary directory, the same for every parallel worker (theirs lie in
    it: ``<basetemp>/popen-gwN``)."""
    root = factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def once_per_run(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The directory ``name`` that ``build`` fills once per pytest run, by whichever worker asks
    first while the others wait for it (in :func:`run_root`); a build that failed is started
    again by the next worker that asks."""
    root = run_root(factory)
    target, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            done.touch()
    return target


TINY = ["--configfile", "configs/tiny.yaml"]


def prepared_data(factory: pytest.TempPathFactory) -> Path:
    """resources/data with the embedded MNIST prepared by its Snakemake rule (a local job), once
    per pytest run: projects that copy it in find prepare_data done (every MNIST config shares
    the file; subsets are cut when it is loaded)."""
    def build(root: Path) -> None:
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        run(["snakemake", "resources/data/mnist_embedded.pt", "--cores", "1", *TINY], copy_files(root / "project"), env)
    return once_per_run(factory, "prepared-data", build) / "project/resources/data"


def with_prepared_data(project: Path, factory: pytest.TempPathFactory) -> Path:
    shutil.copytree(prepared_data(factory), project / "resources/data")
    return project


@dataclass(frozen=True)
class TinyRuns:
    """configs/tiny.yaml trained and published in ``origin``; pulled into a fresh clone, whose
    one `snakemake` run evaluated everything (its output in ``log``); that run's summary and
    tables copied, untouched, to ``outputs`` (the reference a run elsewhere must equal)."""

    origin: Path
    pulled: Path
    log: str
    outputs: Path


def tiny_runs(factory: pytest.TempPathFactory) -> TinyRuns:
    root = once_per_run(factory, "tiny-runs", build_tiny_runs)
    return TinyRuns(root / "origin", root / "pulled", (root / "pulled.log").read_text(), root / "outputs")


def build_tiny_runs(root: Path) -> None:
    env = isolated_env(root / "home")
    origin = copy_project(root / "origin", env)
    snakemake, bare = venv_only(env)
    run([snakemake, "train_all", "--cores", "2", *TINY], origin, bare)
    publish(origin, "tiny", env)
    pulled = clone(origin, root / "pulled", env)
    run("dvc pull train@tiny", pulled, env)
    (root / "pulled.log").write_text(run([snakemake, "--cores", "2", *TINY], pulled, bare))
    (root / "outputs/results/tiny").mkdir(parents=True)
    shutil.copy2(pulled / "results/tiny/summary.csv", root / "outputs/results/tiny")
    shutil.copytree(pulled / "paper_tables/tiny", root / "outputs/paper_tables/tiny")


def venv_only(env: dict) -> tuple[str, dict]:
    """The running interpreter's `snakemake` by absolute path, and a PATH holding no Python of
    the project (README: `.venv/bin/snakemake` works with nothing activated)."""
    bare = os.pathsep.join(d for d in ("/usr/bin", "/bin") if Path(d).is_dir())
    python = shutil.which("python", path=bare) or shutil.which("python3", path=bare)
    assert python is None or not Path(python).resolve().is_relative_to(Path(sys.prefix).resolve())
    return str(Path(sys.executable).parent / "snakemake"), dict(env, PATH=bare)


def publish(repo: Path, experiment: str, env: dict) -> None:
    """docs/running.md, "Publishing an experiment": list it in dvc.yaml, commit, push, git commit."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    spec["stages"]["train"]["foreach"][experiment] = {"config": f"configs/{experiment}.yaml"}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run(["dvc", "commit", "-f", f"train@{experiment}"], repo, env)
    run(["dvc", "push", f"train@{experiment}"], repo, env)
    commit(repo, env, f"checkpoints of {experiment}")
