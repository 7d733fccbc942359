"""Cost of the per-epoch resume state: save time relative to an epoch, size relative to the checkpoint.

CIFAR ResNet-20 (``--width``, 16 in the paper) on synthetic CIFAR-shaped images (3 x 32 x 32,
``--images`` of them), batch ``--batch``, driven by the trainer's own step. One epoch over the
synthetic images is timed, then ``resume.save_state`` (model, optimizer state, scheduler,
every RNG, position, curves) ``--repeats`` times (median). The overhead is printed relative to
the measured epoch and, from the median step time, to a full CIFAR-10 epoch (50,000 images).
The size is that of the resume file against the checkpoint (``checkpoint.save_checkpoint``).

    python benchmarks/bench_resume.py [--method cram_plus_multi] [--images 512] [--width 16] [--batch 128] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import compressible.optim  # noqa: F401  (registers the METHODS)
from compressible.checkpoint import save_checkpoint
from compressible.compress.prunable import prunable_parameters
from compressible.data import ImageSplits, train_batches
from compressible.training.distributed import Processes
from compressible.models import build_model
from compressible.optim.schedules import lr_factor
from compressible.registry import METHODS
from compressible.training.resume import Position, save_state
from compressible.training.loop import train_step

CIFAR_TRAIN = 50_000


def synthetic_cifar(n: int) -> ImageSplits:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=gen)
    return ImageSplits(images, labels, images[:64], labels[:64], 10, (0.5,) * 3, (0.25,) * 3, crop_padding=4, flip=True)


def build(method: str, width: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_model("resnet20", 10, 3, width)
    optimizer = METHODS.get(method)(model, prunable_parameters(model, "weights"), seed=0, lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor("cosine", steps))
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler}


def timed_epoch(parts: dict, splits: ImageSplits, batch: int) -> tuple[float, list[float]]:
    one = Processes(0, 1, torch.device("cpu"))
    step_times, start = [], time.perf_counter()
    for x, y in train_batches(splits, batch, torch.Generator().manual_seed(0)):
        t = time.perf_counter()
        train_step(parts["model"], parts["optimizer"], parts["scheduler"], (x, y), one)
        step_times.append(time.perf_counter() - t)
    return time.perf_counter() - start, step_times


def timed_saves(parts: dict, folder: Path, repeats: int) -> float:
    position = Position(1, 0, torch.Generator().get_state())
    curves = [{"epoch": 1, "train_loss": 1.0, "test_accuracy": 10.0, "test_loss": 2.0}]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        save_state(folder / "resume.pt", "0" * 16, parts, position, curves)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="cram_plus_multi")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = synthetic_cifar(args.images)
    parts = build(args.method, args.width, args.images // args.batch)
    epoch, step_times = timed_epoch(parts, splits, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save = timed_saves(parts, folder, args.repeats)
        m = parts["model"]
        save_checkpoint(m, {"name": "resnet20", "width": args.width}, 10, 3, folder / "ckpt.pt")
        sizes = [(folder / name).stat().st_size for name in ("resume.pt", "ckpt.pt")]
    cifar_epoch = statistics.median(step_times) * (CIFAR_TRAIN // args.batch)
    print(f"ResNet-20 width {args.width}, {args.method}, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"epoch over {args.images} synthetic images ({len(step_times)} steps): {epoch:.2f} s; "
          f"median step {statistics.median(step_times) * 1e3:.1f} ms")
    print(f"resume state save (median of {args.repeats}): {save * 1e3:.1f} ms = {100 * save / epoch:.2f} % "
          f"of that epoch, {100 * save / cifar_epoch:.3f} % of a CIFAR-10 epoch ({CIFAR_TRAIN // args.batch} "
          f"steps, {cifar_epoch:.0f} s from the median step)")
    print(f"resume state {sizes[0] / 1e6:.2f} MB = {sizes[0] / sizes[1]:.2f} x the checkpoint ({sizes[1] / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
