"""The prunable set: which tensors a compressor may touch, defined once and named in every result.

The three papers' codebases disagree on which tensors count, so each convention is a named
entry; results always report sparsity over the prunable set and over all parameters.
"""
from __future__ import annotations

import torch.fx
from torch import nn

from ..registry import PRUNABLE_SETS

_WEIGHTED = (nn.Conv2d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
_BATCH_NORM = nn.modules.batchnorm._BatchNorm


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv and Linear layers in definition order (first = input layer, last = classifier)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _WEIGHTED)]


@PRUNABLE_SETS.register("weights")
def conv_linear_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every conv/linear weight, first conv and classifier included (CrAM's global Top-K)."""
    return [(f"{name}.weight", m.weight) for name, m in weighted_layers(model)]


@PRUNABLE_SETS.register("weights_inner")
def inner_conv_linear_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Conv/linear weights without the first and the last layer (CrAM's uniform Top-K)."""
    return conv_linear_weights(model)[1:-1]


@PRUNABLE_SETS.register("weights_no_first")
def conv_linear_weights_but_first(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Conv/linear weights without the input layer (the classifier stays prunable)."""
    return conv_linear_weights(model)[1:]


@PRUNABLE_SETS.register("weights_no_last")
def conv_linear_weights_but_last(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Conv/linear weights without the classifier (the input layer stays prunable)."""
    return conv_linear_weights(model)[:-1]


@PRUNABLE_SETS.register("conv_weights")
def conv_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every conv weight, no linear layer (compression-aware SFW factorizes convolutions only)."""
    return [(f"{name}.weight", m.weight) for name, m in weighted_layers(model) if isinstance(m, nn.Conv2d)]


@PRUNABLE_SETS.register("non_bn")
def non_norm_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The ``weight`` of every layer but normalization layers, biases excluded: compression-aware
    SFW's global unstructured pruning (Zimmer et al. 2022, Sec. 4; their code prunes no bias)."""
    return [(f"{name}.weight" if name else "weight", m.weight) for name, m in model.named_modules()
            if isinstance(getattr(m, "weight", None), nn.Parameter) and not isinstance(m, _NORMS)]


@PRUNABLE_SETS.register("bert_encoder")
def bert_encoder_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every Linear weight inside BERT's encoder: per layer Q, K, V, attention output,
    intermediate and output dense (CrAM App. D: "all weights of the encoder part (85M)", as
    Sanh et al. and Kurtic et al. count them); no embeddings, pooler, task head, bias, LayerNorm."""
    encoders = [name for name, _ in model.named_modules() if name == "bert.encoder" or name.endswith(".bert.encoder")]
    if not encoders:
        raise ValueError("prunable set 'bert_encoder' needs a BERT model (a 'bert.encoder' module); "
                         "use it with the 'bert' architecture")
    return [(f"{name}.weight", m.weight) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and any(name.startswith(f"{e}.") for e in encoders)]


@PRUNABLE_SETS.register("all")
def all_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every parameter, BatchNorm and biases included (SFW-pruning's global threshold)."""
    return list(model.named_parameters())


def prunable_parameters(model: nn.Module, policy: str) -> list[tuple[str, nn.Parameter]]:
    """The (name, parameter) pairs of ``model`` in the prunable set ``policy``."""
    return PRUNABLE_SETS.get(policy)(model)


def owner_name(param_name: str) -> str:
    """Name of the module holding ``param_name`` ("layer1.0.conv1.weight" -> "layer1.0.conv1")."""
    return param_name.rpartition(".")[0]


def conv_bn_pairs(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """Map each conv's name to the BatchNorm that normalizes its output directly.

    Read from the data flow (torch.fx) so that a pre-activation block, whose BatchNorm sees
    a residual sum, is not paired; models fx cannot trace fall back to definition order
    (the first BatchNorm after a conv with as many features as the conv has filters).
    """
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure means "use the fallback"
        return _pairs_by_definition_order(model)
    modules = dict(model.named_modules())

    def module_at(node: object) -> nn.Module | None:
        return modules.get(node.target) if getattr(node, "op", None) == "call_module" else None

    pairs = {}
    for node in graph.nodes:
        norm = module_at(node)
        if isinstance(norm, _BATCH_NORM) and isinstance(module_at(node.args[0]), nn.Conv2d):
            pairs[node.args[0].target] = norm
    return pairs


def _pairs_by_definition_order(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    pairs, pending = {}, None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            pending = (name, module)
        elif isinstance(module, _BATCH_NORM) and pending is not None:
            if module.num_features == pending[1].out_channels:
                pairs[pending[0]] = module
            pending = None
    return pairs
