"""Fashion-MNIST (Xiao et al. 2017) from the official IDX files, read by torchvision's IDX reader.

Offline from a local copy (``dataset.root``, else ``resources/data/FashionMNIST/raw`` and the
Debian package ``dataset-fashion-mnist`` at /usr/share/datasets/fashion-mnist), or downloaded by
torchvision. The Debian package recompresses the files, so a ``.gz`` passes when either the
archive's official md5 or the md5 of its uncompressed IDX bytes matches; both are checked at
every preparation.
"""
from __future__ import annotations

import gzip
import hashlib
import tempfile
from pathlib import Path

from ..registry import DATASETS
from .checksums import IntegrityError, missing_root
from .splits import ImageSplits

# IDX name -> (official md5 of the .gz as torchvision downloads it, md5 of the uncompressed file)
OFFICIAL = {
    "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = (0.2860,), (0.3530,)  # training-set statistics on the [0, 1] scale
# Augmentation as for the embedded MNIST (random crop with 2 px padding, no flips); none of the
# three papers trains on Fashion-MNIST, so there is no paper setting to follow.


def search_dirs(cfg: dict) -> list[Path]:
    """A given root is searched alone (and its torchvision layout); otherwise the default list."""
    if "root" in cfg:
        root = Path(cfg["root"])
        return [root, root / "FashionMNIST" / "raw"]
    return [Path("resources/data/FashionMNIST/raw"), DEBIAN_DIR]


def locate(dirs: list[Path], names) -> Path | None:
    """The first folder holding every file, each uncompressed or as ``.gz``."""
    for folder in dirs:
        if all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names):
            return folder
    return None


def verified_bytes(folder: Path, name: str, official: dict) -> bytes:
    """The uncompressed IDX bytes of ``name`` after its checksum passed."""
    gz_md5, raw_md5 = official[name]
    raw, gz = folder / name, folder / f"{name}.gz"
    if raw.is_file():
        path, data = raw, raw.read_bytes()
    else:
        path, archive = gz, gz.read_bytes()
        data = gzip.decompress(archive)
        if hashlib.md5(archive, usedforsecurity=False).hexdigest() == gz_md5:
            return data  # the official archive itself
    found = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if found != raw_md5:  # e.g. a recompressed copy: it must still hold the official bytes
        raise IntegrityError(f"{path}: md5 of the IDX data {found} is not the official {raw_md5}")
    return data


def read_idx(folder: Path, official: dict) -> ImageSplits:
    """Verify the four files, then parse them with torchvision's reader (it reads from paths)."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    tensors = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in official:
            (Path(tmp) / name).write_bytes(verified_bytes(folder, name, official))
            reader = read_image_file if "images" in name else read_label_file
            tensors[name] = reader(str(Path(tmp) / name))
    train_x, train_y, test_x, test_y = (tensors[n] for n in official)
    return ImageSplits(train_x.unsqueeze(1), train_y, test_x.unsqueeze(1), test_y, 10, MEAN, STD,
                       crop_padding=2, flip=False)


def download(root: Path) -> Path:
    """torchvision's download of the official archives (md5-checked) into root/FashionMNIST/raw."""
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(root), train=True, download=True)
    return root / "FashionMNIST" / "raw"


@DATASETS.register("fashion_mnist")
def fashion_mnist(cfg: dict, official: dict = OFFICIAL) -> ImageSplits:
    """60,000 / 10,000 28x28 grey images of 10 clothing classes."""
    dirs = search_dirs(cfg)
    folder = locate(dirs, official)
    if folder is None:
        if not cfg.get("download", True):
            raise missing_root("dataset.root", dirs[0], "no Fashion-MNIST IDX files in "
                               f"{', '.join(map(str, dirs))} and dataset.download is false")
        folder = download(Path(cfg.get("root", "resources/data")))
    return read_idx(folder, official)

fashion_mnist.train_size = 60_000  # training images (the config check bounds batch and BNT sizes by it)
fashion_mnist.test_size, fashion_mnist.image_shape, fashion_mnist.num_classes = 10_000, (1, 28, 28), 10  # planner
