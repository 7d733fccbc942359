"""Host syncs and ATen operators per training step, per method, beside a minimal SGD loop.

Each method trains ``python -m compressible train``'s loop (``train_run``) twice on the same
synthetic data, with ``--steps`` and with twice as many steps per epoch; the difference of the
two counts over the difference of the steps is the per-step cost, free of what a run does once
(building, SFW's initial shift, evaluation, the checkpoint). Syncs are the calls that block the
host on a GPU (``compressible.host_syncs``: ``item``, ``float``/``int``/``bool`` of a tensor,
``tolist``, ``nonzero``, boolean-mask indexing, ...), counted on the CPU; linear-algebra
decompositions, which read a status flag inside the operator on CUDA, are reported apart
("linalg"), and so are reads of host-only tensors ("host": CrAM-Multi's CPU generator draws).
ATen operators are about one kernel launch each on a GPU. The reference is a hand-written loop
(zero_grad, forward, cross-entropy, backward, ``torch.optim.SGD.step``) on the same model.

    python benchmarks/bench_overhead.py [--steps 60] [--batch 8] [--methods sgd sam ...]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from compressible.config import Arch, Method, Training  # noqa: E402
from compressible.data import ImageSplits, save_prepared  # noqa: E402
from compressible.host_syncs import AtenOps, HostSyncs  # noqa: E402
from compressible.models import build_arch  # noqa: E402
from compressible.runs import Run, RunSpec  # noqa: E402
from compressible.training.loop import train_run  # noqa: E402

SFW = {"lr": 0.5, "constrain": "structured_conv_l2_rest", "momentum_style": "heavy_ball"}
# label -> (METHODS name, parameters): every method, every CrAM member, every SFW constraint kind
CASES = {
    "sgd": ("sgd", {}), "sam": ("sam", {}), "asam": ("sam", {"adaptive": True}),
    "cram": ("cram", {}), "cram_plus": ("cram_plus", {"sparse_grad": True}),
    "cram_plus_multi": ("cram_plus_multi", {"sparse_grad": True}),
    "cram_plus_multi (mask_every 4)": ("cram_plus_multi", {"mask_every": 4}),
    "cram_plus (uniform, dense ends)": ("cram_plus", {"topk_scope": "uniform", "dense_first_last": True}),
    "cram_plus_nm": ("cram_plus_nm", {}), "cram_plus_quant": ("cram_plus_quant", {}),
    "c_sam": ("c_sam", {}), "topk": ("topk", {}), "topk_plus": ("topk_plus", {}),
    "sfw k_sparse": ("sfw", {"lr": 0.5, "constraint": "k_sparse"}),
    **{f"sfw {c}": ("sfw", {**SFW, "constraint": c, "k": k})
       for c, k in [("k_support", "5%"), ("group_k_support", 2), ("l1", "5%"), ("l2", "5%"), ("linf", "5%"),
                    ("nuclear", "5%"), ("spectral_k_support", 2), ("spectral_k_sparse", 2)]},
    **{f"sfw global {c}": ("sfw", {**SFW, "constraint": c, "k": k, "constraint_scope": "global"})
       for c, k in [("k_sparse", "5%"), ("k_support", "5%"), ("group_k_support", 2), ("l2", "5%")]},
    "nuclear_prox": ("nuclear_prox", {}),
    # Adam as the base (CrAM App. D), and p(Adam) (Table 19): plain steps drawn on a CPU generator
    "adam": ("adam", {"lr": 1e-3}), "sam (adam)": ("sam", {"base": "adam", "lr": 1e-3}),
    "cram_plus (adam, p_base 0.5)": ("cram_plus", {"base": "adam", "lr": 1e-3, "p_base": 0.5}),
    "cram_plus_multi (adam, p_base 0.3)": ("cram_plus_multi", {"base": "adam", "lr": 1e-3, "p_base": 0.3}),
    "masked (adam)": ("masked", {"lr": 1e-3}),
}


def splits(n: int, size: int = 12, seed: int = 0) -> ImageSplits:
    """Random 1-channel images of 4 classes, cropped and flipped as CIFAR's."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 4
    return ImageSplits(images, labels, images[:16], labels[:16], 4, (0.3,), (0.3,), crop_padding=2, flip=True)


def spec(name: str, params: dict, batch: int, label: str = "m") -> RunSpec:
    training = Training(epochs=1, batch_size=batch, eval_batch_size=64, warmup_epochs=0, schedule="cosine",
                        schedule_unit="step", milestones=[0.5], augment=True, threads=1, gpus=0, gpus_per_run=1,
                        sync_bn=False, device="cpu", precision="fp32", compile=False, jobs_per_gpu=1)
    return RunSpec(Run("resnet20", label, 0), {"name": "synthetic"}, Arch("resnet20", 4, None),
                   Method(label, name, {"lr": 0.05, **params}, None), training, "weights")


def counted_run(run: RunSpec, steps: int, folder: Path, count_ops: bool = True) -> tuple[HostSyncs, int]:
    """The host syncs and (with ``count_ops``) the ATen operators of one run of ``steps`` steps."""
    data = folder / f"data{steps}x{run.training.batch_size}.pt"
    if not data.exists():
        save_prepared(splits(steps * run.training.batch_size), data)
    ops = AtenOps() if count_ops else contextlib.nullcontext()
    with HostSyncs() as syncs, ops:
        train_run(run, data, folder / "run.pt")
    return syncs, ops.total if count_ops else 0


def per_step(name: str, params: dict, steps: int, batch: int, folder: Path) -> dict:
    """Syncs, linalg calls and ATen operators per step (difference of two run lengths)."""
    run = spec(name, params, batch)
    (s1, o1), (s2, o2) = counted_run(run, steps, folder), counted_run(run, 2 * steps, folder)
    linalg = sum(s2.linalg.values()) - sum(s1.linalg.values())
    host = sum(s2.host.values()) - sum(s1.host.values())
    return {"syncs": (s2.total - s1.total) / steps, "linalg": linalg / steps, "host": host / steps,
            "aten": (o2 - o1) / steps, "which": dict(s2.counts - s1.counts)}


def minimal_sgd(steps: int, batch: int) -> dict:
    """The reference: a hand-written loop on the same model, data already on the device."""
    model = build_arch({"name": "resnet20", "width": 4, "pretrained": None}, 4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(batch, 1, 12, 12), torch.arange(batch) % 4

    def loop(n: int):
        with HostSyncs() as syncs, AtenOps() as ops:
            for _ in range(n):
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
        return syncs.total, ops.total

    (s1, o1), (s2, o2) = loop(steps), loop(2 * steps)
    return {"syncs": (s2 - s1) / steps, "linalg": 0.0, "host": 0.0, "aten": (o2 - o1) / steps, "which": {}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60, help="steps of the shorter run (the longer: twice)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--methods", nargs="*", default=list(CASES), help=f"labels among {list(CASES)}")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = {"minimal SGD loop": minimal_sgd(args.steps, args.batch)}
    print(f"{'method':34s} {'syncs/step':>10s} {'linalg/step':>11s} {'host/step':>9s} {'ATen ops/step':>13s}  "
          "syncs seen", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for label in ["minimal SGD loop", *args.methods]:
            if label not in rows:
                rows[label] = per_step(*CASES[label], args.steps, args.batch, Path(folder))
            r = rows[label]
            print(f"{label:34s} {r['syncs']:10.3f} {r['linalg']:11.2f} {r['host']:9.3f} {r['aten']:13.0f}  "
                  f"{r['which'] or ''}", flush=True)


if __name__ == "__main__":
    main()
