"""training.numerics: `portable` trains the same checkpoint bytes whatever instruction sets the
kernels may use; `fast` lets each CPU choose (its bytes may differ between CPU kinds).

The tiny config's SGD run is trained by `python -m compressible train` in fresh processes, each
under other caps on the three kernel libraries: ATen's (ATEN_CPU_CAPABILITY), MKL's
(MKL_ENABLE_INSTRUCTIONS) and oneDNN's (ONEDNN_MAX_CPU_ISA).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compressible.config import validate_config
from compressible.runs import Experiment, Run

ROOT = Path(__file__).resolve().parents[1]
CAPS = [{}, {"ATEN_CPU_CAPABILITY": "avx2"}, {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
        {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "avx512"}]
SGD = Run("resnet20", "SGD", 0)


def compressible(args: list, env: dict, cwd: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in (*CAPS[3], "MKL_CBWR")}
    proc = subprocess.run([sys.executable, "-m", "compressible", *map(str, args)], cwd=cwd,
                          env={**clean, **env}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def portable(tmp_path_factory) -> tuple[Path, Path]:
    """configs/tiny.yaml with numerics: portable, and its prepared data."""
    where = tmp_path_factory.mktemp("numerics")
    raw = yaml.safe_load((ROOT / "configs/tiny.yaml").read_text())
    raw["training"]["numerics"] = "portable"
    # two steps suffice: in fast mode these four caps already give four different checkpoints
    raw["dataset"].update(train_subset=128, test_subset=100)
    (where / "portable.yaml").write_text(yaml.safe_dump(raw))
    compressible(["prepare", "--config", where / "portable.yaml", "--out", where / "data.pt"], {}, where)
    return where / "portable.yaml", where / "data.pt"


def train(config: Path, data: Path, out: Path, env: dict) -> str:
    out.parent.mkdir()
    compressible(["train", "--config", config, "--arch", "resnet20", "--method", "SGD", "--seed", 0,
                  "--data", data, "--out", out], env, out.parent)
    return hashlib.sha256(out.read_bytes()).hexdigest()


# Run at interpreter start (PYTHONPATH): a file appears if torch is imported before the process
# has the portable environment, i.e. work done twice before `python -m compressible` restarts.
_PROBE = """
import os, sys
class _TorchBeforeRestart:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and os.environ.get("MKL_CBWR") != "COMPATIBLE":
            open(os.environ["TORCH_PROBE"], "w").close()
        return None
sys.meta_path.insert(0, _TorchBeforeRestart())
"""


@pytest.mark.slow
def test_portable_numerics_train_the_same_bytes_under_every_instruction_set_cap(portable, tmp_path):
    config, data = portable
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "sitecustomize.py").write_text(_PROBE)
    probe = {"PYTHONPATH": str(tmp_path / "probe"), "TORCH_PROBE": str(tmp_path / "torch-before-restart")}
    # one file name in its own folder each: torch.save names the archive's root after the file
    outs = [tmp_path / f"caps{i}" / "run.pt" for i in range(len(CAPS))]
    envs = [dict(CAPS[0], **probe)] + CAPS[1:]
    digests = {json.dumps(env): train(config, data, out, env) for out, env in zip(outs, envs)}
    assert len(set(digests.values())) == 1, digests
    assert not (tmp_path / "torch-before-restart").exists()  # the config is read, then the restart
    for out in outs:  # provenance: the mode in force and ATen's kernels
        info = json.loads(out.with_suffix(".json").read_text())
        assert info["numerics"] == "portable" and info["cpu_capability"] == "DEFAULT"


@pytest.mark.parametrize("mode, same", [("fast", True), ("portable", False)])
def test_fast_keeps_the_existing_run_hashes_portable_has_its_own(mode, same):
    raw = yaml.safe_load((ROOT / "configs/tiny.yaml").read_text())
    before = Experiment(validate_config(raw, check_files=False)).spec(SGD).hash()
    raw["training"]["numerics"] = mode
    assert (Experiment(validate_config(raw, check_files=False)).spec(SGD).hash() == before) is same
