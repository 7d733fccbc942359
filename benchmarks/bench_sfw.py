"""Cost of Stochastic Frank-Wolfe, as ratios measured in one run (timings after warm-up, medians).

1. Spectral-k-support LMO (top-k triplets only, Lemma 3.1) vs a full SVD on a 512 x 4608
   gradient (ResNet-18's largest conv seen as c_out x (c_in*kh*kw)), k = 5% of the rank; plus
   the LMO's relative optimality gap against the exact value -r ||sigma_1..k||_2.
2. One training step (forward + backward + update) of CIFAR ResNet-20, batch 128: SFW in the
   K-sparse polytope (SFW-pruning's settings) vs SGD with momentum; steps interleaved so drift
   in machine load hits both alike.

Run: ``.venv/bin/python benchmarks/bench_sfw.py [--repeats N] [--device cpu|cuda] [--threads T]``.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from compressible.models import build_model
from compressible.optim.methods_sfw import build_sfw
from compressible.registry import CONSTRAINTS


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def bench_lmo(repeats: int, device: str) -> dict:
    gradient = torch.randn(512, 512, 3, 3, generator=torch.Generator().manual_seed(0)).to(device)
    matrix = gradient.reshape(512, -1)
    k = int(0.05 * min(matrix.shape))
    lmo = CONSTRAINTS.get("spectral_k_support")(gradient.shape, radius=1.0, k=k).lmo
    full_svd = lambda: torch.linalg.svd(matrix, full_matrices=False)  # noqa: E731
    for fn in (lmo(gradient).sum, full_svd):  # warm-up
        fn()
    t_full, t_lmo = [], []
    for _ in range(repeats):
        t_full.append(timed(full_svd, device))
        t_lmo.append(timed(lambda: lmo(gradient), device))
    exact = float(torch.linalg.svdvals(matrix.double())[:k].norm())
    gap = (exact + float((gradient * lmo(gradient)).sum())) / exact  # <g, v*> = -||sigma_k||
    return {"k": k, "full_svd_s": statistics.median(t_full), "lmo_s": statistics.median(t_lmo),
            "speedup": statistics.median(t_full) / statistics.median(t_lmo), "optimality_gap": gap}


def training_step(model, optimizer, x, y):
    def closure(track_bn_stats: bool = True):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return lambda: optimizer.step(closure)


def bench_step(repeats: int, device: str) -> dict:
    torch.manual_seed(0)
    model_sgd = build_model("resnet20").to(device)
    model_sfw = copy.deepcopy(model_sgd)
    sgd = torch.optim.SGD(model_sgd.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sfw = build_sfw(model_sfw, [], seed=0, constraint="k_sparse", k="5%", k_min=10, tau=15.0, lr=1.0,
                    momentum=0.9, rescale="gradient")
    x, y = torch.randn(128, 3, 32, 32, device=device), torch.randint(0, 10, (128,), device=device)
    steps = {"sgd": training_step(model_sgd, sgd, x, y), "sfw": training_step(model_sfw, sfw, x, y)}
    for step in steps.values():  # warm-up (allocator, kernels, momentum buffers)
        for _ in range(3):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(timed(step, device))
    sgd_s, sfw_s = statistics.median(times["sgd"]), statistics.median(times["sfw"])
    return {"sgd_step_s": sgd_s, "sfw_step_s": sfw_s, "ratio": sfw_s / sgd_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    lmo = bench_lmo(max(3, args.repeats // 4), args.device)
    print(f"spectral-k-support LMO 512x4608, k={lmo['k']}: full SVD {lmo['full_svd_s'] * 1e3:.1f} ms, "
          f"top-k LMO {lmo['lmo_s'] * 1e3:.1f} ms -> {lmo['speedup']:.1f}x faster "
          f"(relative optimality gap {lmo['optimality_gap']:.1e})")
    step = bench_step(args.repeats, args.device)
    print(f"ResNet-20 batch 128 step: SGD {step['sgd_step_s'] * 1e3:.1f} ms, SFW k-sparse "
          f"{step['sfw_step_s'] * 1e3:.1f} ms -> ratio SFW/SGD {step['ratio']:.3f}")


if __name__ == "__main__":
    main()
