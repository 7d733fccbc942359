"""One-shot evaluation of a checkpoint: compress at each level, evaluate before BNT and after
each of N independent BNT trials (CrAM App. C.3, Table 11), with sparsity/FLOPs accounting."""
from __future__ import annotations

import copy
import time
from pathlib import Path

from .bnt import batch_norm_tuning
from .compress.accounting import account
from .compress.distance import relative_distance
from .compress.prunable import prunable_parameters
from .config import import_registries
from .data import ImageSplits, calibration_batches, load_splits
from .provenance import provenance, write_json_atomic
from .registry import ONESHOT
from .train import evaluate, load_checkpoint, make_deterministic


def bnt_seed(run_seed: int, trial: int) -> int:
    """Each trial draws its own calibration subset; the seed is recorded in the result."""
    return 1_000_003 * (run_seed + 1) + trial


def oneshot_level(dense, splits: ImageSplits, operator: str, level, prunable: str,
                  bnt: dict, run_seed: int, eval_batch: int) -> dict:
    """Compress a copy of ``dense`` at one level and measure it before and after BNT."""
    model = copy.deepcopy(dense)
    model = ONESHOT.get(operator)(model, level, prunable_parameters(model, prunable))
    prunable_names = [n for n, _ in prunable_parameters(dense, prunable)]
    input_shape = splits.input_shape  # (C, H, W), in-memory or streamed
    accuracy, loss = evaluate(model, splits, eval_batch)
    trials = []
    for t in range(bnt["trials"]):
        tuned, seed = copy.deepcopy(model), bnt_seed(run_seed, t)
        batches = calibration_batches(splits, bnt["samples"], bnt["batch_size"], bnt["batches"], seed)
        batch_norm_tuning(tuned, batches, bnt["momentum"])
        acc_t, loss_t = evaluate(tuned, splits, eval_batch)
        trials.append({"trial": t, "seed": seed, "accuracy": acc_t, "loss": loss_t})
    accounting = account(dense, model, prunable_names, input_shape)
    # compression-aware SFW, Fig. 1: how far compression moves the prunable weights
    accounting["relative_distance"] = relative_distance(dense, model, prunable_names)
    return {"operator": operator, "level": level, "prunable": prunable, "accounting": accounting,
            "before_bnt": {"accuracy": accuracy, "loss": loss}, "bnt_trials": trials}


def oneshot_run(cfg: dict, checkpoint: str | Path, data_path: str | Path, operator: str,
                run_seed: int, out: str | Path) -> None:
    """Evaluate ``checkpoint`` under ``operator`` at every configured level; one JSON file."""
    import_registries()
    start = time.perf_counter()
    make_deterministic(run_seed, cfg["training"].get("threads", 1))
    splits = load_splits(data_path, cfg["dataset"])
    dense = load_checkpoint(checkpoint)
    entry = next(e for e in cfg["oneshot"] if e["operator"] == operator)
    prunable = entry.get("prunable", cfg["prunable"])
    eval_batch = cfg["training"]["eval_batch_size"]
    dense_acc, dense_loss = evaluate(dense, splits, eval_batch)
    levels = [oneshot_level(dense, splits, operator, level, prunable, cfg["bnt"], run_seed, eval_batch)
              for level in entry["levels"]]
    write_json_atomic(out, {
        "checkpoint": str(checkpoint), "operator": operator, "prunable": prunable,
        "dense": {"accuracy": dense_acc, "loss": dense_loss}, "levels": levels,
        "provenance": provenance(cfg, run_seed, time.perf_counter() - start, "cpu"),
    })
