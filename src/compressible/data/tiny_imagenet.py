"""Tiny-ImageNet-200 (the cs231n release) read straight from its official zip, held in memory.

The zip ``tiny-imagenet-200.zip`` is md5-checked at every preparation and its images are read
from it, so what is used is what was verified. Inside: ``wnids.txt`` (the 200 classes),
``train/<wnid>/images/*.JPEG`` (500 per class) and ``val/images/*.JPEG`` with their classes in
``val/val_annotations.txt``; the labelled val split is the test split (both SFW papers), sorted
into its classes as an ImageFolder of reorganized class folders would be. Class indices follow
the sorted wnids (ImageFolder's order). 110,000 RGB images of 64x64 are 1.35 GB as uint8.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..registry import DATASETS
from .checksums import missing_root, verify_md5
from .splits import ImageSplits, interleave_classes

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ZIP_NAME, ZIP_MD5, TOP = "tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de", "tiny-imagenet-200"
# Training-set statistics (also the SFW-pruning authors' Tiny-ImageNet constants).
MEAN, STD = (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)
# SFW-pruning trains with RandomCrop(64, padding=4) and horizontal flips.
CROP_PADDING = 4


def list_split(archive: zipfile.ZipFile, classes: list[str]) -> tuple[list[str], list[str], list[int], list[int]]:
    """(train members, test members, train labels, test labels), each sorted by file name."""
    index = {wnid: i for i, wnid in enumerate(classes)}
    train = sorted(n for n in archive.namelist()
                   if n.startswith(f"{TOP}/train/") and n.endswith(".JPEG") and "/images/" in n)
    train_labels = [index[n.split("/")[2]] for n in train]
    annotations = archive.read(f"{TOP}/val/val_annotations.txt").decode().splitlines()
    rows = [line.split("\t") for line in annotations if line]
    val = sorted((f"{TOP}/val/images/{row[0]}", index[row[1]]) for row in rows)
    return train, [n for n, _ in val], train_labels, [c for _, c in val]


def decode(archive: zipfile.ZipFile, members: list[str], size: int = 64) -> torch.Tensor:
    """JPEG members -> (N, 3, size, size) uint8; the few greyscale images become RGB."""
    from PIL import Image

    out = torch.empty((len(members), 3, size, size), dtype=torch.uint8)
    for i, name in enumerate(members):
        with Image.open(io.BytesIO(archive.read(name))) as image:
            pixels = np.asarray(image.convert("RGB"))
        if pixels.shape != (size, size, 3):
            raise ValueError(f"{name}: {pixels.shape[1]}x{pixels.shape[0]} image, expected {size}x{size}")
        out[i] = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    return out


def read_zip(path: Path, expected_md5: str = ZIP_MD5) -> ImageSplits:
    """Verify the zip, then decode both splits; classes interleaved so prefixes stay balanced."""
    verify_md5(path, expected_md5)
    with zipfile.ZipFile(path) as archive:
        classes = sorted(archive.read(f"{TOP}/wnids.txt").decode().split())
        train, test, train_y, test_y = list_split(archive, classes)
        order_tr, order_te = interleave_classes(train_y), interleave_classes(test_y)
        train_x = decode(archive, [train[i] for i in order_tr])
        test_x = decode(archive, [test[i] for i in order_te])
    return ImageSplits(train_x, torch.tensor(train_y)[order_tr], test_x, torch.tensor(test_y)[order_te],
                       len(classes), MEAN, STD, crop_padding=CROP_PADDING, flip=True)


@DATASETS.register("tiny_imagenet")
def tiny_imagenet(cfg: dict) -> ImageSplits:
    """200 classes, 100,000 training and 10,000 test images (the official val split) of 64x64."""
    root = Path(cfg.get("root", "resources/data"))
    path = root / ZIP_NAME
    if not path.is_file():
        if not cfg.get("download", True):
            raise missing_root("dataset.root", path, "and dataset.download is false")
        from torchvision.datasets.utils import download_url

        download_url(URL, str(root), ZIP_NAME, md5=ZIP_MD5)
    return read_zip(path)

tiny_imagenet.train_size = 100_000  # training images (the config check bounds batch and BNT sizes by it)
tiny_imagenet.test_size, tiny_imagenet.image_shape, tiny_imagenet.num_classes = 10_000, (3, 64, 64), 200  # planner
