"""Batch Norm Tuning on a small conv net trained a few steps on separable synthetic data."""
import copy

import pytest
import torch
from torch import nn

from compressible.bn import batch_norm_tuning


def separable(n, seed):
    """Two classes told apart by the sign of channel 0's mean (plus noise)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    images = torch.randn(n, 3, 8, 8, generator=gen)
    images[:, 0] += 1.5 * (2 * labels[:, None, None].float() - 1)
    return images, labels


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    images, labels = separable(1024, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(40):
        batch = slice(64 * (step % 16), 64 * (step % 16 + 1))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
        optimizer.step()
    return model.eval()


def accuracy(model):
    images, labels = separable(512, seed=2)
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


def calibration(seed=3, batches=10):
    images, _ = separable(128 * batches, seed)
    return list(images.split(128))


def test_trained_net_is_accurate(trained):
    assert accuracy(trained) > 0.9


@pytest.mark.parametrize("momentum", [None, 0.1])
def test_bnt_on_unpruned_model_keeps_accuracy_and_parameters(trained, momentum):
    model = copy.deepcopy(trained)
    params = [p.clone() for p in model.parameters()]
    out = batch_norm_tuning(model, calibration(), momentum=momentum)
    assert out is model and not model.training
    assert abs(accuracy(model) - accuracy(trained)) <= 0.02
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_bnt_restores_corrupted_running_statistics(trained):
    model = copy.deepcopy(trained)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.add_(torch.linspace(-5, 5, m.num_features))
            m.running_var.mul_(50)
    corrupted = accuracy(model)
    batch_norm_tuning(model, calibration())
    assert corrupted < accuracy(trained) - 0.2
    assert accuracy(model) >= accuracy(trained) - 0.02


def test_cumulative_average_equals_full_calibration_statistics(trained):
    model = copy.deepcopy(trained)
    batches = calibration()
    batch_norm_tuning(model, batches, momentum=None)
    with torch.no_grad():
        inputs = model[0](torch.cat(batches))
    expected = inputs.mean((0, 2, 3))  # equal batch sizes: mean of batch means = overall mean
    torch.testing.assert_close(model[1].running_mean, expected, atol=1e-5, rtol=1e-5)


def test_bnt_is_deterministic_given_the_same_batches(trained):
    runs = [batch_norm_tuning(copy.deepcopy(trained), calibration(seed=4)) for _ in range(2)]
    for a, b in zip(*(r.state_dict().values() for r in runs)):
        assert torch.equal(a, b)


def test_bnt_accepts_image_label_pairs_and_rejects_no_batches(trained):
    model = copy.deepcopy(trained)
    pairs = [(x, torch.zeros(len(x))) for x in calibration()]
    batch_norm_tuning(model, pairs)
    reference = batch_norm_tuning(copy.deepcopy(trained), calibration())
    assert torch.equal(model[1].running_var, reference[1].running_var)
    with pytest.raises(ValueError):
        batch_norm_tuning(copy.deepcopy(trained), [])
