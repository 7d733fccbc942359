"""Resume states: everything a training job needs to continue bit-for-bit where it stopped.

A state holds the model, the optimizer's own ``state_dict()`` (momentum buffers, CrAM's Multi
generator and masks, SFW's constraints, SFW-Init's scales, the groups' options), the LR
scheduler, every RNG (torch CPU and CUDA, NumPy, Python), the position (epoch, steps done in it,
and the data-order generator's state at the epoch's start, from which the epoch's order and
augmentation are replayed) and the curves so far. It is written atomically and carries the
run's hash and the code's version: a state of another run or other code is never used.
"""
from __future__ import annotations

import functools
import hashlib
import os
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

FORMAT = 1
_PACKAGE = Path(__file__).resolve().parent


@dataclass
class Position:
    """Where training stands: ``step`` steps of epoch ``epoch`` (0-based) are done."""

    epoch: int
    step: int
    epoch_start: torch.Tensor  # the data-order generator's state when the epoch began
    losses: list = field(default_factory=list)  # train losses of the steps done in this epoch


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Digest of the package's source when this process started: a change invalidates a state."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*")):
        if path.suffix in (".py", ".yaml", ".j2") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def rng_state() -> dict:
    """Every global RNG, in types that ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        # this process's device only: a resume may see fewer GPUs (another node, another slot)
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_initialized() else [],
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": numpy_state["state"]["pos"], "has_gauss": numpy_state["has_gauss"],
                  "gauss": numpy_state["gauss"]},
        "python": list(random.getstate()[1]),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"][0])  # the current device's (rng_state saves one)
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "has_gauss": n["has_gauss"], "gauss": n["gauss"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]}})
    random.setstate((3, tuple(state["python"]), None))


def save_state(path: str | Path, run_hash: str, parts: dict, position: Position, curves: list) -> None:
    """Atomic write of ``parts`` (name -> object with ``state_dict()``), RNGs and position."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "run_hash": run_hash, "code_version": code_version(),
               "rng": rng_state(), "position": asdict(position), "curves": curves,
               **{name: part.state_dict() for name, part in parts.items()}}
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_state(path: str | Path, run_hash: str) -> dict | None:
    """The saved state if it belongs to this run and this code; otherwise None, saying why."""
    path, version = Path(path), code_version()  # fixed now: the code this process runs
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (any unreadable file is just not used)
        return _not_used(path, f"unreadable ({type(err).__name__}: {err})")
    expected = {"format": FORMAT, "run_hash": run_hash, "code_version": version}
    for key, value in expected.items():
        if payload.get(key) != value:
            return _not_used(path, f"its {key} is {payload.get(key)!r}, this run's is {value!r}")
    return payload


def _not_used(path: Path, why: str) -> None:
    print(f"resume: not using {path}: {why}; training from the start", file=sys.stderr, flush=True)
    return None


def restore(payload: dict, parts: dict) -> tuple[Position, list]:
    """Load ``parts`` and the RNGs from ``payload``; return its position and curves."""
    for name, part in parts.items():
        part.load_state_dict(payload[name])
    set_rng_state(payload["rng"])
    return Position(**payload["position"]), list(payload["curves"])


def remove_state(path: str | Path | None) -> None:
    if path is not None:
        Path(path).unlink(missing_ok=True)
