"""Fresh clones of the project for the DVC tests: a new git repository holding the working tree
as git sees it, clones of it, the commands run in them, and the jobs Snakemake plans or runs."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = "--configfile configs/tiny.yaml"  # the end-to-end tests' experiment
DATA = "resources/data/mnist_embedded.pt"
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


def publish(repo: Path, experiment: str, env: dict) -> None:
    """docs/running.md, "Publishing an experiment": list it in dvc.yaml, commit, push, git commit."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())
    spec["stages"]["train"]["foreach"][experiment] = {"config": f"configs/{experiment}.yaml"}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run(["dvc", "commit", "-f", f"train@{experiment}"], repo, env)
    run(["dvc", "push", f"train@{experiment}"], repo, env)
    commit(repo, env, f"checkpoints of {experiment}")


def venv_only(env: dict) -> tuple[str, dict]:
    """The running interpreter's `snakemake` by absolute path, and a PATH holding no Python of
    the project (README: `.venv/bin/snakemake` works with nothing activated)."""
    bare = os.pathsep.join(d for d in ("/usr/bin", "/bin") if Path(d).is_dir())
    python = shutil.which("python", path=bare) or shutil.which("python3", path=bare)
    assert python is None or not Path(python).resolve().is_relative_to(Path(sys.prefix).resolve())
    return str(Path(sys.executable).parent / "snakemake"), dict(env, PATH=bare)


def fresh(origin: Path, tmp_path: Path, env: dict) -> Path:
    """A clone of the published origin: no checkpoints, no data yet."""
    repo = clone(origin, tmp_path / "repo", env)
    assert not (repo / "results/tiny/checkpoints").exists() and not (repo / DATA).exists()
    return repo
