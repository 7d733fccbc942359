"""``python -m compressible plan``: what a config costs before it is submitted.

The job matrix (runs, epochs, steps; one-shot jobs and the images they evaluate) and predicted
hours per rule, from step times measured by ``benchmarks/bench_epoch.py --record`` and kept in
``step_times.json`` (each row names its device). A run whose architecture, input size or batch
size was not measured is scaled from the measured row nearest in MACs by the ratio of multiply-accumulates (MACs)
per step: exact in the compute-bound regime, optimistic for small models on a large GPU, whose
steps are latency-bound. A method that was not measured costs the measured SGD step times its
forward-backward passes per step (counted by running one step on a tiny model).
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources

import torch
from torch import nn

from . import registry
from .compress.accounting import layer_flops
from .config import Config, ConfigError, Method
from .models import build_arch
from .runs import Experiment, Run

EVAL_COST = 1 / 3  # a forward pass is about a third of a forward-backward step (per image)


@dataclass(frozen=True)
class StepTime:
    """One measured training step: seconds for one batch of ``batch_size`` on ``device``."""

    device: str  # "cpu" or the GPU's model name
    arch: str
    method: str
    precision: str
    batch_size: int
    macs_per_image: float  # forward multiply-accumulates of one image (compress.accounting)
    seconds_per_step: float
    measured: str = ""  # when and with what command


def measured_step_times() -> list[StepTime]:
    text = resources.files("compressible").joinpath("step_times.json").read_text()
    return [StepTime(**row) for row in json.loads(text)["rows"]]


@functools.lru_cache(maxsize=None)
def closure_passes(name: str, params_json: str) -> int:
    """Forward-backward passes one optimizer step of this method makes (one step on a tiny model)."""
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
        prunable = [("0.weight", model[0].weight), ("3.weight", model[3].weight)]
        optimizer = registry.METHODS.get(name)(model, prunable, seed=0, **json.loads(params_json))
        x, y, calls = torch.randn(4, 3, 4, 4), torch.tensor([0, 1, 0, 1]), []

        def closure(track_bn_stats: bool = True) -> torch.Tensor:
            calls.append(track_bn_stats)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss.detach()

        optimizer.step(closure)
    return len(calls)


@functools.lru_cache(maxsize=None)
def macs_per_image(arch_json: str, num_classes: int, input_shape: tuple) -> float:
    with torch.random.fork_rng(devices=[]):
        model = build_arch(dict(json.loads(arch_json), pretrained=None), num_classes, input_shape[0])
    return float(sum(macs for macs, _ in layer_flops(model, input_shape)))


def step_seconds(table: list[StepTime], device: str, method: Method, precision: str,
                 flops: float | None, batch_size: int) -> float | None:
    """Predicted seconds of one step; None when nothing was measured on ``device`` (or the
    architecture is one only its own measurement predicts: ``flops`` None)."""
    if flops is None:
        return None
    rows = [r for r in table if r.device == device and r.precision == precision]
    same = [r for r in rows if r.method == method.name]
    passes = 1.0
    if not same:
        same = [r for r in rows if r.method == "sgd"]
        passes = closure_passes(method.name, json.dumps(method.params, sort_keys=True))
    if not same:
        return None
    ref = min(same, key=lambda r: abs(math.log(flops / r.macs_per_image)))
    return passes * ref.seconds_per_step * (flops * batch_size) / (ref.macs_per_image * ref.batch_size)


@dataclass
class Job:
    rule: str
    name: str
    run: Run
    epochs: int
    steps: int
    images_evaluated: int
    hours: float | None  # device-hours of one job; None: no step time measured on the device
    gpus: int  # processes (GPUs) it trains on: its wall time is hours / gpus (ideal scaling)


def dataset_facts(dataset: dict) -> tuple[int, int, tuple, int]:
    """(training images, test images, input shape, classes) as the planner counts them."""
    builder = registry.DATASETS.get(dataset["name"])
    if not hasattr(builder, "nominal_sizes") and not hasattr(builder, "image_shape"):
        raise ConfigError(f"dataset {dataset['name']!r}: its size is known only once it is indexed; "
                         "the planner counts the registered in-memory datasets and ImageNet")
    if hasattr(builder, "nominal_sizes"):
        (train, test), size = builder.nominal_sizes, dataset.get("image_size", 224)
        shape = (3, size, size)
    else:
        train, test, shape = builder.train_size, builder.test_size, builder.image_shape
    return (dataset.get("train_subset") or train, dataset.get("test_subset") or test, tuple(shape),
            builder.num_classes)


SGD = Method("sgd", "sgd", {}, None)  # evaluation is costed as a share of an SGD step


def arch_macs(arch, classes: int, shape: tuple, table: list[StepTime] = ()) -> float | None:
    """Multiply-accumulates per image of a config's architecture entry (name and width). A model
    built from a folder (BERT) is predicted from its own measured rows only (a transformer's
    step is not a ResNet's scaled by MACs): their MACs, or None when none was measured."""
    if getattr(registry.MODELS.get(arch.name), "pretrained_folder", False):
        return next((r.macs_per_image for r in table if r.arch == arch.name), None)
    return macs_per_image(json.dumps({"name": arch.name, "width": arch.width}), classes, shape)


def train_jobs(cfg: Config, table: list[StepTime], device: str) -> list[Job]:
    """One job per run: its steps (the last partial batch is dropped) and evaluations per epoch."""
    experiment, (train, test, shape, classes) = Experiment(cfg), dataset_facts(cfg.dataset)
    jobs = []
    for run in experiment.runs():
        spec = experiment.spec(run)
        t, flops = spec.training, arch_macs(spec.arch, classes, shape, table)
        steps = t.epochs * (train // t.batch_size)
        step = step_seconds(table, device, spec.method, t.precision, flops, t.batch_size)
        sgd = step_seconds(table, device, SGD, t.precision, flops, t.batch_size)
        evaluated = t.epochs * test
        hours = None if step is None else (steps * step + evaluated * sgd / t.batch_size * EVAL_COST) / 3600
        jobs.append(Job("train", run.name, run, t.epochs, steps, evaluated, hours, t.gpus_per_run))
    return jobs


def oneshot_jobs(cfg: Config, table: list[StepTime], device: str) -> list[Job]:
    """One job per (run, operator): the dense model and every level before BNT and after each
    trial are evaluated on the test split; each trial forwards its calibration batches."""
    experiment, (train, test, shape, classes) = Experiment(cfg), dataset_facts(cfg.dataset)
    bnt, jobs = cfg.bnt, []
    for run in experiment.runs():
        flops, batch = arch_macs(cfg.arch(run.arch), classes, shape, table), cfg.training.batch_size
        sgd = step_seconds(table, device, SGD, cfg.training.precision, flops, batch)
        for entry in cfg.oneshot:
            levels = len(entry.levels)
            images = test + levels * ((1 + bnt.trials) * test + bnt.trials * bnt.batches * bnt.batch_size)
            hours = None if sgd is None else images * sgd / batch * EVAL_COST / 3600
            jobs.append(Job("oneshot", f"{run.name}-{entry.operator}", run, 0, 0, images, hours, 1))
    return jobs


def finetune_jobs(cfg: Config, table: list[StepTime], device: str) -> list[Job]:
    """One job per (run, operator with a finetune): at every level its epochs of method masked
    (CrAM App. D), then the level's evaluation, after the dense model's."""
    experiment, (train, test, shape, classes) = Experiment(cfg), dataset_facts(cfg.dataset)
    t, jobs = cfg.training, []
    for run in experiment.runs():
        flops = arch_macs(cfg.arch(run.arch), classes, shape, table)
        for entry in (e for e in cfg.oneshot if e.finetune):
            epochs, masked = entry.finetune.epochs, Method("masked", "masked", entry.finetune.params, None)
            steps = len(entry.levels) * epochs * (train // t.batch_size)
            step = step_seconds(table, device, masked, t.precision, flops, t.batch_size)
            sgd = step_seconds(table, device, SGD, t.precision, flops, t.batch_size)
            images = test * (1 + len(entry.levels))
            hours = None if step is None else (steps * step + images * sgd / t.batch_size * EVAL_COST) / 3600
            jobs.append(Job("finetune", f"{run.name}-{entry.operator}", run, epochs, steps, images, hours, 1))
    return jobs


def plan(cfg: Config, device: str, table: list[StepTime] | None = None) -> list[Job]:
    table = measured_step_times() if table is None else table
    return train_jobs(cfg, table, device) + oneshot_jobs(cfg, table, device) + finetune_jobs(cfg, table, device)


def devices(table: list[StepTime]) -> list[str]:
    """The measured devices, GPUs first (the default is the first)."""
    return sorted({r.device for r in table}, key=lambda d: (d == "cpu", d))


def _hours(value: float | None) -> str:
    return "not measured" if value is None else f"{value:,.2f}"


def summary(jobs: list[Job], parallel: int) -> list[dict]:
    """Per rule: jobs, steps, images evaluated, device-hours; then the total and the wall time
    with ``parallel`` jobs at once (every job waits for nothing else: a lower bound)."""
    rows = []
    for rule in dict.fromkeys(j.rule for j in jobs):
        mine = [j for j in jobs if j.rule == rule]
        known = None if any(j.hours is None for j in mine) else sum(j.hours for j in mine)
        rows.append({"rule": rule, "jobs": len(mine), "steps": sum(j.steps for j in mine),
                     "images_evaluated": sum(j.images_evaluated for j in mine), "hours": known})
    known = [r["hours"] for r in rows]
    total = None if None in known else sum(known)
    longest = None if total is None else max(j.hours / j.gpus for j in jobs)
    wall = None if total is None else max(longest, total / parallel)
    rows.append({"rule": "total", "jobs": len(jobs), "steps": sum(r["steps"] for r in rows),
                 "images_evaluated": sum(r["images_evaluated"] for r in rows), "hours": total, "wall": wall})
    return rows


def render(cfg: Config, device: str, jobs: list[Job], parallel: int, table: list[StepTime]) -> str:
    kind = "CPU" if device == "cpu" else "GPU"
    lines = [f"plan: {cfg.experiment} on {device} ({parallel} job(s) at once)",
             f"{'rule':<8} {'jobs':>5} {'steps':>12} {'images evaluated':>17} {kind + '-hours':>12}"]
    rows = summary(jobs, parallel)
    for r in rows:
        lines.append(f"{r['rule']:<8} {r['jobs']:>5} {r['steps']:>12,} {r['images_evaluated']:>17,} "
                     f"{_hours(r['hours']):>12}")
    lines.append(f"wall time: {_hours(rows[-1]['wall'])}" + ("" if rows[-1]["wall"] is None else " h"))
    measured = sorted({r.measured for r in table if r.device == device})
    lines.append("step times: " + ("; ".join(measured) if measured else
                 f"none measured on {device}: run benchmarks/bench_epoch.py --record there "
                 f"(measured: {', '.join(devices(table)) or 'nothing'})"))
    return "\n".join(lines)
