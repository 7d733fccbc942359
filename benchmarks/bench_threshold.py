"""Global magnitude threshold over ResNet-50-many weights: kthvalue versus a full sort.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_threshold.py [--numel 25557032] [--repeats 3]
Prints the median wall time (after one warm-up) of
  * the global threshold alone (kthvalue over |w| of all tensors: O(n), no sort),
  * the full one-shot kernel ``global_topk_masks`` (concatenate, threshold, exact-count masks),
  * a full ``torch.sort`` of the same vector (what a sort-based threshold would cost),
and their ratio, all measured in the same run on the same data.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from compressible.compress.masks import global_topk_masks, keep_count


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

    threshold = median_seconds(lambda: torch.kthvalue(torch.cat([t.abs() for t in tensors]), pruned), args.repeats)
    kernel = median_seconds(lambda: global_topk_masks([t.abs() for t in tensors], args.sparsity), args.repeats)
    full_sort = median_seconds(lambda: torch.sort(flat), args.repeats)
    kept = sum(int(m.sum()) for m in global_topk_masks([t.abs() for t in tensors], args.sparsity))
    assert kept == keep_count(args.numel, args.sparsity)

    print(f"weights: {args.numel:,} in {len(tensors)} tensors, sparsity {args.sparsity}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"global threshold (kthvalue, incl. |w| and concat): {threshold:8.3f} s")
    print(f"global_topk_masks (threshold + exact masks):       {kernel:8.3f} s")
    print(f"full torch.sort of the same vector:                {full_sort:8.3f} s")
    print(f"sort / kthvalue threshold: {full_sort / threshold:.2f}x; "
          f"sort / full kernel: {full_sort / kernel:.2f}x")


if __name__ == "__main__":
    main()
