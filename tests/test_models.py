"""Architectures are faithful: parameter counts of the papers, output shapes."""
from __future__ import annotations

import pytest
import torch

from compressible.models import build_model


@pytest.mark.parametrize("name, classes, expected", [
    ("resnet20", 10, 269_722),      # He et al. 2016: 0.27M
    ("resnet56", 10, 853_018),      # 0.85M
    ("resnet18", 10, 11_173_962),   # CIFAR ResNet-18: 11.2M
    ("vgg16_bn", 10, 14_728_266),   # CIFAR VGG-16-BN (conv biases), one linear classifier: 14.7M
    ("resnet50", 1000, 25_557_032), # torchvision: 25.6M
])
def test_parameter_counts(name, classes, expected):
    model = build_model(name, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_wrn28_10_has_36_5m_parameters():
    model = build_model("wrn28_10", num_classes=10)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 36.5


@pytest.mark.parametrize("name, size", [("resnet20", 28), ("resnet18", 28), ("vgg16_bn", 32)])
def test_forward_shapes_and_grayscale_input(name, size):
    model = build_model(name, num_classes=7, in_channels=1, width=8).eval()
    assert model(torch.randn(2, 1, size, size)).shape == (2, 7)


def test_narrow_width_scales_resnet20():
    narrow = build_model("resnet20", width=8)
    assert sum(p.numel() for p in narrow.parameters()) < 269_722 / 3
