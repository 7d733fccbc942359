"""CIFAR ResNets of He et al. (2016, §4.2): 3 stages of n basic blocks, 6n+2 layers.

``resnet20`` / ``resnet56`` use parameter-free shortcuts (option A: stride-2 subsampling and
zero-padded channels), which gives the paper's 0.27M parameters for ResNet-20. ``resnet20_b``
uses projection shortcuts (option B: 1x1 conv + BN where the shape changes), the ResNet-20 of the
CrAM experiments (2,752 parameters more). ``width`` scales the stage widths (16, 32, 64); a
narrower width is only used for the CPU-sized embedded default.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import MODELS


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample spatially, zero-pad the new channels."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride, self.extra = stride, extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


def projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Option-B shortcut: a strided 1x1 convolution and BatchNorm (He et al. 2016, §3.3)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, projected: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        needs_projection = stride != 1 or c_in != c_out
        self.shortcut = nn.Identity()
        if needs_projection:
            self.shortcut = projection(c_in, c_out, stride) if projected else PadShortcut(stride, c_out - c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: int, num_classes: int, in_channels: int, width: int,
                 projected: bool = False):
        super().__init__()
        widths = [width, 2 * width, 4 * width]
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, c_in = [], width
        for stage, c_out in enumerate(widths):
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1, projected))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():  # He et al. initialization, as in the paper
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@MODELS.register("resnet20")
def resnet20(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Module:
    return CifarResNet(3, num_classes, in_channels, width)


@MODELS.register("resnet20_b")
def resnet20_b(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Module:
    """ResNet-20 with option-B shortcuts: the CIFAR-10 ResNet-20 of CrAM (Table 17, Fig. 1)."""
    return CifarResNet(3, num_classes, in_channels, width, projected=True)


@MODELS.register("resnet56")
def resnet56(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Module:
    return CifarResNet(9, num_classes, in_channels, width)
