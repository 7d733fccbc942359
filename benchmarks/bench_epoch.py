"""Epoch time of the project's training pipeline against a standard torchvision pipeline.

CIFAR-shaped synthetic data (50,000 x 3 x 32 x 32 uint8, 10 classes), CIFAR ResNet-20, batch
128, SGD (lr 0.1, momentum 0.9, weight decay 5e-4), the trainer's own ``train_step`` for both:

- project: the uint8 images held on the device once, batches sliced there and cropped/flipped
  batch-wise (``compressible.data.train_batches``);
- torchvision: a ``Dataset`` with ``transforms.v2`` RandomCrop(32, padding=4),
  RandomHorizontalFlip, ToDtype, Normalize per sample, ``DataLoader(num_workers, pin_memory=True)``.

Then the project's step for SGD, SAM and CrAM+-Multi and SFW, in fp32 and bf16, with and
without ``torch.compile``. Every figure is seconds per step over ``--steps`` timed steps after
``--warmup`` (``--steps 0``: one whole epoch, 390 steps), printed with its ratio to a baseline
measured in the same run. ``--record`` writes the project's per-step times into the planner's
table (``src/compressible/step_times.json``) for this device.

    python benchmarks/bench_epoch.py [--device auto] [--steps 40] [--warmup 5] [--workers 4]
        [--skip compile,bf16,torchvision] [--record]
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

import compressible.optim  # noqa: F401  (registers the METHODS)
from compressible.compress.accounting import layer_flops
from compressible.compress.prunable import prunable_parameters
from compressible.data import ImageSplits, train_batches
from compressible.device import describe, memory_format, resolve_device
from compressible.training.distributed import Processes
from compressible.models import build_model
from compressible.registry import METHODS
from compressible.training.loop import train_step

SGD = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
METHOD_CASES = {"sgd": {}, "sam": {"rho": 0.05}, "cram_plus_multi": {"rho": 0.15, "sparse_grad": True},
                "sfw": {"k": "5%"}}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
TABLE = Path(__file__).resolve().parents[1] / "src" / "compressible" / "step_times.json"


def synthetic_cifar(n: int = 50_000) -> ImageSplits:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return ImageSplits(images, labels, images[:1000], labels[:1000], 10, CIFAR_MEAN, CIFAR_STD, 4, True)


def torchvision_batches(splits: ImageSplits, batch: int, workers: int):
    from torchvision.transforms import v2

    transform = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                            v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR_MEAN, CIFAR_STD)])

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(splits.train_labels)

        def __getitem__(self, i):
            return transform(splits.train_images[i]), splits.train_labels[i]

    return torch.utils.data.DataLoader(Images(), batch_size=batch, shuffle=True, drop_last=True,
                                       num_workers=workers, pin_memory=True, persistent_workers=workers > 0)


def build(method: str, device: torch.device, compiled: bool):
    torch.manual_seed(0)
    model = build_model("resnet20")
    model = model.to(device, memory_format=memory_format(device, model))
    params = dict(SGD, **METHOD_CASES[method]) if method != "sfw" else dict(lr=0.1, **METHOD_CASES[method])
    optimizer = METHODS.get(method)(model, prunable_parameters(model, "weights"), seed=0, **params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    net = torch.compile(model) if compiled else model
    return net, optimizer, scheduler


def seconds_per_step(batches, method: str, device: torch.device, precision: str, compiled: bool,
                     steps: int, warmup: int) -> float:
    """Wall seconds per step (data included) over ``steps`` steps after ``warmup`` steps."""
    net, optimizer, scheduler = build(method, device, compiled)
    net.train()
    one, layout = Processes(0, 1, device), memory_format(device, net)
    start, done = None, 0
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        train_step(net, optimizer, scheduler, (x, y), one, precision=precision, layout=layout)
        done = i + 1
        if done == warmup + steps:
            break
    _sync(device)
    return (time.perf_counter() - start) / (done - warmup)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def project_batches(splits: ImageSplits, batch: int, device: torch.device):
    """Endless epochs of the project's batches (a timed window may cross an epoch's end)."""
    on_device, g = splits.to(device), torch.Generator().manual_seed(0)
    while True:
        yield from train_batches(on_device, batch, g, True)


def cases(skip: set) -> list[tuple[str, str, bool]]:
    out = [(m, "fp32", False) for m in METHOD_CASES]
    out += [] if "bf16" in skip else [(m, "bf16", False) for m in ("sgd", "cram_plus_multi")]
    out += [] if "compile" in skip else [("sgd", "fp32", True)]
    return out


def record(device: torch.device, results: dict, batch: int, command: str) -> None:
    """Replace this device's rows of the planner's table (uncompiled project steps)."""
    name = describe(device)["gpu"] if device.type == "cuda" else "cpu"
    flops = float(sum(m for m, _ in layer_flops(build_model("resnet20"), (3, 32, 32))))
    when = f"{datetime.date.today().isoformat()}, {command}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    table = json.loads(TABLE.read_text())
    rows = [r for r in table["rows"] if r["device"] != name]
    for (method, precision, compiled), seconds in results.items():
        if not compiled:
            rows.append({"device": name, "arch": "resnet20", "method": method, "precision": precision,
                         "batch_size": batch, "macs_per_image": flops, "seconds_per_step": round(seconds, 6),
                         "measured": when})
    table["rows"] = sorted(rows, key=lambda r: (r["device"], r["method"], r["precision"]))
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(results)} rows for {name} in {TABLE.name}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=40, help="timed steps per case (0: a whole epoch)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the torchvision pipeline")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--skip", default="", help="comma-separated: torchvision, bf16, compile")
    p.add_argument("--record", action="store_true", help="write the step times into the planner's table")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, skip = resolve_device(args.device), set(filter(None, args.skip.split(",")))
    splits = synthetic_cifar()
    epoch = len(splits.train_labels) // args.batch
    timing = dict(steps=args.steps or epoch - args.warmup, warmup=args.warmup)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"device: {json.dumps(describe(device))}; ResNet-20, batch {args.batch}, "
          f"{timing['steps']} timed steps after {args.warmup}")
    results = {}
    for method, precision, compiled in cases(skip):
        batches = project_batches(splits, args.batch, device)
        results[method, precision, compiled] = seconds_per_step(batches, method, device, precision, compiled, **timing)
    base = results[("sgd", "fp32", False)]
    print(f"project SGD fp32: {1000 * base:.1f} ms/step, epoch {epoch * base:.1f} s")
    if "torchvision" not in skip:
        tv = seconds_per_step(torchvision_batches(splits, args.batch, args.workers), "sgd", device, "fp32",
                              False, **timing)
        print(f"torchvision DataLoader ({args.workers} workers) SGD fp32: {1000 * tv:.1f} ms/step, "
              f"epoch {epoch * tv:.1f} s; project epoch {tv / base:.2f}x faster")
    for (method, precision, compiled), seconds in results.items():
        label = f"{method} {precision}{' compiled' if compiled else ''}"
        print(f"{label:28s} {1000 * seconds:8.1f} ms/step   / project SGD fp32 {seconds / base:.3f}")
    for method in ("sgd", "cram_plus_multi"):  # the paper's protocol: 200 epochs (CrAM App. B)
        print(f"CIFAR-10 ResNet-20, 200 epochs of {method} fp32 steps: "
              f"{200 * epoch * results[method, 'fp32', False] / 60:.1f} min (steps only, no evaluation)")
    if args.record:
        record(device, results, args.batch, f"python benchmarks/bench_epoch.py --steps {args.steps}")


if __name__ == "__main__":
    main()
