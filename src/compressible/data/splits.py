"""In-memory image splits: uint8 tensors plus what is needed to normalize and augment them.

Every in-memory dataset fits as uint8 (CIFAR-10 is 150 MB, Tiny-ImageNet 1.35 GB), so batches
are sliced from tensors and augmented in a batch, as in cifar10-airbench: no data-loader
bottleneck and a data order fully determined by one torch.Generator. ImageNet-sized folders stream instead
(:mod:`compressible.data.folders`).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch


@dataclass
class ImageSplits:
    train_images: torch.Tensor  # (N, C, H, W) uint8
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    crop_padding: int  # random-crop augmentation (pixels of zero padding); 0 disables it
    flip: bool  # random horizontal flips (not for digits)

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one test image, as the model sees it."""
        return tuple(self.test_images.shape[1:])

    def subset(self, train: int | None, test: int | None) -> "ImageSplits":
        """The first ``train`` / ``test`` images (None keeps all)."""
        fields = asdict(self)
        for split, n in (("train", train), ("test", test)):
            if n is not None:
                fields[f"{split}_images"] = fields[f"{split}_images"][:n]
                fields[f"{split}_labels"] = fields[f"{split}_labels"][:n]
        return ImageSplits(**fields)

    def to(self, device: torch.device) -> "ImageSplits":
        """The splits held on ``device`` once, as uint8 (CIFAR-10: 150 MB): every batch is then
        sliced, cropped and flipped there, with no per-sample Python work and no copy per step."""
        names = ("train_images", "train_labels", "test_images", "test_labels")
        return replace(self, **{name: getattr(self, name).to(device) for name in names})

    def save(self, path: str | Path) -> str:
        """Write the splits and return the file's sha256 (recorded as provenance)."""
        torch.save(asdict(self), path)
        return sha256(path)

    @classmethod
    def load(cls, path: str | Path) -> "ImageSplits":
        return cls(**torch.load(path, weights_only=True))


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def interleave_classes(labels: list[int] | torch.Tensor) -> torch.Tensor:
    """An order that takes the classes in turn (each class's items keep their order), so that a
    prefix of any length is as class-balanced as the counts allow."""
    labels = torch.as_tensor(labels)
    rank = torch.empty_like(labels)
    for c in labels.unique():
        where = torch.nonzero(labels == c).squeeze(1)
        rank[where] = torch.arange(len(where))
    return torch.argsort(rank * (int(labels.max()) + 1) + labels, stable=True)
