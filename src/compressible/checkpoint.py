"""Checkpoints: the trained weights and what rebuilds their model, loadable without code."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .artefacts import read_with
from .models import rebuild


def save_checkpoint(model: nn.Module, arch: dict, num_classes: int, in_channels: int,
                    path: str | Path) -> None:
    """Atomic write: a killed job leaves no file that a rerun would take for finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # CPU tensors in the standard layout whatever the training device: loadable anywhere (on
    # the CPU these are the model's own tensors, so CPU checkpoints are unchanged)
    weights = model.state_dict()  # in place: its _metadata (module versions) is kept
    for name, tensor in weights.items():
        weights[name] = tensor.cpu().contiguous()
    payload = {"model": weights, "arch": arch, "num_classes": num_classes,
               "in_channels": in_channels}
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> nn.Module:
    """Rebuild the model and load its weights (``weights_only`` loading: no code execution)."""
    payload = read_with(path, "checkpoint", lambda p: torch.load(p, map_location="cpu", weights_only=True))
    arch = payload["arch"]
    model = rebuild(arch, payload["num_classes"], payload["in_channels"])
    model.load_state_dict(payload["model"])
    return model.eval()
