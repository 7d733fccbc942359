"""Architectures are faithful: parameter counts of the papers, output shapes."""
from __future__ import annotations

import pytest
import torch

from compressible.models import PretrainedMismatch, build_arch, build_model


@pytest.mark.parametrize("name, classes, expected", [
    ("resnet20", 10, 269_722),      # He et al. 2016: 0.27M
    ("resnet56", 10, 853_018),      # 0.85M
    ("resnet18", 10, 11_173_962),   # CIFAR ResNet-18: 11.2M
    ("vgg16_bn", 10, 14_728_266),   # CIFAR VGG-16-BN (conv biases), one linear classifier: 14.7M
    ("resnet50", 1000, 25_557_032), # torchvision: 25.6M
    ("resnet18_imagenet", 1000, 11_689_512),  # torchvision: 11.7M
])
def test_parameter_counts(name, classes, expected):
    model = build_model(name, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == expected


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cifar_resnet20_by_hand(projections: bool, classes: int = 10) -> int:
    """ResNet-20 from its layer shapes: 3x3 stem to 16, three stages of three basic blocks
    (16, 32, 64 channels), a linear classifier; option B adds a 1x1 conv + BN per stage change."""
    conv = lambda c_in, c_out, k=3: c_in * c_out * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    total, c_in = conv(3, 16) + bn(16), 16
    for c in (16, 32, 64):
        for _ in range(3):
            total += conv(c_in, c) + bn(c) + conv(c, c) + bn(c)
            if c_in != c and projections:
                total += conv(c_in, c, 1) + bn(c)
            c_in = c
    return total + 64 * classes + classes


def test_resnet20_option_a_and_b_parameter_counts_from_the_layer_shapes():
    assert count(build_model("resnet20")) == cifar_resnet20_by_hand(False) == 269_722
    assert count(build_model("resnet20_b")) == cifar_resnet20_by_hand(True)
    assert count(build_model("resnet20_b")) - count(build_model("resnet20")) == 512 + 64 + 2048 + 128


def test_resnet20_b_projects_where_the_shape_changes_only():
    model = build_model("resnet20_b")
    projections = [n for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert projections == ["layers.3.shortcut.0", "layers.6.shortcut.0"]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


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


def test_pretrained_weights_load_from_a_saved_state_dict(tmp_path):
    source = build_model("resnet20_b", num_classes=10)
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    model = build_arch({"name": "resnet20_b", "pretrained": str(tmp_path / "weights.pt")}, 10, 3)
    for (name, a), b in zip(source.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


def test_pretrained_torchvision_resnet50_state_dict(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(1)
    torch.save(resnet50(weights=None).state_dict(), tmp_path / "resnet50.pth")
    model = build_arch({"name": "resnet50", "pretrained": str(tmp_path / "resnet50.pth")}, 1000, 3)
    assert torch.equal(model.fc.weight, torch.load(tmp_path / "resnet50.pth", weights_only=True)["fc.weight"])


def test_pretrained_weights_that_do_not_fit_name_the_file_and_keys(tmp_path):
    path = tmp_path / "option_b.pt"
    torch.save(build_model("resnet20_b").state_dict(), path)
    with pytest.raises(PretrainedMismatch, match=rf"{path} does not fit architecture 'resnet20'.*"
                       r"unexpected: layers\.3\.shortcut\.0\.weight"):
        build_arch({"name": "resnet20", "pretrained": str(path)}, 10, 3)
    with pytest.raises(PretrainedMismatch, match=r"shape \(file vs model\): fc\.weight \(10, 64\) vs \(100, 64\)"):
        build_arch({"name": "resnet20_b", "pretrained": str(path)}, 100, 3)
    partial = {k: v for k, v in build_model("resnet20").state_dict().items() if not k.startswith("fc")}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(PretrainedMismatch, match=r"2 missing: fc\.weight, fc\.bias"):
        build_arch({"name": "resnet20", "pretrained": str(tmp_path / "partial.pt")}, 10, 3)
    with pytest.raises(FileNotFoundError, match=r"pretrained.*absent\.pt"):
        build_arch({"name": "resnet20", "pretrained": str(tmp_path / "absent.pt")}, 10, 3)
