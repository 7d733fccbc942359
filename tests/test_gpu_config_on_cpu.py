"""The GPU configuration on the CPU: channels_last, bf16 autocast and ``torch.compile``, each
against the plain fp32 run, for every method, one-shot + BNT and SFW-Init.

What a GPU run switches on, the CPU supports too, so CI checks that every optimizer works
with it and stays close to the plain run. Tolerances (relative, on the loss of each step and on
the final weights, ||w - w_plain|| / ||w_plain||):
  * channels_last (CPU, fp32): the same arithmetic with another convolution kernel; sums run in
    another order, so values agree to float32 rounding amplified over a few steps: 1e-4.
  * compile (fp32): Inductor fuses and reorders the same float32 operations: 1e-4.
  * bf16 autocast: the forward pass in bfloat16 (8 significant bits, relative rounding 2^-8 ~
    0.4 % per operation): the losses within 5e-2 and the weights within 5e-2, and the run must
    differ from the plain one (else autocast did not act).
The model is small and the steps few; one model object serves every method, so ``torch.compile``
compiles its graphs (BN statistics tracked or frozen) once for all methods.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import compressible.optim  # noqa: F401  (registers the METHODS)
from compressible.bn import batch_norm_tuning
from compressible.compress.prunable import prunable_parameters
from compressible.training.distributed import Processes
from compressible.optim.sfw_init import SFWInit, sfw_init
from compressible.registry import COMPRESSORS, METHODS
from compressible.training.loop import train_step

CPU = Processes(0, 1, torch.device("cpu"))
STEPS = 3
SFW = {"lr": 0.5, "constrain": "structured_conv_l2_rest", "momentum_style": "heavy_ball"}
METHOD_CASES = {
    "sgd": ("sgd", {}), "sam": ("sam", {}), "cram": ("cram", {}),
    "cram_plus": ("cram_plus", {"sparse_grad": True}), "cram_plus_multi": ("cram_plus_multi", {}),
    "cram_plus_nm": ("cram_plus_nm", {}), "cram_plus_quant": ("cram_plus_quant", {}),
    "c_sam": ("c_sam", {}), "topk": ("topk", {}), "topk_plus": ("topk_plus", {}),
    "sfw k_sparse": ("sfw", {"lr": 0.5, "constraint": "k_sparse", "k": "20%"}),
    "sfw group_k_support": ("sfw", {**SFW, "constraint": "group_k_support", "k": 2}),
    "sfw spectral_k_support": ("sfw", {**SFW, "constraint": "spectral_k_support", "k": 2}),
    "nuclear_prox": ("nuclear_prox", {}),
}
TOLERANCE = {"channels_last": 1e-4, "compile": 1e-4, "bf16": 5e-2}


def tiny_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


class Bench:
    """One model object (so that one compiled module serves every method) and fixed batches."""

    def __init__(self):
        self.model = tiny_net()
        self.start = copy.deepcopy(self.model.state_dict())
        self.compiled = torch.compile(self.model)
        g = torch.Generator().manual_seed(1)
        self.batches = [(torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 4, (16,), generator=g))
                        for _ in range(STEPS)]

    def train(self, case: str, variant: str) -> tuple[list[float], torch.Tensor]:
        """Losses of the steps and the final weights (one flat vector) of ``case`` under ``variant``."""
        name, params = METHOD_CASES[case]
        layout = torch.channels_last if variant == "channels_last" else torch.contiguous_format
        self.model.to(memory_format=layout)
        self.model.load_state_dict(self.start)
        optimizer = METHODS.get(name)(self.model, prunable_parameters(self.model, "weights"), seed=0,
                                      **{"lr": 0.05, **params})
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        net = self.compiled if variant == "compile" else self.model
        precision = "bf16" if variant == "bf16" else "fp32"
        self.model.train()
        losses = [float(train_step(net, optimizer, scheduler, (x, y), CPU, precision=precision, layout=layout)[0])
                  for x, y in self.batches]
        weights = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])
        self.model.to(memory_format=torch.contiguous_format)
        return losses, weights


@pytest.fixture(scope="module")
def bench():
    return Bench()


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def assert_close(variant: str, got, plain, what: str) -> None:
    (losses, weights), (ref_losses, ref_weights) = got, plain
    tol = TOLERANCE[variant]
    assert all(abs(a - b) <= tol * abs(b) for a, b in zip(losses, ref_losses)), (what, losses, ref_losses)
    assert relative(weights, ref_weights) <= tol, (what, relative(weights, ref_weights))
    if variant == "bf16":
        assert not torch.equal(weights, ref_weights), f"{what}: bf16 changed nothing"


@pytest.mark.parametrize("case", list(METHOD_CASES))
def test_every_method_under_the_gpu_configuration(case, bench):
    plain = bench.train(case, "plain")
    assert all(torch.isfinite(torch.tensor(plain[0])))
    for variant in ("channels_last", "bf16", "compile"):
        assert_close(variant, bench.train(case, variant), plain, f"{case} {variant}")


def oneshot_bnt(model: nn.Module, net: nn.Module, layout, precision: str, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Global magnitude at 0.5 then BNT on ``batches`` through ``net``; the compressed weights
    and the BN running statistics."""
    model.to(memory_format=layout)
    COMPRESSORS.get("global_magnitude")(model, 0.5, prunable_parameters(model, "weights"))
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
    with cast:
        batch_norm_tuning(net, [x.to(memory_format=layout) for x, _ in batches])
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    stats = torch.cat([b.reshape(-1) for n, b in model.named_buffers() if "running" in n])
    return weights, stats


def test_oneshot_and_bnt_under_the_gpu_configuration(bench):
    results = {}
    for variant in ("plain", "channels_last", "bf16", "compile"):
        bench.model.load_state_dict(bench.start)
        layout = torch.channels_last if variant == "channels_last" else torch.contiguous_format
        net = bench.compiled if variant == "compile" else bench.model
        results[variant] = oneshot_bnt(bench.model, net, layout, "bf16" if variant == "bf16" else "fp32",
                                       bench.batches)
        bench.model.to(memory_format=torch.contiguous_format)
    weights, stats = results.pop("plain")
    for variant, (w, s) in results.items():
        assert torch.equal(w, weights), variant  # Top-K reads the weights in logical order: same mask
        assert relative(s, stats) <= TOLERANCE[variant], (variant, relative(s, stats))
    assert not torch.equal(results["bf16"][1], stats)


def test_sfw_init_under_channels_last_and_bf16(bench):
    """SFW-Init differentiates through an SFW step (double backward), which torch.compile does
    not support; it runs eagerly on ``model`` whatever ``training.compile`` (the compiled net is
    the training loop's only)."""
    recipe = SFWInit(iterations=3)
    scales = {}
    for variant in ("plain", "channels_last", "bf16"):
        bench.model.load_state_dict(bench.start)
        layout = torch.channels_last if variant == "channels_last" else torch.contiguous_format
        bench.model.to(memory_format=layout)
        groups = METHODS.get("sfw")(bench.model, [], seed=0, lr=0.5, constraint="k_sparse", k="20%",
                                    init="sfw_init", init_iterations=3).param_groups
        batches = iter([(x.to(memory_format=layout), y) for x, y in bench.batches] * 3)
        cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16")
        with cast:
            scales[variant] = sfw_init(bench.model, groups, recipe, batches)
        bench.model.to(memory_format=torch.contiguous_format)
    plain = scales.pop("plain")
    for variant, s in scales.items():
        assert relative(s, plain) <= TOLERANCE[variant], (variant, s, plain)
