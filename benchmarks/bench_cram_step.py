"""Cost of one SAM / CrAM+ step relative to one SGD step, measured in the same run.

CIFAR ResNet-20, one fixed batch (default 128), the trainer's closure protocol
(``closure(track_bn_stats=False)`` for the second pass). Every method gets its own copy of
the same model; steps are interleaved round by round so that drift in machine load hits
all methods alike; the median of ``--rounds`` timed steps after ``--warmup`` steps is
reported. Two forward-backward passes make 2.0 the floor for the two-pass methods.

    python benchmarks/bench_cram_step.py [--rounds 15] [--warmup 3] [--batch 128] [--threads N] [--device cpu]
"""
from __future__ import annotations

import argparse
import copy
import functools
import statistics
import sys
import time
from typing import Callable

import torch
from torch import nn

from compressible.training.loop import make_closure as trainer_closure
from compressible.compress.prunable import prunable_parameters
from compressible.models import build_model
import compressible.optim  # noqa: F401  (registers the METHODS)
from compressible.registry import METHODS

PASS = "one forward-backward (no step)"
SGD = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
# label -> (METHODS name, method kwargs)
CASES = {
    "sgd": ("sgd", {}),
    "sam": ("sam", {"rho": 0.1}),
    "cram_plus (k70, SG)": ("cram_plus", {"rho": 0.15, "sparsity": 0.7, "sparse_grad": True}),
    "cram_plus_multi (SG)": ("cram_plus_multi", {"rho": 0.15, "sparse_grad": True}),
    "cram_plus (k70, SG, mask_every=20)": ("cram_plus", {"rho": 0.15, "sparsity": 0.7,
                                                         "sparse_grad": True, "mask_every": 20}),
}


def build(name: str, model: nn.Module, kwargs: dict) -> torch.optim.Optimizer:
    return METHODS.get(name)(model, prunable_parameters(model, "weights"), seed=0, **SGD, **kwargs)


def make_closure(model, opt, x, y):
    """The trainer's closure: zero grads, forward (BN stats frozen on request), backward."""
    return trainer_closure(model, x, y, opt)


def timed(run: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    base = build_model("resnet20").to(device)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    steps = {}
    for label, (name, kwargs) in CASES.items():
        model = copy.deepcopy(base)
        opt = build(name, model, kwargs)
        steps[label] = functools.partial(opt.step, make_closure(model, opt, x, y))
    model = copy.deepcopy(base)  # one forward-backward alone: 2x this is the two-pass floor
    steps[PASS] = make_closure(model, torch.optim.SGD(model.parameters(), lr=0.0), x, y)
    times = {label: [] for label in steps}
    for i in range(args.warmup + args.rounds):
        for label, run in steps.items():
            elapsed = timed(run, device)
            if i >= args.warmup:
                times[label].append(elapsed)
    report(times, args, device)


def report(times: dict, args, device: torch.device) -> None:
    """Median time per method, and the median over rounds of the ratio to that round's SGD step
    (robust to load drifting between rounds on a shared machine)."""
    medians = {label: statistics.median(t) for label, t in times.items()}
    paired = {label: statistics.median(a / b for a, b in zip(t, times["sgd"])) for label, t in times.items()}
    print(f"command: python {' '.join(sys.argv)}")
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"batch {args.batch}, ResNet-20, median of {args.rounds} steps after {args.warmup} warm-up")
    for label, median in medians.items():
        print(f"{label:36s} {1000 * median:8.1f} ms/step   ratio of medians {median / medians['sgd']:.3f}"
              f"   median of per-round ratios {paired[label]:.3f}")


if __name__ == "__main__":
    main()
