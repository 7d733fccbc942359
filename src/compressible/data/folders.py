"""Image folders streamed from disk: ImageNet (ILSVRC-2012) and any ``root/{train,val}/<class>/``.

Too large to hold in memory, these are decoded by a torchvision ``DataLoader`` with workers and
pinned memory. Preparing writes only an index: the sorted file lists with their labels, the
normalization, and the sha256 of the lists (provenance), never the images. Training uses
RandomResizedCrop + horizontal flip, evaluation resize (size·256/224) + center crop, the
standard ImageNet protocol (CrAM's ResNet-50 runs, compression-aware SFW's ImageNet runs).

Every augmented sample draws its crop and flip from its own seed, taken from the run's
generator with the data order, so batches are the same for any number of workers.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator

import torch

from ..registry import DATASETS
from .checksums import missing_root
from .files import dataset_root
from .splits import interleave_classes

INDEX_FORMAT = "compressible.image_folder_index/1"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STATS_IMAGES = 2000  # images (evenly spaced over the training list) that estimate mean and std


def scan(root: Path) -> dict:
    """Sorted (path, label) lists of both splits, classes interleaved (balanced prefixes)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    classes, class_to_idx = find_classes(str(root / "train"))
    val_classes, _ = find_classes(str(root / "val"))
    if val_classes != classes:
        raise ValueError(f"{root / 'val'}: its class folders differ from those of {root / 'train'}")
    lists = {}
    for split in ("train", "val"):
        samples = make_dataset(str(root / split), class_to_idx, extensions=IMG_EXTENSIONS)
        order = interleave_classes([label for _, label in samples]).tolist()
        lists[split] = [(os.path.relpath(samples[i][0], root), samples[i][1]) for i in order]
    return {"classes": classes, "train": lists["train"], "test": lists["val"]}


def list_digest(lists: dict) -> str:
    """sha256 over 'split<TAB>label<TAB>path' lines: names the exact set of files used."""
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for path, label in lists[split]:
            digest.update(f"{split}\t{label}\t{path}\n".encode())
    return digest.hexdigest()


def eval_transform(size: int, mean, std):
    from torchvision import transforms as T

    return T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])


def train_transform(size: int, mean, std):
    from torchvision import transforms as T

    return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])


class FolderImages(torch.utils.data.Dataset):
    """Items are (position, seed): seed None = the deterministic evaluation transform."""

    def __init__(self, root: Path, paths: list[str], labels: torch.Tensor, train_tf, eval_tf):
        self.root, self.paths, self.labels = root, paths, labels
        self.train_tf, self.eval_tf = train_tf, eval_tf

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int | None]) -> tuple[torch.Tensor, int]:
        from PIL import Image

        position, seed = item
        with Image.open(self.root / self.paths[position]) as image:
            image = image.convert("RGB")
        if seed is None:
            return self.eval_tf(image), int(self.labels[position])
        with torch.random.fork_rng(devices=[]):  # the crop and flip depend on this seed only
            torch.manual_seed(seed)
            return self.train_tf(image), int(self.labels[position])


def image_statistics(root: Path, paths: list[str], size: int) -> tuple[tuple, tuple]:
    """Per-channel mean and std over evenly spaced training images (evaluation crop)."""
    step = max(1, len(paths) // STATS_IMAGES)
    data = FolderImages(root, paths[::step][:STATS_IMAGES], torch.zeros(len(paths), dtype=torch.int64),
                        None, eval_transform(size, (0.0,) * 3, (1.0,) * 3))
    total, square, count = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 0
    for i in range(len(data)):
        x = data[(i, None)][0].double()
        total += x.sum((1, 2))
        square += x.square().sum((1, 2))
        count += x[0].numel()
    mean = total / count
    std = (square / count - mean.square()).clamp_min(0).sqrt()
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def build_index(cfg: dict, size: int, mean=None, std=None) -> dict:
    """The prepared form of a folder dataset (what ``prepare`` writes instead of the images)."""
    root = dataset_root(cfg)
    lists = scan(root)
    if mean is None:
        mean, std = image_statistics(root, [p for p, _ in lists["train"]], size)
    return {
        "format": INDEX_FORMAT, "name": cfg["name"], "root": str(root), "classes": lists["classes"],
        "image_size": size, "mean": tuple(mean), "std": tuple(std), "files_sha256": list_digest(lists),
        **{f"{s}_paths": "\n".join(p for p, _ in lists[s]) for s in ("train", "test")},
        **{f"{s}_labels": torch.tensor([label for _, label in lists[s]], dtype=torch.int64)
           for s in ("train", "test")},
    }


class StreamingSplits:
    """The batch interface of :class:`ImageSplits` (train/test/calibration batches, labels,
    ``num_classes``, ``in_channels``, ``input_shape``, ``subset``, ``save``) over a folder."""

    def __init__(self, index: dict, workers: int | None = None):
        self.index = index
        self.root = Path(index["root"])
        self.train_paths = index["train_paths"].split("\n") if index["train_paths"] else []
        self.test_paths = index["test_paths"].split("\n") if index["test_paths"] else []
        self.train_labels, self.test_labels = index["train_labels"], index["test_labels"]
        self.num_classes, self.in_channels = len(index["classes"]), 3
        self.mean, self.std = tuple(index["mean"]), tuple(index["std"])
        self.image_size = index["image_size"]
        self.workers = min(8, len(os.sched_getaffinity(0))) if workers is None else workers
        self.process_shard = (0, 1)  # (rank, world): which part of each global batch is decoded here

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)

    def subset(self, train: int | None, test: int | None) -> "StreamingSplits":
        """The first ``train`` / ``test`` files of the (class-interleaved) lists."""
        index = dict(self.index)
        for split, n in (("train", train), ("test", test)):
            if n is not None:
                index[f"{split}_paths"] = "\n".join(getattr(self, f"{split}_paths")[:n])
                index[f"{split}_labels"] = index[f"{split}_labels"][:n]
        return StreamingSplits(index, self.workers)

    def sharded(self, rank: int, world: int) -> "StreamingSplits":
        """Under DDP: training batches hold only process ``rank``'s contiguous part of each global
        batch (distributed.shard's part), so each process decodes 1/world of the images."""
        copy = StreamingSplits(self.index, self.workers)
        copy.process_shard = (rank, world)
        return copy

    def to(self, device: torch.device) -> "StreamingSplits":
        """Streamed batches stay where the loader's workers put them (pinned host memory on a
        GPU machine); the training step moves each to the device."""
        return self

    def save(self, path: str | Path) -> str:
        from .splits import sha256

        torch.save(self.index, path)
        return sha256(path)

    def _images(self, split: str) -> FolderImages:
        size, mean, std = self.image_size, self.mean, self.std
        return FolderImages(self.root, getattr(self, f"{split}_paths"), getattr(self, f"{split}_labels"),
                            train_transform(size, mean, std), eval_transform(size, mean, std))

    def _loader(self, split: str, items: list, batch_size: int, drop_last: bool):
        return torch.utils.data.DataLoader(
            self._images(split), batch_size=batch_size, sampler=items, drop_last=drop_last,
            num_workers=self.workers, pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(0))  # leaves the global RNG alone

    def train_batches(self, batch_size: int, generator: torch.Generator,
                      augmented: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch: order and per-sample augmentation seeds from ``generator``; last batch dropped."""
        n = len(self.train_labels)
        order = torch.randperm(n, generator=generator).tolist()
        seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
        items = [(i, s if augmented else None) for i, s in zip(order, seeds)]
        rank, world = self.process_shard
        local = batch_size // world  # the same order and seeds on every process; each takes its part
        mine = [item for start in range(0, n - batch_size + 1, batch_size)
                for item in items[start + rank * local:start + (rank + 1) * local]]
        yield from self._loader("train", mine, local, drop_last=True)

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield from self._loader("test", [(i, None) for i in range(len(self.test_labels))], batch_size, False)

    def calibration_batches(self, samples: int, batch_size: int, batches: int,
                            seed: int) -> Iterator[torch.Tensor]:
        """BNT (CrAM §3.3): ``batches`` augmented batches from ``samples`` training files that
        ``seed`` fixes, as :func:`compressible.data.batches.calibration_batches` in memory."""
        generator = torch.Generator().manual_seed(seed)
        n = len(self.train_labels)
        if samples > n:
            raise ValueError(f"bnt.samples={samples} exceeds the {n} training images")
        subset = torch.randperm(n, generator=generator)[:samples]
        size = min(batch_size, samples)
        picks = subset[torch.randint(0, samples, (batches * size,), generator=generator)].tolist()
        seeds = torch.randint(0, 2**62, (batches * size,), generator=generator).tolist()
        for x, _ in self._loader("train", list(zip(picks, seeds)), size, drop_last=False):
            yield x


def is_index(payload: object) -> bool:
    return isinstance(payload, dict) and payload.get("format") == INDEX_FORMAT


def from_index(index: dict, cfg: dict) -> StreamingSplits:
    """A prepared index for the experiment's config: the images must be where it says."""
    root = dataset_root(cfg)
    if Path(index["root"]) != root:
        raise ValueError(f"config key 'dataset.root': {root} is not the folder the prepared index was "
                         f"built from ({index['root']}); prepare the dataset again")
    given = {k: tuple(cfg[k]) for k in ("mean", "std") if k in cfg}
    return StreamingSplits(dict(index, **given), cfg.get("workers"))


def given_normalization(cfg: dict) -> tuple:
    return (cfg.get("mean"), cfg.get("std"))


@DATASETS.register("imagenet")
def imagenet(cfg: dict) -> StreamingSplits:
    """ILSVRC-2012 in the usual class-folder layout at ``dataset.root``; 224 px, ImageNet statistics."""
    mean, std = given_normalization(cfg)
    index = build_index(cfg, cfg.get("image_size", 224), mean or IMAGENET_MEAN, std or IMAGENET_STD)
    return StreamingSplits(index, cfg.get("workers"))


# ILSVRC-2012's split sizes, for the planner only: a folder's own size is known once it is indexed
imagenet.nominal_sizes = (1_281_167, 50_000)
imagenet.num_classes = 1000


@DATASETS.register("imagefolder")
def imagefolder(cfg: dict) -> StreamingSplits:
    """Any ``root/{train,val}/<class>/`` dataset; normalization given (mean, std) or estimated."""
    mean, std = given_normalization(cfg)
    if (mean is None) != (std is None):
        raise ValueError("config keys 'dataset.mean' and 'dataset.std': give both or neither")
    index = build_index(cfg, cfg.get("image_size", 224), mean, std)
    return StreamingSplits(index, cfg.get("workers"))
