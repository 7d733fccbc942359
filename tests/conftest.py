"""Shared fixtures: small synthetic image splits in the real in-memory format."""
from __future__ import annotations

import pytest
import torch

from compressible.data import ImageSplits

# Tiny tensors on a 2-core machine: one thread avoids contention between OpenMP workers.
torch.set_num_threads(1)


def synthetic_splits(n_train: int = 256, n_test: int = 64, classes: int = 4, size: int = 12,
                     seed: int = 0) -> ImageSplits:
    """Separable classes: each class brightens its own quadrant pattern, plus noise."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int):
        labels = torch.arange(n) % classes
        base = torch.randint(0, 60, (n, 1, size, size), generator=g)
        half = size // 2
        for c in range(classes):
            r, q = divmod(c, 2)
            base[labels == c, :, r * half:(r + 1) * half, q * half:(q + 1) * half] += 150
        return base.clamp(0, 255).to(torch.uint8), labels

    train, test = make(n_train), make(n_test)
    return ImageSplits(*train, *test, classes, (0.3,), (0.3,), crop_padding=1, flip=False)


@pytest.fixture
def splits() -> ImageSplits:
    return synthetic_splits()
