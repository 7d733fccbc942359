"""One training run: (dataset, arch, method, seed) -> checkpoint + provenance JSON.

Every optimizer is driven the same way, ``optimizer.step(closure)``: one-pass methods (SGD, SFW)
call the closure once, two-pass methods (SAM, CrAM) twice, asking for frozen BatchNorm
statistics in the perturbed pass. So the loop has no per-batch branching on the method.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .bn import frozen_bn_stats
from .compress.prunable import prunable_parameters
from .config import import_registries
from .data import ImageSplits, load_splits, test_batches, train_batches
from .models import build_arch, build_model
from .optim.schedules import lr_factor
from .provenance import provenance, write_json_atomic
from .registry import METHODS


def make_deterministic(seed: int, threads: int | None = None) -> None:
    """Same seed -> same checkpoint on CPU (torch deterministic kernels, seeded RNGs)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: every CPU kernel used here is deterministic; on CUDA a few (kthvalue for the
    # Top-K threshold) have no deterministic variant and should warn, not abort a run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def model_for(spec: dict, splits: ImageSplits) -> nn.Module:
    return build_arch(spec["arch"], splits.num_classes, splits.in_channels)  # width, pretrained weights


@torch.no_grad()
def evaluate(model: nn.Module, splits: ImageSplits, batch_size: int = 512) -> tuple[float, float]:
    """(top-1 accuracy in %, mean cross-entropy) on the test split, in eval mode."""
    model.eval()
    correct, loss, n = 0, 0.0, 0
    for x, y in test_batches(splits, batch_size):
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return 100.0 * correct / n, loss / n


def make_closure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer):
    """Forward + backward on one batch; ``track_bn_stats=False`` leaves BN running stats alone."""
    def closure(track_bn_stats: bool = True) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=False)
        if track_bn_stats:
            loss = F.cross_entropy(model(x), y)
        else:
            with frozen_bn_stats(model):
                loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    return closure


def train_run(spec: dict, data_path: str | Path, checkpoint: str | Path) -> dict:
    """Train one run described by ``config.run_spec`` and write ``checkpoint`` (+ ``.json``)."""
    import_registries()
    start = time.perf_counter()
    training, seed = spec["training"], spec["seed"]
    make_deterministic(seed, training.get("threads", 1))
    splits = load_splits(data_path, spec["dataset"])
    model = model_for(spec, splits)
    method = spec["method"]
    optimizer = METHODS.get(method["name"])(
        model, prunable_parameters(model, spec["prunable"]), seed=seed, **method.get("params", {}))
    steps_per_epoch = len(splits.train_labels) // training["batch_size"]
    total = steps_per_epoch * training["epochs"]
    factor = lr_factor(training["schedule"], total, round(training["warmup_epochs"] * steps_per_epoch),
                       training.get("milestones", (0.5, 0.75)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    data_order = torch.Generator().manual_seed(seed)
    curves = []
    for epoch in range(training["epochs"]):
        model.train()
        losses = []
        for x, y in train_batches(splits, training["batch_size"], data_order, training["augment"]):
            losses.append(optimizer.step(make_closure(model, x, y, optimizer)).item())
            scheduler.step()
        accuracy, test_loss = evaluate(model, splits, training["eval_batch_size"])
        curves.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                       "test_accuracy": accuracy, "test_loss": test_loss})
    save_checkpoint(model, spec, splits, checkpoint)
    info = provenance(spec, seed, time.perf_counter() - start, "cpu")
    info.update(curves=curves, final_test_accuracy=curves[-1]["test_accuracy"])
    write_json_atomic(Path(checkpoint).with_suffix(".json"), info)
    return info


def save_checkpoint(model: nn.Module, spec: dict, splits: ImageSplits, path: str | Path) -> None:
    """Atomic write: a killed job leaves no file that a rerun would take for finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model.state_dict(), "arch": spec["arch"], "num_classes": splits.num_classes,
               "in_channels": splits.in_channels}
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> nn.Module:
    """Rebuild the model and load its weights (``weights_only`` loading: no code execution)."""
    import_registries()
    payload = torch.load(path, map_location="cpu", weights_only=True)
    arch = payload["arch"]
    model = build_model(arch["name"], payload["num_classes"], payload["in_channels"], arch.get("width"))
    model.load_state_dict(payload["model"])
    return model.eval()
