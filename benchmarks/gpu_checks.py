"""The training engine on CUDA, checked in one call (run by benchmarks/gpu_checks.sh).

Every check is one row, printed and appended to ``$OUT/gpu_checks.jsonl`` as it finishes; a
failing check is reported and the next one runs. The rows:

- ``method:<label>``: a few steps of each method on CUDA against the same steps (same initial
  weights, same batches) on the CPU; the per-step losses agree within ``LOSS_TOL`` (relative),
  TF32 off on both so the difference is summation order only;
- ``deterministic``: a CUDA run repeated under deterministic mode gives bitwise-equal weights;
- ``bf16`` / ``compile``: the CUDA losses against the plain CUDA run (close, not equal);
- ``channels_last``: the CUDA model's conv weights are in channels_last (what training uses);
- ``sfw_init``: SFW-Init's double backward on CUDA against the CPU (the weights it learns);
- ``oneshot_bnt``: one-shot pruning + BNT of the same checkpoint on CUDA against the CPU;
- ``nccl``: a one-process ``torchrun`` with an NCCL process group and DDP;
- ``epoch_benchmark`` / ``cram_sgd_ratio``: benchmarks/bench_epoch.py --record and
  benchmarks/bench_cram_step.py, their output kept in ``$OUT``.

``--dry-run`` imports every module the checks use and lists the checks, on any machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
LOSS_TOL = 1e-2  # relative, per step: fp32 CUDA vs CPU after a few steps (summation order only)
BF16_TOL = 5e-2  # relative: bf16 autocast vs fp32
STEPS = 5
SFW = {"lr": 1.0, "momentum": 0.9, "k": "10%", "tau": 15.0, "rescale": "gradient"}
CRAM = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "rho": 0.1}


def methods():
    from compressible.config import Method
    rows = [Method("SGD", "sgd", {"lr": 0.05}, None), Method("SAM", "sam", {"lr": 0.05, "rho": 0.05}, None),
            Method("NUC", "nuclear_prox", {"lr": 0.05, "nuclear": 1e-3}, None)]
    rows += [Method(name, name, dict(CRAM), None) for name in
             ("cram", "cram_plus", "cram_plus_multi", "cram_plus_nm", "c_sam", "topk", "topk_plus")]
    rows += [Method(f"SFW-{c}", "sfw", dict(SFW, constraint=c), None) for c in
             ("k_sparse", "k_support", "group_k_support", "nuclear", "spectral_k_support",
              "spectral_k_sparse", "l1", "l2", "linf")]
    return rows


def synthetic(path: Path) -> None:
    """Separable classes (each brightens its own quadrant), saved as a prepared dataset."""
    from compressible.data import ImageSplits, save_prepared
    g = torch.Generator().manual_seed(0)

    def make(n, size=16, classes=4):
        labels = torch.arange(n) % classes
        base = torch.randint(0, 60, (n, 3, size, size), generator=g)
        for c in range(classes):
            r, q = divmod(c, 2)
            base[labels == c, :, r * 8:(r + 1) * 8, q * 8:(q + 1) * 8] += 150
        return base.clamp(0, 255).to(torch.uint8), labels
    save_prepared(ImageSplits(*make(1024), *make(256), 4, (0.3,) * 3, (0.3,) * 3, crop_padding=2, flip=True), path)


def run_spec(method, device: str, **training):
    from compressible.config import Arch, Training
    from compressible.runs import Run, RunSpec
    base = Training(epochs=1, batch_size=128, eval_batch_size=256, warmup_epochs=0, schedule="cosine",
                    schedule_unit="step", milestones=[0.5, 0.75], augment=True, threads=4, gpus=0,
                    gpus_per_run=1, sync_bn=False, device=device, precision="fp32", compile=False,
                    jobs_per_gpu=1, tf32=False)
    return RunSpec(Run("resnet20", method.label, 0), {"name": "synthetic"}, Arch("resnet20", 8, None),
                   method, dataclasses.replace(base, **training), "weights")


def steps(spec, data: Path, n: int = STEPS):
    """The losses of the first ``n`` steps and the trainer (same seed: same init and batches)."""
    from compressible.data import train_batches
    from compressible.device import memory_format, use_tf32
    from compressible.runtime import make_deterministic
    from compressible.training.loop import build_trainer, train_step
    make_deterministic(spec.run.seed, spec.training.threads)
    use_tf32(spec.training.tf32)
    t = build_trainer(spec, data, None)
    layout = memory_format(t.processes.device, t.model)
    losses = []
    for x, y in train_batches(t.splits, spec.training.batch_size, t.data_order, spec.training.augment):
        loss, _ = train_step(t.net, t.optimizer, t.scheduler, (x, y), t.processes, False,
                             spec.training.precision, layout)
        losses.append(float(loss))
        if len(losses) == n:
            break
    return losses, t


def relative_gap(a: list, b: list) -> float:
    return max(abs(x - y) / max(abs(y), 1e-8) for x, y in zip(a, b))


def compare(a: list, b: list, tol: float) -> dict:
    gap = relative_gap(a, b)
    return {"ok": gap <= tol, "max_rel_gap": gap, "tol": tol, "cuda": a, "reference": b}


def check_method(method, data, device):
    return compare(steps(run_spec(method, device), data)[0], steps(run_spec(method, "cpu"), data)[0], LOSS_TOL)


def check_deterministic(data, device):
    sgd = methods()[0]
    weights = [steps(run_spec(sgd, device), data)[1].model.state_dict() for _ in range(2)]
    equal = all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    return {"ok": equal, "bitwise_equal": equal}


def check_variant(data, device, **training):
    sgd = methods()[0]
    tol = BF16_TOL if training.get("precision") == "bf16" else LOSS_TOL
    return compare(steps(run_spec(sgd, device, **training), data)[0], steps(run_spec(sgd, device), data)[0], tol)


def check_channels_last(data, device):
    _, t = steps(run_spec(methods()[0], device), data, 1)
    convs = [m.weight for m in t.model.modules() if isinstance(m, torch.nn.Conv2d)]
    ok = all(w.is_contiguous(memory_format=torch.channels_last) for w in convs) or device == "cpu"
    return {"ok": ok, "convs": len(convs)}


def check_sfw_init(data, device):
    from compressible.config import Method
    method = Method("SFW-Init", "sfw", dict(SFW, constraint="k_sparse", init="sfw_init", init_iterations=5,
                                            init_samples=2), None)
    got, ref = (steps(run_spec(method, d), data, 1)[1].model for d in (device, "cpu"))
    gap = max(float((a.detach().cpu() - b.detach()).abs().max() / b.detach().abs().max().clamp_min(1e-8))
              for a, b in zip(got.parameters(), ref.parameters()))
    return {"ok": gap <= LOSS_TOL, "max_rel_weight_gap": gap, "tol": LOSS_TOL}


def check_oneshot_bnt(data, device):
    from compressible.config import BNT
    from compressible.data import load_splits
    from compressible.evaluate import oneshot_level
    _, t = steps(run_spec(methods()[0], device), data, 20)
    bnt = BNT(trials=1, samples=256, batch_size=64, batches=4, momentum=None)
    out = {}
    for d in (device, "cpu"):
        splits = load_splits(data, {"name": "synthetic"}).to(torch.device(d))
        level = oneshot_level(t.model.to(d), splits, "global_magnitude", 0.7, "weights", bnt, 0, 256)
        out[d] = level["bnt_trials"][0]["accuracy"] if level["bnt_trials"] else level["before_bnt"]["accuracy"]
    gap = abs(out[device] - out["cpu"])
    return {"ok": gap <= 1.0, "accuracy_gap_pct": gap, "tol_pct": 1.0, **out}


NCCL_WORKER = """
import torch, torch.distributed as dist
from compressible.models import build_model
dist.init_process_group("nccl"); torch.cuda.set_device(0)
model = torch.nn.parallel.DistributedDataParallel(build_model("resnet20", 4, 3, 8).cuda(), device_ids=[0])
loss = model(torch.randn(8, 3, 16, 16, device="cuda")).square().mean(); loss.backward()
t = torch.ones(1, device="cuda"); dist.all_reduce(t); assert t.item() == 1.0
print("nccl ok", dist.get_backend()); dist.destroy_process_group()
"""


def check_nccl(data, device, out: Path):
    script = out / "nccl_worker.py"
    script.write_text(NCCL_WORKER)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                          str(script)], capture_output=True, text=True, timeout=180)
    (out / "nccl.log").write_text(run.stdout + run.stderr)
    return {"ok": run.returncode == 0 and "nccl ok nccl" in run.stdout, "rc": run.returncode}


def check_script(out: Path, name: str, command: list, timeout: int):
    run = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    (out / f"{name}.log").write_text(run.stdout + run.stderr)
    return {"ok": run.returncode == 0, "rc": run.returncode, "tail": run.stdout.strip().splitlines()[-6:]}


def checks(out: Path, device: str):
    """(name, function of the prepared data) in the order they run."""
    rows = [(f"method:{m.label}", lambda d, m=m: check_method(m, d, device)) for m in methods()]
    rows += [("deterministic", lambda d: check_deterministic(d, device)),
             ("bf16", lambda d: check_variant(d, device, precision="bf16")),
             ("compile", lambda d: check_variant(d, device, compile=True)),
             ("channels_last", lambda d: check_channels_last(d, device)),
             ("sfw_init", lambda d: check_sfw_init(d, device)),
             ("oneshot_bnt", lambda d: check_oneshot_bnt(d, device)),
             ("nccl", lambda d: check_nccl(d, device, out)),
             ("epoch_benchmark", lambda d: check_script(out, "bench_epoch", [
                 "benchmarks/bench_epoch.py", "--device", device, "--steps", "0", "--workers", "8", "--record"], 300)),
             ("cram_sgd_ratio", lambda d: check_script(out, "bench_cram_step", [
                 "benchmarks/bench_cram_step.py", "--device", device, "--rounds", "30", "--warmup", "5"], 120))]
    return rows


def import_everything() -> list[str]:
    """Every module the checks and the benchmarks they start use: a missing package fails here."""
    import importlib
    names = ["compressible.training.loop", "compressible.evaluate", "compressible.data", "compressible.device",
             "compressible.runtime", "compressible.config", "compressible.runs", "compressible.models",
             "compressible.optim", "compressible.compress", "compressible.cli", "compressible.planner",
             "compressible.gpu_slots", "torch.distributed.run", "torchvision", "yaml", "jsonschema"]
    for name in names:
        importlib.import_module(name)
    for script in ("bench_epoch", "bench_cram_step"):
        spec = importlib.util.spec_from_file_location(script, ROOT / "benchmarks" / f"{script}.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        names.append(f"benchmarks/{script}.py")
    return names


def summary(rows: list) -> str:
    lines = [f"{'check':<28} {'result':<6} {'seconds':>8}  detail"]
    for row in rows:
        detail = {k: v for k, v in row.items() if k not in ("check", "ok", "seconds", "cuda", "reference", "tail")}
        lines.append(f"{row['check']:<28} {'ok' if row['ok'] else 'FAIL':<6} {row['seconds']:>8.1f}  "
                     f"{json.dumps(detail)[:90]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-checks")))
    p.add_argument("--device", default="cuda", help="cuda; cpu runs the same rows against itself")
    p.add_argument("--only", default="", help="comma-separated prefixes of the checks to run")
    p.add_argument("--dry-run", action="store_true", help="import every module, list the checks, run none")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in checks(args.out, args.device) if not args.only or r[0].startswith(tuple(args.only.split(",")))]
    if args.dry_run:
        print("imported:", " ".join(import_everything()))
        print("\n".join(name for name, _ in rows))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_checks: torch.cuda.is_available() is False; nothing to check", file=sys.stderr)
        return 2
    data = Path(tempfile.mkdtemp()) / "synthetic.pt"
    synthetic(data)
    done = []
    with open(args.out / "gpu_checks.jsonl", "a") as log:
        for name, check in rows:
            start = time.perf_counter()
            try:
                row = check(data)
            except Exception as err:  # a failing case is reported, the next one runs
                row = {"ok": False, "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
            row = {"check": name, "seconds": time.perf_counter() - start, **row}
            done.append(row)
            log.write(json.dumps(row, default=str) + "\n")
            log.flush()
            print(summary([row]).splitlines()[1], flush=True)
    table = summary(done)
    (args.out / "summary.txt").write_text(table + "\n")
    print("\n" + table)
    return 0 if all(r["ok"] for r in done) else 1


if __name__ == "__main__":
    sys.exit(main())
