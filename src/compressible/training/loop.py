"""One training run: (dataset, arch, method, seed) -> checkpoint + provenance JSON.

Every optimizer is driven the same way, ``optimizer.step(closure)``: one-pass methods (SGD, SFW)
call the closure once, two-pass methods (SAM, CrAM) twice, asking for frozen BatchNorm
statistics in the perturbed pass. So the loop has no per-batch branching on the method.

Long runs (see ``resume.py``, ``interrupt.py``, ``divergence.py``, ``distributed.py``): with a
resume path the state is saved after every epoch and on a stop signal, and a rerun continues
from it bit for bit; a non-finite loss or weights stop the run; under ``torchrun`` each process
trains on its shard of every global batch and process 0 writes.

Nothing in a step reads a value back to the host (a GPU would wait for it): the losses stay on
the device and are read every ``divergence.CHECK_EVERY`` steps and before every save, an
epoch's order and augmentation draws are made up front and moved in one copy (``data/batches``),
and the optimizers keep their norms and thresholds as device tensors. ``tests/test_host_syncs.py``
counts this for every method.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..bn import frozen_bn_stats
from ..checkpoint import save_checkpoint
from ..compress.prunable import prunable_parameters
from ..data import ImageSplits, StreamingSplits, load_splits, train_batches
from ..device import autocast, describe, memory_format, use_tf32
from ..models import build_arch, checkpoint_arch, freeze
from ..optim.schedules import lr_factor
from ..optim.sfw_init import Batch, learn_initialization
from ..progress import EpochClock, step_bar
from ..provenance import provenance, write_json_atomic
from ..registry import METHODS
from ..runs import RunSpec
from ..runtime import make_deterministic
from ..tasks import Task, task_of, task_of_dataset
from .distributed import Processes, agree, barrier, prepare_model, setup, shard_batch, wrap
from .divergence import LossWatch
from .interrupt import StopRequest
from .resume import Position, load_state, remove_state, restore, save_state
from .stops import Interrupted


def model_for(spec: RunSpec, splits: ImageSplits) -> nn.Module:
    """The run's architecture at its width, with its ``pretrained`` weights when given, and
    the parts ``training.freeze`` names frozen."""
    model = build_arch(dataclasses.asdict(spec.arch), splits.num_classes, splits.in_channels)
    freeze(model, spec.arch.name, spec.training.freeze)
    return model


def make_closure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                 cast=contextlib.nullcontext):
    """The classification closure on images ``x`` and labels ``y`` (see :func:`task_closure`)."""
    return task_closure(model, (x, y), optimizer, task_of_dataset("mnist_embedded"), cast)


def task_closure(model: nn.Module, batch, optimizer: torch.optim.Optimizer, task: Task,
                 cast=contextlib.nullcontext, label_smoothing: float = 0.0):
    """Forward + backward on one batch (the task's loss); ``track_bn_stats=False`` leaves BN
    running stats alone (nothing to leave in a model without BatchNorm, e.g. BERT). ``cast``
    wraps the forward pass (bf16 autocast); the backward runs outside it, as usual."""
    def closure(track_bn_stats: bool = True) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)  # every parameter gets a gradient: same values, no zeroing pass
        with cast(), (contextlib.nullcontext() if track_bn_stats else frozen_bn_stats(model)):
            loss = task.loss(model, batch, label_smoothing)
        loss.backward()
        return loss.detach()

    return closure


def build_optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    prunable = prunable_parameters(model, spec.prunable)
    return METHODS.get(spec.method.name)(model, prunable, seed=spec.run.seed, **spec.method.params)


# where a resumed run finds the loss its schedule read for each finished epoch
SCHEDULE_LOSS_KEY = {"epoch_mean": "train_loss", "last_batch": "last_batch_loss"}


def build_scheduler(spec: RunSpec, optimizer, steps_per_epoch: int, epoch_losses: list[float]):
    """LambdaLR over optimizer steps; ``epoch_losses`` (appended by the loop) feeds schedules
    that adapt to the training loss (SFW-pruning's)."""
    t = spec.training
    factor = lr_factor(t.schedule, steps_per_epoch * t.epochs, round(t.warmup_epochs * steps_per_epoch),
                       t.milestones, steps_per_epoch, t.schedule_unit == "epoch", epoch_losses)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_step(net: nn.Module, optimizer, scheduler, batch, processes: Processes, stop: bool = False,
               precision: str = "fp32", layout: torch.memory_format = torch.contiguous_format,
               task: Task | None = None, label_smoothing: float = 0.0) -> tuple[torch.Tensor, bool]:
    """One step on this process's shard of the global batch (images and labels by default, or
    what ``task`` batches); returns the loss (mean over the processes, a 0-d tensor left on the
    device) and whether any process was asked to stop. Batches already on the device
    (in-memory data) are not copied; streamed ones are moved here."""
    task = task or task_of_dataset("mnist_embedded")
    batch = task.move(shard_batch(batch, processes), processes.device, layout)
    cast = functools.partial(autocast, processes.device, precision)
    loss = optimizer.step(task_closure(net, batch, optimizer, task, cast, label_smoothing))
    scheduler.step()
    return agree(loss, stop, processes)


@dataclass
class Trainer:
    """The parts of one run that a step touches and a resume state holds."""

    spec: RunSpec
    splits: ImageSplits
    model: nn.Module  # what is checkpointed
    net: nn.Module  # what the closure calls: DDP around ``model`` on several processes
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    data_order: torch.Generator
    processes: Processes
    resume: Path | None
    epoch_losses: list[float]  # the schedule's loss per finished epoch (schedule_loss), the same on every process
    clock: EpochClock  # this process's epoch times, for the progress lines
    saved: dict | None = None  # the resume state found at the start, until starting_position uses it
    task: Task = dataclasses.field(default_factory=lambda: task_of_dataset("mnist_embedded"))

    def parts(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}

    def where(self, position: Position) -> str:
        return f"run {self.spec.run.name}, epoch {position.epoch + 1}, step {position.step}"

    def save(self, position: Position, curves: list) -> None:
        if self.resume is not None and self.processes.writer:
            save_state(self.resume, self.spec.hash(), self.parts(), position, curves)


def init_batches(splits, batch_size: int, seed: int, augment: bool) -> Iterator[Batch]:
    """SFW-Init's training batches, endless (epoch after epoch), shuffled by a generator of their
    own: the run's data order stays that of the same run without SFW-Init."""
    digest = hashlib.sha256(f"sfw_init/{seed}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
    while True:
        empty = True
        for batch in train_batches(splits, batch_size, generator, augment):
            empty = False
            yield batch
        if empty:
            raise ValueError(f"SFW-Init: no batch of {batch_size} images in the training split")


def build_trainer(spec: RunSpec, data_path: str | Path, resume: str | Path | None) -> Trainer:
    training = spec.training
    processes = setup(training.gpus_per_run, training.batch_size, training.device)
    splits = load_splits(data_path, spec.dataset).to(processes.device)
    model = prepare_model(model_for(spec, splits), processes, training.sync_bn)
    optimizer = build_optimizer(spec, model)
    saved = load_state(resume, spec.hash()) if resume is not None else None
    if saved is None:  # a resume state replaces SFW-Init's weights and scales: skip its 390+ steps
        # SFW-Init (when the method asks for it); before DDP copies rank 0's weights
        learn_initialization(model, optimizer, init_batches(splits, training.batch_size, spec.run.seed, training.augment))
    if processes.distributed and isinstance(splits, StreamingSplits):  # decode only this process's shard
        splits = splits.sharded(processes.rank, processes.world)
        processes = dataclasses.replace(processes, presharded=True)
    epoch_losses: list[float] = []
    scheduler = build_scheduler(spec, optimizer, len(splits.train_labels) // training.batch_size, epoch_losses)
    data_order = torch.Generator().manual_seed(spec.run.seed)
    net = wrap(model, processes)
    if training.compile:
        net = torch.compile(net)  # the parameters stay ``model``'s: what is checkpointed
    return Trainer(spec, splits, model, net, optimizer, scheduler, data_order, processes,
                   Path(resume) if resume is not None else None, epoch_losses, EpochClock(training.epochs), saved,
                   task_of(spec.dataset))


def starting_position(t: Trainer) -> tuple[Position, list]:
    """The saved position and curves of this run, or the start of training."""
    payload, t.saved = t.saved, None
    if payload is None:
        return Position(0, 0, t.data_order.get_state()), []
    position, curves = restore(payload, t.parts())
    t.epoch_losses.extend(c[SCHEDULE_LOSS_KEY[t.spec.training.schedule_loss]] for c in curves)
    if t.processes.writer:
        print(f"resume: {t.where(position)} from {t.resume}", flush=True)
    return position, curves


def run_epoch(t: Trainer, position: Position, stop: StopRequest, curves: list) -> int:
    """The steps of epoch ``position.epoch`` after the ``position.step`` already done; returns
    how many steps this call ran."""
    training, ran = t.spec.training, 0
    t.data_order.set_state(position.epoch_start)
    t.net.train()
    t.clock.begin_epoch()
    layout = memory_format(t.processes.device, t.model)
    batches = t.task.train_batches(t.splits, training.batch_size, t.data_order, training.augment)
    if t.processes.writer:
        batches = step_bar(batches, len(t.splits.train_labels) // training.batch_size,
                           f"epoch {position.epoch + 1}/{training.epochs}")
    watch = LossWatch(t.model)  # the losses are read back every CHECK_EVERY steps, not every step
    for index, batch in enumerate(batches):
        if index < position.step:
            continue  # replayed: consumes the data order and augmentation draws of a done step
        lr = t.optimizer.param_groups[0]["lr"]
        loss, stopping = train_step(t.net, t.optimizer, t.scheduler, batch, t.processes, stop.requested,
                                    training.precision, layout, t.task, training.label_smoothing)
        position.step, ran = index + 1, ran + 1
        position.losses.extend(watch.add(loss, t.where(position), lr))
        if stopping:
            position.losses.extend(watch.read())  # the state is saved from finite weights only
            interrupt(t, position, curves, stop)
    position.losses.extend(watch.read())
    return ran


def interrupt(t: Trainer, position: Position, curves: list, stop: StopRequest) -> None:
    t.save(position, curves)
    barrier(t.processes)  # no process exits (and lets torchrun stop the others) before the save
    raise Interrupted(f"{t.where(position)}: stopped by {stop.signal_name or 'a stop signal'}; "
                      f"state saved to {t.resume}; rerun the same command to resume")


def end_epoch(t: Trainer, position: Position, curves: list, steps_ran: int | None = None) -> Position:
    """Evaluate (process 0) and log the epoch's line (images/s over the ``steps_ran`` steps this
    process ran, default all of the epoch's), then save the state at the next epoch's start
    (not after the last)."""
    steps_ran = position.step if steps_ran is None else steps_ran
    mean, last_batch = t.spec.training.schedule_loss == "epoch_mean", position.losses[-1]
    train_loss = float(np.mean(position.losses))
    t.epoch_losses.append(train_loss if mean else last_batch)
    t.clock.end_epoch()
    if t.processes.writer:
        scores, test_loss = t.task.evaluate(t.model, t.splits, t.spec.training.eval_batch_size)
        curves.append({"epoch": position.epoch + 1, "train_loss": train_loss,
                       **{f"test_{metric}": value for metric, value in scores.items()},
                       "test_loss": test_loss, **({} if mean else {"last_batch_loss": last_batch})})
        print(t.clock.line(position.epoch + 1, train_loss, scores[t.task.primary], t.optimizer.param_groups[0]["lr"],
                           steps_ran * t.spec.training.batch_size, t.task.primary), flush=True)
    following = Position(position.epoch + 1, 0, t.data_order.get_state())
    if following.epoch < t.spec.training.epochs:
        t.save(following, curves)
    return following


def evaluate_as_given(t: Trainer) -> dict:
    """``epochs: 0``: the weights as given (``pretrained``), evaluated once; CrAM Table 16's
    Baseline is torchvision's weights as downloaded."""
    scores, test_loss = t.task.evaluate(t.model, t.splits, t.spec.training.eval_batch_size)
    print(f"epoch 0/0  the weights as given: test {t.task.primary} {scores[t.task.primary]:.2f}%", flush=True)
    return {"epoch": 0, **{f"test_{metric}": value for metric, value in scores.items()}, "test_loss": test_loss}


def finish(t: Trainer, checkpoint: str | Path, curves: list, elapsed: float) -> dict:
    """Write the checkpoint and its JSON, then drop the resume state it makes useless."""
    spec, splits = t.spec, t.splits
    # the checkpoint rebuilds its model from name and width, or the config a builder records
    # (the pretrained file or folder is not needed)
    arch = checkpoint_arch(t.model, dataclasses.asdict(spec.arch))
    save_checkpoint(t.model, arch, splits.num_classes, splits.in_channels, checkpoint)
    device = describe(t.processes.device, spec.training.precision, spec.training.tf32)
    device.update(processes=t.processes.world, compiled=spec.training.compile)
    info = provenance(spec.as_dict(), spec.run.seed, elapsed, device)
    primary = f"test_{t.task.primary}"
    info.update(run=spec.run.identity(), curves=curves, **{f"final_{primary}": curves[-1][primary]})
    write_json_atomic(Path(checkpoint).with_suffix(".json"), info)
    remove_state(t.resume)
    return info


def train_run(spec: RunSpec, data_path: str | Path, checkpoint: str | Path,
              resume: str | Path | None = None) -> dict:
    """Train one run and write ``checkpoint`` (+ ``.json`` with provenance and curves).

    With ``resume`` (a path outside the rule's outputs) the state is saved there after every
    epoch and on SIGTERM/SIGUSR1, a saved state of the same run and code is continued, and the
    file is removed once the checkpoint is written. Returns the JSON's content ({} on processes
    other than 0, which write nothing).
    """
    start = time.perf_counter()
    make_deterministic(spec.run.seed, spec.training.threads, spec.training.compile)
    use_tf32(spec.training.tf32)
    t = build_trainer(spec, data_path, resume)  # a torchrun process group stays: training/distributed.py
    position, curves = starting_position(t)
    stop = StopRequest()
    with stop if resume is not None else contextlib.nullcontext():
        while position.epoch < spec.training.epochs:
            steps_ran = run_epoch(t, position, stop, curves)
            position = end_epoch(t, position, curves, steps_ran)
    if spec.training.epochs == 0 and t.processes.writer:
        curves.append(evaluate_as_given(t))
    return finish(t, checkpoint, curves, time.perf_counter() - start) if t.processes.writer else {}
