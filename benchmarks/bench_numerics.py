"""The cost of ``training.numerics: portable`` on a config's runs: each run is trained by
``python -m compressible train`` in fast and in portable mode, alternately, ``--repeat`` times;
the figures are the training wall time its provenance records (start-up and data loading left
out) and the job's CPU time (user + system, start-up included: on a machine shared with other
work the steadier of the two at one thread), medians over the repeats, and the ratios
portable / fast.

    python benchmarks/bench_numerics.py [--config configs/default.yaml] [--methods SGD,CrAM+-Multi]
        [--seed 0] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from compressible.config import read_yaml


def compressible(*args) -> None:
    subprocess.run([sys.executable, "-m", "compressible", *map(str, args)], check=True, capture_output=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_seconds(config: Path, data: Path, arch: str, method: str, seed: int, out: Path) -> tuple[float, float]:
    """(training wall time, the job's CPU time)."""
    before = cpu_seconds()
    compressible("train", "--config", config, "--arch", arch, "--method", method, "--seed", seed,
                 "--data", data, "--out", out)
    return json.loads(out.with_suffix(".json").read_text())["wall_time_s"], cpu_seconds() - before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/default.yaml")
    p.add_argument("--methods", default="SGD,CrAM+-Multi", help="comma-separated method labels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    raw = read_yaml(args.config)
    arch = raw["archs"][0]["name"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configs = {}
        for mode in ("fast", "portable"):
            raw["training"]["numerics"] = mode
            configs[mode] = tmp / f"{mode}.yaml"
            configs[mode].write_text(yaml.safe_dump(raw))
        compressible("prepare", "--config", configs["fast"], "--out", tmp / "data.pt")
        for method in args.methods.split(","):
            times = {mode: [] for mode in configs}
            for i in range(args.repeat):
                for mode, config in configs.items():
                    out = tmp / f"{mode}{i}" / "run.pt"
                    out.parent.mkdir(exist_ok=True)
                    times[mode].append(train_seconds(config, tmp / "data.pt", arch, method, args.seed, out))
            for i, what in enumerate(("wall", "cpu")):
                fast, portable = (statistics.median(t[i] for t in times[m]) for m in ("fast", "portable"))
                print(f"{method} ({what}): fast {fast:.1f} s, portable {portable:.1f} s, ratio "
                      f"{portable / fast:.2f} ({args.repeat} runs each: {times})", flush=True)


if __name__ == "__main__":
    main()
