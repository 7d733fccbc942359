"""Each dataset through its real on-disk format: files written here in that format (and the
real Fashion-MNIST files where the Debian package is installed)."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from compressible.data import save_prepared
import torch

from compressible.data import build_splits, check_dataset_config, load_splits
from compressible.data import cifar, fashion_mnist, tiny_imagenet
from compressible.data.checksums import IntegrityError, md5


# --- CIFAR ---------------------------------------------------------------------------------------

def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], key: bytes) -> None:
    """The CIFAR 'python version' on-disk format: a pickled dict of bytes keys."""
    with open(path, "wb") as handle:
        pickle.dump({b"batch_label": b"batch", b"data": images.reshape(len(labels), -1), key: labels,
                     b"filenames": [b"a.png"] * len(labels)}, handle, protocol=4)


def write_cifar(root: Path, fmt: cifar.CifarFormat, seed: int = 0) -> tuple[cifar.CifarFormat, list]:
    """Small batch files in the real layout; returns the format with these files' md5s."""
    rng = np.random.default_rng(seed)
    (root / fmt.folder).mkdir(parents=True)
    written, sums = [], {}
    for name in [*fmt.train_files, *fmt.test_files]:
        images = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
        write_cifar_batch(root / fmt.folder / name, images, [1, 2, 3, 0], fmt.label_key)
        written.append(images)
        sums[name] = md5(root / fmt.folder / name)
    local = dataclasses.replace(fmt, train_files={n: sums[n] for n in fmt.train_files},
                                test_files={n: sums[n] for n in fmt.test_files})
    return local, written


@pytest.mark.parametrize("fmt", [cifar.CIFAR10, cifar.CIFAR100], ids=["cifar10", "cifar100"])
def test_cifar_reader_on_files_in_the_real_format(tmp_path, fmt):
    local, written = write_cifar(tmp_path, fmt)
    splits = cifar.read_cifar(local, tmp_path)
    assert splits.train_images.shape == (4 * len(fmt.train_files), 3, 32, 32)
    assert np.array_equal(splits.train_images[:4].numpy(), written[0])
    assert np.array_equal(splits.test_images.numpy(), written[-1])
    assert splits.train_labels[:4].tolist() == [1, 2, 3, 0]
    assert splits.num_classes == fmt.classes and splits.flip and splits.crop_padding == 4


def test_cifar_normalization_constants():
    assert cifar.CIFAR10.mean == (0.4914, 0.4822, 0.4465) and cifar.CIFAR10.std == (0.2023, 0.1994, 0.2010)
    assert cifar.CIFAR100.mean == (0.5071, 0.4867, 0.4408) and cifar.CIFAR100.std == (0.2675, 0.2565, 0.2761)


def test_cifar_files_are_verified_at_every_preparation(tmp_path):
    """An existing folder is not trusted: files that are not the official ones are refused."""
    write_cifar(tmp_path, cifar.CIFAR10)
    with pytest.raises(IntegrityError, match="data_batch_1: md5 .* is not the official c99cafc1"):
        build_splits({"name": "cifar10", "root": str(tmp_path), "download": False})


class PlantedPayload:
    """What a malicious batch file carries: unpickling it would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant(path: Path, marker: Path) -> None:
    with open(path, "wb") as handle:
        pickle.dump({b"data": PlantedPayload(marker), b"labels": [0]}, handle)


def test_planted_batch_file_is_refused_by_its_checksum(tmp_path):
    local, _ = write_cifar(tmp_path, cifar.CIFAR10)
    marker, victim = tmp_path / "created-by-pickle", tmp_path / "cifar-10-batches-py" / "data_batch_3"
    plant(victim, marker)
    with pytest.raises(IntegrityError, match=str(victim)):
        cifar.read_cifar(local, tmp_path)
    assert not marker.exists()


def test_planted_batch_file_with_a_matching_checksum_runs_no_code(tmp_path):
    """Even a file whose md5 was accepted cannot run code: the unpickler refuses the global."""
    local, _ = write_cifar(tmp_path, cifar.CIFAR10)
    marker, victim = tmp_path / "created-by-pickle", tmp_path / "cifar-10-batches-py" / "test_batch"
    plant(victim, marker)
    local = dataclasses.replace(local, test_files={"test_batch": md5(victim)})
    with pytest.raises(pickle.UnpicklingError, match=rf"{victim}: refuses global pathlib\.\w*Path\.touch"):
        cifar.read_cifar(local, tmp_path)
    assert not marker.exists()
    with open(victim, "rb") as handle:  # the payload is live: an unrestricted load runs it
        pickle.load(handle)
    assert marker.exists()


def test_missing_cifar_without_download_names_the_key_and_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset\.root.*cifar-10-batches-py"):
        build_splits({"name": "cifar10", "root": str(tmp_path), "download": False})


# --- Fashion-MNIST -------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format: zero bytes, type 0x08 (uint8), rank, big-endian sizes, then the data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_files(folder: Path, n_train: int = 12, n_test: int = 5, compress: bool = True) -> tuple[dict, dict]:
    """The four Fashion-MNIST files; returns (their arrays, an md5 table for them)."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    table = {}
    for name, array in arrays.items():
        raw = idx_bytes(array)
        packed = gzip.compress(raw, mtime=0)
        (folder / (f"{name}.gz" if compress else name)).write_bytes(packed if compress else raw)
        table[name] = (hashlib.md5(packed).hexdigest(), hashlib.md5(raw).hexdigest())
    return arrays, table


def test_fashion_mnist_reads_idx_files_through_torchvision(tmp_path):
    arrays, table = write_idx_files(tmp_path / "FashionMNIST" / "raw")
    splits = fashion_mnist.fashion_mnist({"name": "fashion_mnist", "root": str(tmp_path)}, official=table)
    assert splits.train_images.shape == (12, 1, 28, 28) and splits.test_images.shape == (5, 1, 28, 28)
    assert np.array_equal(splits.train_images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert splits.test_labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert splits.num_classes == 10 and splits.mean == (0.2860,) and not splits.flip


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_accepts_recompressed_or_plain_files_holding_the_official_bytes(tmp_path, compress):
    arrays, table = write_idx_files(tmp_path, compress=compress)
    recompressed = {name: ("0" * 32, raw) for name, (_, raw) in table.items()}  # other .gz bytes
    splits = fashion_mnist.fashion_mnist({"name": "fashion_mnist", "root": str(tmp_path)}, official=recompressed)
    assert splits.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_fashion_mnist_refuses_altered_data_naming_the_file(tmp_path):
    _, table = write_idx_files(tmp_path)
    altered = dict(table, **{"t10k-labels-idx1-ubyte": ("0" * 32, "1" * 32)})
    with pytest.raises(IntegrityError, match="t10k-labels-idx1-ubyte.gz: md5 of the IDX data"):
        fashion_mnist.fashion_mnist({"name": "fashion_mnist", "root": str(tmp_path)}, official=altered)


def test_fashion_mnist_missing_without_download_names_the_key_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset\.root.*FashionMNIST"):
        build_splits({"name": "fashion_mnist", "root": str(tmp_path), "download": False})


def test_fashion_mnist_default_search_list_ends_at_the_debian_copy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no resources/data/FashionMNIST/raw here
    assert fashion_mnist.search_dirs({"name": "fashion_mnist"})[-1] == fashion_mnist.DEBIAN_DIR
    if fashion_mnist.locate([fashion_mnist.DEBIAN_DIR], fashion_mnist.OFFICIAL) is None:
        pytest.skip(f"{fashion_mnist.DEBIAN_DIR} missing (apt-get install dataset-fashion-mnist)")
    splits = build_splits({"name": "fashion_mnist", "download": False})
    assert splits.train_images.shape == (60_000, 1, 28, 28) and splits.test_images.shape == (10_000, 1, 28, 28)


def test_fashion_mnist_real_files_from_the_debian_package():
    if fashion_mnist.locate([fashion_mnist.DEBIAN_DIR], fashion_mnist.OFFICIAL) is None:
        pytest.skip(f"{fashion_mnist.DEBIAN_DIR} missing (apt-get install dataset-fashion-mnist)")
    splits = fashion_mnist.read_idx(fashion_mnist.DEBIAN_DIR, fashion_mnist.OFFICIAL)
    assert len(splits.train_labels) == 60_000 and len(splits.test_labels) == 10_000
    assert splits.train_labels.bincount().tolist() == [6000] * 10
    assert splits.test_labels.bincount().tolist() == [1000] * 10
    pixels = splits.train_images.float() / 255
    assert abs(pixels.mean().item() - splits.mean[0]) < 5e-4 and abs(pixels.std().item() - splits.std[0]) < 5e-4


# --- Tiny-ImageNet -------------------------------------------------------------------------------

WNIDS = ["n02", "n01", "n03"]  # wnids.txt is not sorted; class indices follow the sorted wnids


def jpeg(color: tuple[int, int, int] | int, mode: str = "RGB") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new(mode, (64, 64), color).save(out, format="JPEG", quality=95)
    return out.getvalue()


def write_tiny_imagenet_zip(path: Path, per_class: int = 3) -> dict:
    """The official zip layout; train image i of class c is the grey level 20·c + 60·i."""
    top = tiny_imagenet.TOP
    val_lines, expected_val = [], []
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{top}/wnids.txt", "\n".join(WNIDS) + "\n")
        archive.writestr(f"{top}/words.txt", "".join(f"{w}\tthing\n" for w in WNIDS))
        for wnid in WNIDS:
            c = sorted(WNIDS).index(wnid)
            archive.writestr(f"{top}/train/{wnid}/{wnid}_boxes.txt", "")
            for i in range(per_class):
                level = 20 * c + 60 * i
                image = jpeg(level, "L") if (c, i) == (2, 1) else jpeg((level,) * 3)  # one greyscale JPEG
                archive.writestr(f"{top}/train/{wnid}/images/{wnid}_{i}.JPEG", image)
        for j, wnid in enumerate(["n03", "n01", "n02", "n01"]):
            archive.writestr(f"{top}/val/images/val_{j}.JPEG", jpeg((200, 10 * j, 0)))
            val_lines.append(f"val_{j}.JPEG\t{wnid}\t0\t0\t63\t63")
        archive.writestr(f"{top}/val/val_annotations.txt", "\n".join(val_lines) + "\n")
        archive.writestr(f"{top}/test/images/test_0.JPEG", jpeg((0, 0, 0)))
    return {"val_labels": [sorted(WNIDS).index(w) for w in ["n03", "n01", "n02", "n01"]]}


def test_tiny_imagenet_reads_the_official_zip_layout(tmp_path):
    path = tmp_path / tiny_imagenet.ZIP_NAME
    expected = write_tiny_imagenet_zip(path)
    splits = tiny_imagenet.read_zip(path, expected_md5=md5(path))
    assert splits.train_images.shape == (9, 3, 64, 64) and splits.train_images.dtype == torch.uint8
    assert splits.train_labels.tolist() == [0, 1, 2] * 3  # classes in turn (balanced prefixes)
    levels = splits.train_images.float().mean((1, 2, 3))
    for k, (c, i) in enumerate((c, i) for i in range(3) for c in range(3)):
        assert abs(levels[k].item() - (20 * c + 60 * i)) < 2  # the right image under the right label
    # val: 2 x class 0, one each of 1 and 2, in file order within each class, classes interleaved
    val_order = [1, 2, 0, 3]  # val_1 (n01), val_2 (n02), val_0 (n03), val_3 (n01)
    assert splits.test_labels.tolist() == [expected["val_labels"][j] for j in val_order]
    red = splits.test_images[:, 0].float().mean((1, 2))
    assert (red > 190).all() and splits.num_classes == 3
    assert splits.crop_padding == 4 and splits.flip and splits.mean == (0.4802, 0.4481, 0.3975)


def test_tiny_imagenet_zip_is_verified_at_every_preparation(tmp_path):
    write_tiny_imagenet_zip(tmp_path / tiny_imagenet.ZIP_NAME)
    with pytest.raises(IntegrityError, match=r"tiny-imagenet-200\.zip: md5 .* is not the official 90528d7c"):
        build_splits({"name": "tiny_imagenet", "root": str(tmp_path), "download": False})


def test_tiny_imagenet_missing_without_download_names_the_key_and_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset\.root.*tiny-imagenet-200\.zip"):
        build_splits({"name": "tiny_imagenet", "root": str(tmp_path), "download": False})


# --- config checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg, message", [
    ({"name": "imagenet"}, r"dataset\.root"),
    ({"name": "imagefolder", "root": "/nonexistent/images"}, r"dataset\.root.*/nonexistent/images"),
    ({"name": "cifar10", "image_size": 64}, r"dataset\.image_size.*imagefolder"),
    ({"name": "cifar10", "mean": [0.5, 0.5, 0.5]}, r"dataset\.mean.*dataset\.std"),
])
def test_dataset_config_errors_name_the_key(cfg, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        check_dataset_config(cfg)


def test_overrides_apply_when_loading(tmp_path):
    local, _ = write_cifar(tmp_path, cifar.CIFAR10)
    save_prepared(cifar.read_cifar(local, tmp_path), tmp_path / "c.pt")
    cfg = {"name": "cifar10", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "crop_padding": 8}
    splits = load_splits(tmp_path / "c.pt", cfg)
    assert splits.mean == (0.5, 0.5, 0.5) and splits.std == (0.25,) * 3 and splits.crop_padding == 8
    with pytest.raises(ValueError, match=r"dataset\.mean.*1 values for 3 image channels"):
        load_splits(tmp_path / "c.pt", {"name": "cifar10", "mean": [0.5], "std": [0.2]})


# --- streamed image folders (ImageNet layout) ----------------------------------------------------

def write_image_folder(root: Path, classes=("cat", "dog", "eel"), per_class=(4, 2), size=40) -> None:
    """root/{train,val}/<class>/*.png, random RGB images (lossless, so pixels can be compared)."""
    from PIL import Image

    rng = np.random.default_rng(2)
    for split, n in zip(("train", "val"), per_class):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{c}_{i}.png")


def folder_cfg(root: Path, **extra) -> dict:
    return {"name": "imagefolder", "root": str(root), "image_size": 32, "workers": 0, **extra}


def test_streamed_folder_prepares_an_index_not_the_images(tmp_path):
    from compressible.data import StreamingSplits
    from compressible.data.folders import eval_transform

    write_image_folder(tmp_path / "images")
    splits = build_splits(folder_cfg(tmp_path / "images"))
    save_prepared(splits, tmp_path / "index.pt")
    index = torch.load(tmp_path / "index.pt", weights_only=True)
    assert (tmp_path / "index.pt").stat().st_size < 8_000  # 18 images of 40x40x3 would be 86 kB
    listing = "".join(f"{s}\t{lab}\t{p}\n" for s in ("train", "test")
                      for p, lab in zip(index[f"{s}_paths"].split("\n"), index[f"{s}_labels"].tolist()))
    assert index["files_sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    loaded = load_splits(tmp_path / "index.pt", folder_cfg(tmp_path / "images"))
    assert isinstance(loaded, StreamingSplits) and loaded.num_classes == 3 and loaded.input_shape == (3, 32, 32)
    assert loaded.train_labels.tolist() == [0, 1, 2] * 4 and loaded.test_labels.tolist() == [0, 1, 2] * 2
    from PIL import Image

    x, y = next(iter(loaded.test_batches(4)))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 0]
    first = Image.open(tmp_path / "images" / "val" / "cat" / "cat_0.png").convert("RGB")
    assert torch.allclose(x[0], eval_transform(32, loaded.mean, loaded.std)(first))


def test_streamed_normalization_is_estimated_from_training_images_or_given(tmp_path):
    from compressible.data.folders import eval_transform

    write_image_folder(tmp_path / "images")
    splits = build_splits(folder_cfg(tmp_path / "images"))
    from PIL import Image

    crop = eval_transform(32, (0.0,) * 3, (1.0,) * 3)
    stack = torch.stack([crop(Image.open(tmp_path / "images" / p).convert("RGB")) for p in splits.train_paths])
    assert np.allclose(splits.mean, stack.mean((0, 2, 3)).numpy(), atol=1e-4)
    assert np.allclose(splits.std, stack.std((0, 2, 3), unbiased=False).numpy(), atol=1e-4)
    given = build_splits(folder_cfg(tmp_path / "images", mean=[0.5] * 3, std=[0.2] * 3))
    assert given.mean == (0.5,) * 3 and given.std == (0.2,) * 3


def test_streamed_batches_follow_the_generator_for_any_number_of_workers(tmp_path):
    write_image_folder(tmp_path / "images")
    splits = build_splits(folder_cfg(tmp_path / "images"))

    def epoch(seed, workers):
        splits.workers = workers
        return list(splits.train_batches(4, torch.Generator().manual_seed(seed)))

    same = epoch(3, 0)
    assert len(same) == 3 and same[0][0].shape == (4, 3, 32, 32)
    for (x1, y1), (x2, y2) in zip(same, epoch(3, 2)):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(same[0][0], epoch(4, 0)[0][0])
    a = list(splits.calibration_batches(6, 4, 2, seed=7))
    b = list(splits.calibration_batches(6, 4, 2, seed=7))
    assert len(a) == 2 and a[0].shape == (4, 3, 32, 32) and all(torch.equal(p, q) for p, q in zip(a, b))
    with pytest.raises(ValueError, match="exceeds"):
        next(splits.calibration_batches(100, 4, 1, seed=0))


def test_streamed_folder_errors(tmp_path):
    write_image_folder(tmp_path / "images")
    (tmp_path / "images" / "val" / "fox").mkdir()
    with pytest.raises(ValueError, match="class folders differ"):
        build_splits(folder_cfg(tmp_path / "images"))
    with pytest.raises(FileNotFoundError, match=r"dataset\.root.*nowhere/train"):
        (tmp_path / "nowhere").mkdir()
        build_splits(folder_cfg(tmp_path / "nowhere"))
    (tmp_path / "flat" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "flat" / "val").mkdir()
    (tmp_path / "flat" / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"dataset\.root.*flat/val holds no class folders"):
        build_splits(folder_cfg(tmp_path / "flat"))


def test_train_and_oneshot_run_on_a_streamed_folder(tmp_path):
    """The training loop, evaluation and BNT consume the streamed splits unchanged."""
    import json

    from compressible.evaluate import oneshot_run
    from compressible.training.loop import train_run

    write_image_folder(tmp_path / "images", per_class=(8, 2), size=20)
    dataset = folder_cfg(tmp_path / "images", image_size=16)
    save_prepared(build_splits(dataset), tmp_path / "index.pt")
    from compressible.config import validate_config
    from compressible.runs import Experiment, Run

    cfg = validate_config({
        "experiment": "folder", "dataset": dataset, "archs": [{"name": "resnet20_b", "width": 4}],
        "methods": [{"label": "SGD", "name": "sgd", "params": {"lr": 0.05}}], "seeds": [0],
        "training": {"epochs": 1, "batch_size": 8, "eval_batch_size": 6, "schedule": "constant"},
        "oneshot": [{"operator": "global_magnitude", "levels": [0.0, 0.5]}],
        "bnt": {"trials": 1, "samples": 12, "batch_size": 4, "batches": 2, "momentum": None}})
    run = Run("resnet20_b", "SGD", 0)
    info = train_run(Experiment(cfg).spec(run), tmp_path / "index.pt", tmp_path / "run.pt")
    assert 0 <= info["final_test_accuracy"] <= 100
    oneshot_run(cfg, run, tmp_path / "run.pt", tmp_path / "index.pt", "global_magnitude", tmp_path / "o.json")
    levels = json.loads((tmp_path / "o.json").read_text())["levels"]
    assert [lv["level"] for lv in levels] == [0.0, 0.5] and len(levels[1]["bnt_trials"]) == 1


def test_schema_accepts_the_dataset_and_arch_keys_and_rejects_others():
    from compressible.config import ConfigError, load_config, validate_config
    import yaml

    raw = yaml.safe_load(Path("configs/tiny.yaml").read_text())
    raw["dataset"].update(mean=[0.5], std=[0.25], crop_padding=3)
    raw["archs"][0]["pretrained"] = "weights.pt"
    cfg = validate_config(raw)
    assert cfg.dataset["mean"] == [0.5] and cfg.archs[0].pretrained == "weights.pt"
    assert load_config("configs/default.yaml").dataset == {"name": "mnist_embedded", "download": True}
    for dataset, message in (({"name": "svhn"}, "unknown dataset 'svhn'.*cifar100.*tiny_imagenet"),
                             ({"name": "cifar10", "resize": 4}, "dataset.*resize")):
        with pytest.raises(ConfigError, match=message):
            validate_config(dict(raw, dataset=dataset))


def test_streamed_ddp_processes_decode_only_their_shard_of_each_global_batch(tmp_path):
    """The shards of processes 0 and 1, side by side, are the global batches (same images, crops,
    flips, labels), each process's batches half as large: it decodes only its own images."""
    write_image_folder(tmp_path / "images")
    splits = build_splits(folder_cfg(tmp_path / "images"))
    whole = list(splits.train_batches(4, torch.Generator().manual_seed(3)))
    parts = [list(splits.sharded(rank, 2).train_batches(4, torch.Generator().manual_seed(3))) for rank in (0, 1)]
    assert len(whole) == len(parts[0]) == len(parts[1]) == 3
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert x0.shape == (2, 3, 32, 32)
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
