"""Datasets through their real loaders; seeded batches and calibration subsets."""
from __future__ import annotations

import pytest

from compressible.data import save_prepared
import torch

from compressible.data import build_splits, calibration_batches, load_splits, train_batches
from compressible.data.batches import augment


def test_embedded_mnist_split_is_balanced_disjoint_and_deterministic():
    a, b = build_splits({"name": "mnist_embedded"}), build_splits({"name": "mnist_embedded"})
    assert a.train_images.shape == (4000, 1, 28, 28) and a.test_images.shape == (1000, 1, 28, 28)
    assert a.train_labels.bincount().tolist() == [400] * 10
    assert a.test_labels.bincount().tolist() == [100] * 10
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    train_rows = {bytes(x.numpy()) for x in a.train_images}
    assert not any(bytes(x.numpy()) in train_rows for x in a.test_images)


def test_subset_prefix_stays_class_balanced(tmp_path):
    save_prepared(build_splits({"name": "mnist_embedded"}), tmp_path / "mnist.pt")
    s = load_splits(tmp_path / "mnist.pt", {"name": "mnist_embedded", "train_subset": 50, "test_subset": 20})
    assert s.train_labels.bincount().tolist() == [5] * 10 and len(s.test_labels) == 20


def test_training_order_and_augmentation_follow_the_generator(splits):
    def epoch(seed):
        return list(train_batches(splits, 32, torch.Generator().manual_seed(seed)))

    same, other = epoch(3), epoch(4)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(same, epoch(3)))
    assert not torch.equal(same[0][0], other[0][0])
    assert len(same) == len(splits.train_labels) // 32


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image(splits):
    images = splits.train_images[:16]
    out = augment(images, splits, torch.Generator().manual_seed(0))
    raw = (images.float() / 255 - 0.3) / 0.3
    zero = (0 - 0.3) / 0.3
    p = splits.crop_padding
    padded = torch.nn.functional.pad(raw, (p, p, p, p), value=zero)
    for i in range(16):
        windows = [padded[i, :, dy:dy + 12, dx:dx + 12] for dy in range(2 * p + 1) for dx in range(2 * p + 1)]
        assert any(torch.allclose(out[i], w, atol=1e-6) for w in windows)


def test_calibration_batches_reproduce_from_their_seed(splits):
    a = list(calibration_batches(splits, 100, 32, 3, seed=7))
    b = list(calibration_batches(splits, 100, 32, 3, seed=7))
    c = list(calibration_batches(splits, 100, 32, 3, seed=8))
    assert len(a) == 3 and a[0].shape == (32, 1, 12, 12)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])
    with pytest.raises(ValueError, match="exceeds"):
        next(calibration_batches(splits, 10_000, 32, 1, seed=0))
