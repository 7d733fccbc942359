"""Seeded batches: data order and augmentation come from one torch.Generator (determinism).

The three entry points (``train_batches``, ``test_batches``, ``calibration_batches``) take either
in-memory :class:`ImageSplits` or :class:`StreamingSplits`, whose own methods then serve them.
"""
from __future__ import annotations

from typing import Iterator

import torch

from .folders import StreamingSplits
from .splits import ImageSplits


def standardize(x: torch.Tensor, splits: ImageSplits) -> torch.Tensor:
    """[0, 1]-scaled images -> per-channel zero mean, unit variance (the dataset's statistics)."""
    mean = torch.tensor(splits.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(splits.std, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def normalize(images: torch.Tensor, splits: ImageSplits) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, scaled to [0, 1] and standardized per channel."""
    return standardize(images.float() / 255.0, splits)


def augment(images: torch.Tensor, splits: ImageSplits, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, for a whole batch at once, on
    the images' device. The draws come from the CPU ``generator`` whatever that device, so a
    seed gives the same crops and flips on a GPU as on the CPU."""
    x = images.float() / 255.0
    b, c, h, w = x.shape
    p, on = splits.crop_padding, x.device
    if p:
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None].to(on)
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :].to(on)
        x = padded[torch.arange(b, device=on)[:, None, None, None],
                   torch.arange(c, device=on)[None, :, None, None], rows, cols]
    if splits.flip:
        flips = (torch.rand(b, generator=generator) < 0.5).to(on)
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    return standardize(x, splits)


def train_batches(splits: ImageSplits, batch_size: int, generator: torch.Generator,
                  augmented: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled training batches (the last, smaller batch is dropped, as usual)."""
    if isinstance(splits, StreamingSplits):
        yield from splits.train_batches(batch_size, generator, augmented)
        return
    order = torch.randperm(len(splits.train_labels), generator=generator)
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start:start + batch_size].to(splits.train_images.device)
        images = splits.train_images[idx]
        x = augment(images, splits, generator) if augmented else normalize(images, splits)
        yield x, splits.train_labels[idx]


def test_batches(splits: ImageSplits, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(splits, StreamingSplits):
        yield from splits.test_batches(batch_size)
        return
    for start in range(0, len(splits.test_labels), batch_size):
        yield (normalize(splits.test_images[start:start + batch_size], splits),
               splits.test_labels[start:start + batch_size])


def calibration_batches(splits: ImageSplits, samples: int, batch_size: int, batches: int,
                        seed: int) -> Iterator[torch.Tensor]:
    """BNT calibration (CrAM §3.3, App. C.3): a random subset of ``samples`` training images,
    drawn once from ``seed``; ``batches`` batches of ``batch_size`` are sampled from it with
    training augmentation (the paper: 1000 samples, 100 batches of 128)."""
    if isinstance(splits, StreamingSplits):
        yield from splits.calibration_batches(samples, batch_size, batches, seed)
        return
    generator = torch.Generator().manual_seed(seed)
    n = len(splits.train_labels)
    if samples > n:
        raise ValueError(f"bnt.samples={samples} exceeds the {n} training images")
    subset = torch.randperm(n, generator=generator)[:samples]
    for _ in range(batches):
        pick = subset[torch.randint(0, samples, (min(batch_size, samples),), generator=generator)]
        yield augment(splits.train_images[pick.to(splits.train_images.device)], splits, generator)
