"""Global magnitude threshold over ResNet-50-many weights: selection versus a full sort.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_threshold.py [--numel 25557032] [--repeats 3]
Prints the median wall time (after one warm-up) of
  * the global threshold alone (concatenate, |w| in place, ``kth_smallest``: O(n), no sort),
  * plain ``torch.kthvalue`` on the prepared vector, for reference,
  * the one-shot kernel ``global_topk_masks(..., magnitude=True)`` (threshold plus exact-count masks),
  * a full ``torch.sort`` of the same vector (what a sort-based threshold would cost),
and their ratio, all measured in the same run on the same data.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from compressible.compress.masks import global_topk_masks, keep_count, kth_smallest


def layer_sizes(total: int, layers: int = 54) -> list[int]:
    """Tensor sizes growing geometrically (as conv widths do through a ResNet) summing to ``total``."""
    weights = [1.06 ** i for i in range(layers)]
    sizes = [int(total * w / sum(weights)) for w in weights]
    sizes[-1] += total - sum(sizes)
    return sizes


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator and thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=25_557_032, help="ResNet-50 parameter count")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(n, generator=gen) for n in layer_sizes(args.numel)]
    flat = torch.cat([t.abs() for t in tensors])
    pruned = args.numel - keep_count(args.numel, args.sparsity)

    threshold = median_seconds(lambda: kth_smallest(torch.cat(tensors).abs_(), pruned), args.repeats)
    plain_kth = median_seconds(lambda: torch.kthvalue(flat, pruned), args.repeats)
    kernel = median_seconds(lambda: global_topk_masks(tensors, args.sparsity, magnitude=True), args.repeats)
    full_sort = median_seconds(lambda: torch.sort(flat), args.repeats)
    kept = sum(int(m.sum()) for m in global_topk_masks(tensors, args.sparsity, magnitude=True))
    assert kept == keep_count(args.numel, args.sparsity)

    print(f"weights: {args.numel:,} in {len(tensors)} tensors, sparsity {args.sparsity}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"global threshold (concat, |w|, kth_smallest):      {threshold:8.3f} s")
    print(f"  torch.kthvalue alone on the prepared |w| vector: {plain_kth:8.3f} s")
    print(f"global_topk_masks on |w| (threshold + masks):  {kernel:8.3f} s")
    print(f"full torch.sort of the same vector:                {full_sort:8.3f} s")
    print(f"sort / global threshold: {full_sort / threshold:.2f}x; "
          f"sort / full kernel: {full_sort / kernel:.2f}x")


if __name__ == "__main__":
    main()
