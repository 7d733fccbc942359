"""Conventions taken from the authors' code where the papers leave them open."""
from torch import nn

from compressible.compress.prunable import prunable_parameters


def test_non_bn_holds_the_weights_of_every_non_norm_layer_and_no_bias():
    """Compression-aware SFW prunes globally over the weights of all layers but BatchNorm."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 1, bias=False), nn.GroupNorm(2, 4), nn.Flatten(), nn.Linear(4, 2))
    names = [name for name, _ in prunable_parameters(model, "non_bn")]
    assert names == ["0.weight", "3.weight", "6.weight"]
    biases = {name for name, _ in model.named_parameters() if name.endswith("bias")}
    assert biases and not biases & set(names)
