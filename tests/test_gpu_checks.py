"""benchmarks/gpu_checks.sh --dry-run on a machine like the GPU machines: Python, torch, torchvision
and their dependencies only, plus the wheels benchmarks/gpu_wheels.sh downloads (PyPI needed; the
test is skipped, saying so, where it cannot be reached).

The torch-only environment is a fresh venv (without pip's own packages and without the shared
venv's site-packages) whose site-packages holds symlinks to torch, torchvision and the packages
they import, taken from this interpreter's site-packages: nothing else of the project's stack
(jsonschema, its dependencies, PyYAML, pytest) is importable there unless the wheels bring it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# torch, torchvision and what they import (as installed by pip with them), plus pip (the GPU
# machines have it) to install the wheels with
TORCH_ONLY = ("torch", "torchgen", "functorch", "torchvision", "torchvision.libs", "numpy", "numpy.libs",
              "PIL", "pillow.libs", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "fsspec",
              "filelock", "typing_extensions.py", "nvidia", "triton", "cuda", "pip")


def torch_only_venv(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = next((folder / "lib").glob("python3*/site-packages"))
    for entry in ours.iterdir():
        if entry.name in TORCH_ONLY or entry.name.split("-")[0].lower() in TORCH_ONLY:
            (theirs / entry.name).symlink_to(entry)
    return folder / "bin"


def test_dry_run_imports_everything_with_only_torch_and_the_carried_wheels(tmp_path):
    wheels = tmp_path / "wheels"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    got = subprocess.run(["bash", "benchmarks/gpu_wheels.sh", version, str(wheels)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    if got.returncode != 0:
        pytest.skip(f"gpu_wheels.sh could not download the wheels (no PyPI?): {got.stderr.strip()[-300:]}")
    size = sum(f.stat().st_size for f in wheels.iterdir())
    assert size <= 30 * 2**20, f"the wheels take {size / 2**20:.1f} MB, more than the 30 MB to carry"
    bin_dir = torch_only_venv(tmp_path / "venv")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "OUT": str(tmp_path / "out"),
           "WHEELS": str(wheels), "CUDA_VISIBLE_DEVICES": ""}
    bare = subprocess.run([str(bin_dir / "python3"), "-c", "import jsonschema"], env=env, capture_output=True)
    assert bare.returncode != 0  # the venv really lacks the project's other packages
    run = subprocess.run(["bash", "benchmarks/gpu_checks.sh", "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "imported: compressible.training.loop" in run.stdout and "benchmarks/bench_epoch.py" in run.stdout
    for check in ("method:SGD", "method:SFW-spectral_k_support", "deterministic", "bf16", "compile",
                  "sfw_init", "oneshot_bnt", "nccl", "epoch_benchmark", "cram_sgd_ratio"):
        assert check in run.stdout.splitlines()


def test_wheels_for_another_python_are_refused_naming_the_fix(tmp_path):
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "PYTHON_VERSION").write_text("2.7\n")
    env = dict(os.environ, OUT=str(tmp_path / "out"), WHEELS=str(tmp_path / "wheels"))
    run = subprocess.run(["bash", "benchmarks/gpu_checks.sh", "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "run bash benchmarks/gpu_wheels.sh" in run.stderr
