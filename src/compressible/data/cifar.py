"""CIFAR-10 / CIFAR-100 from the official 'python version' archives (Krizhevsky 2009).

The batch files are pickles, and unpickling runs whatever the file names. So every file's md5
is checked against the official one before it is opened, on every preparation, and the
unpickler admits only the globals of the format (a NumPy uint8 array inside dicts, lists, bytes,
str and int): a planted file can neither pass the checksum nor run code.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..registry import DATASETS
from .checksums import missing_root, verify_md5
from .splits import ImageSplits


@dataclass(frozen=True)
class CifarFormat:
    url: str
    archive_md5: str
    folder: str
    train_files: dict  # file name -> official md5, in reading order
    test_files: dict
    label_key: bytes
    classes: int
    mean: tuple  # per channel, [0, 1] scale
    std: tuple


CIFAR10 = CifarFormat(
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
    "cifar-10-batches-py",
    {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
     "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
     "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb"},
    {"test_batch": "40351d587109b95175f43aff81a1287e"},
    b"labels", 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # CrAM's and SFW's constants

CIFAR100 = CifarFormat(
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-python", {"train": "16019d7e3df5f24257cddd939b257f8d"},
    {"test": "f0ef6b0ae62326f3e7ffdfab6717acfc"},
    b"fine_labels", 100, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))  # CrAM's and compression-aware SFW's

# The only globals a CIFAR batch refers to: NumPy's array reconstruction (under the module name
# of NumPy 1 and of NumPy 2), resolved here to the objects themselves, never by importing a name.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class CifarUnpickler(pickle.Unpickler):
    """Resolves only the globals of the CIFAR format; anything else is refused, unresolved."""

    def __init__(self, handle, path: Path):
        super().__init__(handle, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"{self.path}: refuses global {module}.{name}; a CIFAR batch holds only a NumPy "
                "uint8 array, dicts, lists, bytes, str and int")
        return _ALLOWED[(module, name)]


def read_cifar_batch(path: Path, label_key: bytes, expected_md5: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file: md5 first, then the restricted unpickler; b'data' is N x 3072 uint8."""
    verify_md5(path, expected_md5)
    with open(path, "rb") as handle:
        entry = CifarUnpickler(handle, path).load()
    data = entry.get(b"data") if isinstance(entry, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or label_key not in entry:
        raise ValueError(f"{path}: not a CIFAR batch (a dict with a uint8 b'data' array and {label_key!r})")
    labels = torch.tensor(entry[label_key], dtype=torch.int64)
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), labels


def read_cifar(fmt: CifarFormat, root: Path) -> ImageSplits:
    """Read the extracted archive under ``root`` (every file verified, then parsed)."""
    folder = root / fmt.folder
    train = [read_cifar_batch(folder / f, fmt.label_key, m) for f, m in fmt.train_files.items()]
    test = [read_cifar_batch(folder / f, fmt.label_key, m) for f, m in fmt.test_files.items()]
    return ImageSplits(torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]),
                       torch.cat([x for x, _ in test]), torch.cat([y for _, y in test]),
                       fmt.classes, fmt.mean, fmt.std, crop_padding=4, flip=True)


def build_cifar(fmt: CifarFormat, cfg: dict) -> ImageSplits:
    """Download the official archive (md5-checked) when the folder is missing and allowed."""
    root = Path(cfg.get("root", "resources/data"))
    if not (root / fmt.folder).is_dir():
        if not cfg.get("download", True):
            raise missing_root("dataset.root", root / fmt.folder, "and dataset.download is false")
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(fmt.url, str(root), md5=fmt.archive_md5)
    return read_cifar(fmt, root)


@DATASETS.register("cifar10")
def cifar10(cfg: dict) -> ImageSplits:
    """CIFAR-10: random crop 32 with 4 px zero padding and horizontal flips (all three papers)."""
    return build_cifar(CIFAR10, cfg)


@DATASETS.register("cifar100")
def cifar100(cfg: dict) -> ImageSplits:
    """CIFAR-100 (fine labels), the same augmentation as CIFAR-10."""
    return build_cifar(CIFAR100, cfg)

cifar10.train_size = 50_000  # training images (the config check bounds batch and BNT sizes by it)

cifar100.train_size = 50_000  # training images (the config check bounds batch and BNT sizes by it)
cifar10.test_size = cifar100.test_size = 10_000  # what the planner counts
cifar10.image_shape = cifar100.image_shape = (3, 32, 32)
cifar10.num_classes, cifar100.num_classes = 10, 100
