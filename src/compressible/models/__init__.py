"""Architectures by name: ``build_model("resnet20", num_classes=10)``; ``build_arch`` for a
config's ``archs`` entry (width and pretrained weights)."""
from __future__ import annotations

from torch import nn

from ..registry import MODELS
from . import bert, resnet18_cifar, resnet_cifar, vgg_wrn  # noqa: F401  (registration)
from .pretrained import PretrainedMismatch, load_pretrained

__all__ = ["PretrainedMismatch", "build_arch", "build_model", "checkpoint_arch", "freeze", "load_pretrained",
           "rebuild"]


@MODELS.register("resnet50")
def resnet50(num_classes: int = 1000, in_channels: int = 3, width: int = 64) -> nn.Module:
    """torchvision's ImageNet ResNet-50 (random init, or ``pretrained:`` torchvision weights)."""
    from torchvision.models import resnet50 as tv_resnet50

    if in_channels != 3 or width != 64:
        raise ValueError("resnet50 supports only in_channels=3 and width=64")
    return tv_resnet50(weights=None, num_classes=num_classes)


@MODELS.register("resnet18_imagenet")
def resnet18_imagenet(num_classes: int = 1000, in_channels: int = 3, width: int = 64) -> nn.Module:
    """torchvision's ImageNet ResNet-18 (CrAM Tables 3 and 16 finetune its pretrained weights);
    ``resnet18`` is the CIFAR variant."""
    from torchvision.models import resnet18 as tv_resnet18

    if in_channels != 3 or width != 64:
        raise ValueError("resnet18_imagenet supports only in_channels=3 and width=64")
    return tv_resnet18(weights=None, num_classes=num_classes)


def build_model(name: str, num_classes: int = 10, in_channels: int = 3, width: int | None = None) -> nn.Module:
    """Instantiate a registered architecture; ``width`` None keeps the paper's width."""
    builder = MODELS.get(name)
    kwargs = {} if width is None else {"width": width}
    return builder(num_classes=num_classes, in_channels=in_channels, **kwargs)


def build_arch(arch: dict, num_classes: int, in_channels: int) -> nn.Module:
    """The model of a config's ``archs`` entry: ``name``, ``width``, optional ``pretrained`` file
    (or, for a model built from a folder such as BERT, that folder)."""
    builder = MODELS.get(arch["name"])
    if getattr(builder, "pretrained_folder", False):
        return builder(pretrained=arch.get("pretrained"), width=arch.get("width"))
    model = build_model(arch["name"], num_classes, in_channels, arch.get("width"))
    if arch.get("pretrained"):
        load_pretrained(model, arch["pretrained"], arch["name"])
    return model


def checkpoint_arch(model: nn.Module, arch: dict) -> dict:
    """What a checkpoint records to rebuild ``model``: name and width, or what its builder adds
    (BERT: the folder's config, so the folder is not needed to load the checkpoint)."""
    builder = MODELS.get(arch["name"])
    if hasattr(builder, "checkpoint_arch"):
        return builder.checkpoint_arch(model)
    return {"name": arch["name"], "width": arch.get("width")}


def rebuild(arch: dict, num_classes: int, in_channels: int) -> nn.Module:
    """The untrained model of a checkpoint's ``arch`` record (its weights are loaded after)."""
    if "config" in arch:
        return MODELS.get(arch["name"])(config=arch["config"])
    return build_model(arch["name"], num_classes, in_channels, arch.get("width"))


def freeze(model: nn.Module, arch: str, parts: list[str]) -> None:
    """Stop training the named ``parts`` of ``model`` (CrAM App. D freezes BERT's embeddings):
    their parameters get no gradient, so no optimizer moves them."""
    freezable = getattr(MODELS.get(arch), "freezable", {})
    for part in parts:
        for param in model.get_submodule(freezable[part]).parameters():
            param.requires_grad_(False)
