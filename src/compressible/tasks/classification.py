"""Image classification: cross-entropy on labels, top-1 accuracy (every image experiment)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import train_batches
from ..registry import TASKS
from .base import Task


class Classification(Task):
    name = "classification"
    metrics = ("accuracy",)

    def train_batches(self, splits, batch_size, generator, augment):
        return train_batches(splits, batch_size, generator, augment)

    def move(self, batch, device, layout):
        x, y = batch
        return x.to(device, non_blocking=True, memory_format=layout), y.to(device, non_blocking=True)

    def loss(self, model, batch, label_smoothing=0.0):
        x, y = batch
        return F.cross_entropy(model(x), y, label_smoothing=label_smoothing)

    def evaluate(self, model, splits, batch_size):
        from ..evaluate import evaluate

        accuracy, loss = evaluate(model, splits, batch_size)
        return {"accuracy": accuracy}, loss


TASKS.register("classification")(Classification())
