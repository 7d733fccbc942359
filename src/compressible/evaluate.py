"""Accuracy, and the one-shot evaluation of a checkpoint: compress at each level, evaluate before
BNT and after each of N independent BNT trials (CrAM App. C.3, Table 11), with sparsity/FLOPs
accounting."""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .bn import batch_norm_tuning
from .checkpoint import load_checkpoint
from .compress.accounting import account
from .compress.distance import relative_distance
from .compress.prunable import prunable_parameters
from .config import BNT, Config
from .data import ImageSplits, calibration_batches, load_splits, test_batches
from .device import describe, resolve_device, use_tf32
from .progress import clock
from .provenance import provenance, write_json_atomic
from .registry import COMPRESSORS
from .runs import Run
from .runtime import make_deterministic
from .tasks import Task, task_of


@torch.no_grad()
def evaluate(model: nn.Module, splits: ImageSplits, batch_size: int = 512) -> tuple[float, float]:
    """(top-1 accuracy in %, mean cross-entropy) on the test split, in eval mode."""
    model.eval()
    correct, loss, n = 0, 0.0, 0
    device = next(model.parameters()).device
    for x, y in test_batches(splits, batch_size):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return 100.0 * correct / n, loss / n


def bnt_seed(run_seed: int, trial: int) -> int:
    """Each trial draws its own calibration subset; the seed is recorded in the result."""
    return 1_000_003 * (run_seed + 1) + trial


def bnt_trials(model: nn.Module, splits: ImageSplits, bnt: BNT, run_seed: int, eval_batch: int) -> list[dict]:
    """Accuracy after each BNT trial, each on its own seeded calibration subset."""
    trials = []
    for t in range(bnt.trials):
        tuned, seed = copy.deepcopy(model), bnt_seed(run_seed, t)
        batches = calibration_batches(splits, bnt.samples, bnt.batch_size, bnt.batches, seed)
        batch_norm_tuning(tuned, batches, bnt.momentum)
        acc_t, loss_t = evaluate(tuned, splits, eval_batch)
        trials.append({"trial": t, "seed": seed, "accuracy": acc_t, "loss": loss_t})
    return trials


class GradientSource:
    """Gradients of the training loss for data-dependent compressors (``needs_gradients``, e.g.
    oBERT's empirical Fisher): ``gradients(model, params, count)`` yields, for ``count`` training
    batches drawn from a generator seeded by the run, the gradient of each of ``params`` of
    ``model`` at its current weights (a compressor that recomputes gets the same batches)."""

    def __init__(self, task: Task, splits, batch_size: int, seed: int, label_smoothing: float = 0.0):
        self.task, self.splits, self.batch_size = task, splits, batch_size
        self.seed, self.label_smoothing = seed, label_smoothing

    def batches(self):
        generator = torch.Generator().manual_seed(1_000_003 * (self.seed + 1) - 1)
        while True:
            yield from self.task.train_batches(self.splits, self.batch_size, generator, False)

    def gradients(self, model: nn.Module, params: list, count: int):
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()  # no dropout: the gradients of the model as it is evaluated
        try:
            for _, batch in zip(range(count), self.batches()):
                batch = {k: v.to(device) for k, v in batch.items()} if isinstance(batch, dict) else \
                    tuple(v.to(device) for v in batch)
                with torch.enable_grad():  # the compressor itself runs without autograd
                    grads = torch.autograd.grad(self.task.loss(model, batch, self.label_smoothing), params)
                yield [g.detach() for g in grads]
        finally:
            model.train(was_training)


def compress(model: nn.Module, compressor, level, prunable: list, source: GradientSource | None):
    """Apply the compressor (a registered name or a configured one); one that ``needs_gradients``
    also gets, at each call, the loss gradients of ``model``'s prunable tensors as they are then."""
    compressor = COMPRESSORS.get(compressor) if isinstance(compressor, str) else compressor
    if not compressor.needs_gradients:
        return compressor(model, level, prunable)
    params = [p for _, p in prunable]
    return compressor(model, level, prunable, lambda: source.gradients(model, params, compressor.samples))


def measure(task: Task, model: nn.Module, splits, eval_batch: int) -> dict:
    """{metric: value, ..., "loss": mean loss} of ``model`` on the evaluation split."""
    scores, loss = task.evaluate(model, splits, eval_batch)
    return {**scores, "loss": loss}


def oneshot_level(dense, splits: ImageSplits, operator, level, prunable: str,
                  bnt: BNT, run_seed: int, eval_batch: int, task: Task | None = None,
                  gradients: GradientSource | None = None, tune: Callable | None = None) -> dict:
    """Compress a copy of ``dense`` at one level (``operator``: a registered name or a configured
    compressor), ``tune`` it when given (the sparse finetune: ``tune(model, splits, task)``
    trains it in place) and measure it before and after BNT."""
    task = task or task_of({"name": "mnist_embedded"})
    model = copy.deepcopy(dense)
    model = compress(model, operator, level, prunable_parameters(model, prunable), gradients)
    if tune is not None:
        tune(model, splits, task)
    operator = operator if isinstance(operator, str) else operator.name
    prunable_names = [n for n, _ in prunable_parameters(dense, prunable)]
    input_shape = splits.input_shape  # (C, H, W), in-memory or streamed; (tokens,) for text
    before = measure(task, model, splits, eval_batch)
    accounting = account(dense, model, prunable_names, input_shape, task.input_dtype)
    # compression-aware SFW, Fig. 1: how far compression moves the prunable weights
    accounting["relative_distance"] = relative_distance(dense, model, prunable_names)
    return {"operator": operator, "level": level, "prunable": prunable, "accounting": accounting,
            "before_bnt": before, "bnt_trials": bnt_trials(model, splits, bnt, run_seed, eval_batch)}


def level_line(result: dict, elapsed: float, metric: str = "accuracy") -> str:
    """One level's progress line: the metric before BNT and the mean over the BNT trials."""
    text = f"level {result['level']}: before BNT {result['before_bnt'][metric]:.2f}%"
    trials = [t["accuracy"] for t in result["bnt_trials"]]
    if trials:
        text += f", after BNT {sum(trials) / len(trials):.2f}% (mean of {len(trials)} trials)"
    return f"{text}  elapsed {clock(elapsed)}"


def oneshot_run(cfg: Config, run: Run, checkpoint: str | Path, data_path: str | Path, operator: str,
                out: str | Path, tune: Callable | None = None) -> None:
    """Evaluate ``checkpoint`` under ``operator`` at every configured level; one JSON file.
    ``tune``: each pruned model is first trained by it (the sparse finetune of
    ``training/finetune.py``; its levels say ``"finetune": true``)."""
    start = time.perf_counter()
    make_deterministic(run.seed, cfg.training.threads)
    use_tf32(cfg.training.tf32)
    device = resolve_device(cfg.training.device)  # compression, evaluation and BNT all run there
    splits = load_splits(data_path, cfg.dataset).to(device)
    dense = load_checkpoint(checkpoint).to(device)
    entry, task = cfg.entry(operator), task_of(cfg.dataset)
    prunable = entry.prunable or cfg.prunable
    eval_batch = cfg.training.eval_batch_size
    dense_scores = measure(task, dense, splits, eval_batch)
    print(f"{run.name} {operator}: dense {dense_scores[task.primary]:.2f}% on {device}", flush=True)
    gradients = GradientSource(task, splits, cfg.training.batch_size, run.seed, cfg.training.label_smoothing)
    levels = []
    for level in entry.levels:
        levels.append(oneshot_level(dense, splits, entry.compressor(), level, prunable, cfg.bnt, run.seed,
                                    eval_batch, task, gradients, tune))
        levels[-1].update({"finetune": True} if tune else {})
        print(level_line(levels[-1], time.perf_counter() - start, task.primary), flush=True)
    # the metric names only where they are not the image experiments' accuracy (same JSON there)
    metrics = {} if task.metrics == ("accuracy",) else {"metrics": list(task.metrics)}
    write_json_atomic(out, {
        "run": run.identity(), "experiment": cfg.experiment, "dataset": cfg.dataset["name"],
        "checkpoint": str(checkpoint), "operator": operator, "prunable": prunable, **metrics,
        "dense": dense_scores, "levels": levels,
        "provenance": provenance(cfg.resolved, run.seed, time.perf_counter() - start, describe(device, tf32=cfg.training.tf32)),
    })
