"""Seeded batches: data order and augmentation come from one torch.Generator (determinism).

The three entry points (``train_batches``, ``test_batches``, ``calibration_batches``) take either
in-memory :class:`ImageSplits` or :class:`StreamingSplits`, whose own methods then serve them.
"""
from __future__ import annotations

import functools
from typing import Iterator

import torch

from .folders import StreamingSplits
from .splits import ImageSplits


def channel_stats(values, device: torch.device) -> torch.Tensor:
    """Per-channel statistics as a (1, C, 1, 1) tensor on ``device``, built once per device (a
    tensor made from Python numbers is a host-to-device copy, which would be one per batch)."""
    return _channel_stats(tuple(float(v) for v in values), torch.device(device))


@functools.lru_cache(maxsize=32)
def _channel_stats(values: tuple, device: torch.device) -> torch.Tensor:
    return torch.tensor(values, device=device).view(1, -1, 1, 1)


def standardize(x: torch.Tensor, splits: ImageSplits) -> torch.Tensor:
    """[0, 1]-scaled images -> per-channel zero mean, unit variance (the dataset's statistics)."""
    return (x - channel_stats(splits.mean, x.device)) / channel_stats(splits.std, x.device)


def normalize(images: torch.Tensor, splits: ImageSplits) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, scaled to [0, 1] and standardized per channel."""
    return standardize(images.float() / 255.0, splits)


def draw_augmentation(splits: ImageSplits, b: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The random draws of one batch of ``b`` images, in this order: the crop offsets dy and dx
    (with padding) and the flips (with flipping), as int64 CPU tensors of length ``b``."""
    draws = []
    if splits.crop_padding:
        p = splits.crop_padding
        draws += [torch.randint(0, 2 * p + 1, (b,), generator=generator) for _ in "yx"]
    if splits.flip:
        draws.append((torch.rand(b, generator=generator) < 0.5).long())
    return draws


def apply_augmentation(images: torch.Tensor, splits: ImageSplits, draws: list[torch.Tensor]) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip (the ``draws`` of
    :func:`draw_augmentation`, on the images' device) for a whole batch at once."""
    x = images.float() / 255.0
    b, c, h, w = x.shape
    p, on = splits.crop_padding, x.device
    if p:
        dy, dx, *draws = draws
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        rows = (dy[:, None] + torch.arange(h, device=on))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=on))[:, None, None, :]
        x = padded[torch.arange(b, device=on)[:, None, None, None],
                   torch.arange(c, device=on)[None, :, None, None], rows, cols]
    if splits.flip:
        x = torch.where(draws[0].bool()[:, None, None, None], x.flip(3), x)
    return standardize(x, splits)


def augment(images: torch.Tensor, splits: ImageSplits, generator: torch.Generator) -> torch.Tensor:
    """Random crop and flip of one batch. The draws come from the CPU ``generator`` whatever
    the images' device, so a seed gives the same crops and flips on a GPU as on the CPU."""
    draws = draw_augmentation(splits, len(images), generator)
    return apply_augmentation(images, splits, [d.to(images.device) for d in draws])


def epoch_draws(splits: ImageSplits, batch_size: int, generator: torch.Generator,
                augmented: bool) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """An epoch's order and every batch's augmentation draws, drawn up front in the order a
    batch-by-batch loop draws them (the order, then batch after batch), and moved to the
    images' device in one copy: the loop then reads nothing from the host."""
    n = len(splits.train_labels)
    order = torch.randperm(n, generator=generator)
    steps = (n - batch_size) // batch_size + 1 if n >= batch_size else 0
    per_batch = [draw_augmentation(splits, batch_size, generator) for _ in range(steps)] if augmented else []
    flat = torch.cat([order, *(d for draws in per_batch for d in draws)])
    device = splits.train_images.device
    if device.type == "cuda":
        flat = flat.pin_memory()
    flat = flat.to(device, non_blocking=True)
    kinds = len(per_batch[0]) if per_batch else 0  # draws per batch: dy, dx, flips (or fewer)
    rest = flat[n:].view(steps, kinds, batch_size)
    return flat[:n], [list(rest[i].unbind(0)) for i in range(steps)]


def train_batches(splits: ImageSplits, batch_size: int, generator: torch.Generator,
                  augmented: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled training batches (the last, smaller batch is dropped, as usual)."""
    if isinstance(splits, StreamingSplits):
        yield from splits.train_batches(batch_size, generator, augmented)
        return
    order, draws = epoch_draws(splits, batch_size, generator, augmented)
    for step, start in enumerate(range(0, len(order) - batch_size + 1, batch_size)):
        idx = order[start:start + batch_size]
        images = splits.train_images[idx]
        x = apply_augmentation(images, splits, draws[step]) if augmented else normalize(images, splits)
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
