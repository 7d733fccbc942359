"""What a compressed model costs, as ShrinkBench reports it (Blalock et al., 2020).

Sizes count parameters (not buffers); FLOPs are the multiply-accumulates of conv and linear
layers measured by forward hooks on one dummy input; a layer whose weight has a fraction z of
zeros is credited with (1 − z) of its FLOPs. Low-rank models are measured as factorized, so
their "remaining" parameters and FLOPs are those of the two factors.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from .prunable import owner_name

_COUNTED = (nn.modules.conv._ConvNd, nn.Linear)


def nonzero(tensor: torch.Tensor) -> int:
    return int(torch.count_nonzero(tensor))


def layer_flops(model: nn.Module, input_shape: Sequence[int],
                dtype: torch.dtype | None = None) -> list[tuple[int, float]]:
    """(dense MACs, fraction of nonzero weights) of every conv/linear call on one input.

    ``input_shape`` excludes the batch dimension; a batch of one zero image is run in eval
    mode, so no BatchNorm statistic changes. MACs = output elements × weights per output.
    ``dtype`` of the dummy input: the weights' (images) unless given (token ids: torch.long, one
    window of [PAD] tokens).
    """
    found: list[tuple[int, float]] = []

    def hook(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        per_output = module.weight[0].numel()  # (c_in/groups)·kh·kw, or in_features
        found.append((output.numel() * per_output, nonzero(module.weight) / module.weight.numel()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _COUNTED)]
    was_training, reference = model.training, next(model.parameters())
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape, device=reference.device, dtype=dtype or reference.dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return found


def _counterparts(compressed: dict[str, nn.Parameter], name: str) -> list[torch.Tensor]:
    """The compressed model's tensors standing for the dense parameter ``name``.

    Usually the same name; a factorized layer stands for its dense weight by its factors.
    """
    if name in compressed:
        return [compressed[name]]
    prefix = owner_name(name) + "."
    return [p for n, p in compressed.items() if n.startswith(prefix) and n.endswith(".weight")]


def account(dense_model: nn.Module, compressed_model: nn.Module, prunable_names: Iterable[str],
            input_shape: Sequence[int], input_dtype: torch.dtype | None = None) -> dict[str, float]:
    """Sparsity, compression ratio and theoretical speedup of ``compressed_model``.

    ``prunable_names`` are parameter names of ``dense_model`` (the named prunable set).
    sparsity_* = 1 − nonzero / dense count (negative when a factorization is larger than
    the dense layer); compression_ratio = params_total / params_remaining;
    speedup = flops_dense / flops_remaining.
    """
    dense, compressed = dict(dense_model.named_parameters()), dict(compressed_model.named_parameters())
    names = list(prunable_names)
    prunable_total = sum(dense[n].numel() for n in names)
    prunable_left = sum(nonzero(t) for n in names for t in _counterparts(compressed, n))
    params_total = sum(p.numel() for p in dense.values())
    params_remaining = sum(nonzero(p) for p in compressed.values())
    flops_dense = sum(macs for macs, _ in layer_flops(dense_model, input_shape, input_dtype))
    flops_remaining = sum(macs * share for macs, share in layer_flops(compressed_model, input_shape, input_dtype))
    return {
        "sparsity_prunable": 1.0 - prunable_left / prunable_total if prunable_total else 0.0,
        "sparsity_total": 1.0 - params_remaining / params_total,
        "compression_ratio": params_total / params_remaining if params_remaining else float("inf"),
        "flops_dense": float(flops_dense),
        "flops_remaining": float(flops_remaining),
        "flops_ratio": flops_remaining / flops_dense if flops_dense else 1.0,
        "speedup": flops_dense / flops_remaining if flops_remaining else float("inf"),
        "params_total": int(params_total),
        "params_remaining": int(params_remaining),
    }
