"""Pretrained weights from a local file (``archs[i].pretrained``), e.g. a torchvision download.

Loaded with ``weights_only=True`` (tensors only, no code runs) and checked against the
architecture before anything is copied, so a wrong file fails with the keys that do not fit.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

SHOWN = 5  # offending keys named per kind


class PretrainedMismatch(ValueError):
    """A weights file that does not fit the configured architecture."""


def read_state_dict(path: Path) -> dict:
    """A plain state dict, or one under ``model`` / ``state_dict`` (our checkpoints, trainers')."""
    if not path.is_file():
        raise FileNotFoundError(f"config key 'archs.pretrained': {path} does not exist")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(torch.is_tensor(v) for v in payload.values()):
        raise PretrainedMismatch(f"{path}: not a state dict (a mapping of names to tensors)")
    return payload


def mismatches(model: nn.Module, state: dict) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches, the first few of each."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = []
    for kind, keys in (("missing", missing), ("unexpected", unexpected), ("shape (file vs model)", shapes)):
        if keys:
            more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
            problems.append(f"{len(keys)} {kind}: {', '.join(keys[:SHOWN])}{more}")
    return problems


def load_pretrained(model: nn.Module, path: str | Path, arch: str) -> nn.Module:
    """Copy the weights at ``path`` into ``model`` (all keys, all shapes must match)."""
    path = Path(path)
    state = read_state_dict(path)
    problems = mismatches(model, state)
    if problems:
        raise PretrainedMismatch(f"{path} does not fit architecture {arch!r}: " + "; ".join(problems))
    model.load_state_dict(state)
    return model
