"""The cost of ``training.numerics: portable`` on a config's runs: each run is trained by
``python -m compressible train`` in fast and in portable mode, alternately, ``--repeat`` times;
the figure is the training wall time its provenance records (start-up and data loading left
out), median over the repeats, and the ratio portable / fast.

    python benchmarks/bench_numerics.py [--config configs/default.yaml] [--methods SGD,CrAM+-Multi]
        [--seed 0] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from compressible.config import read_yaml


def compressible(*args) -> None:
    subprocess.run([sys.executable, "-m", "compressible", *map(str, args)], check=True, capture_output=True)


def train_seconds(config: Path, data: Path, arch: str, method: str, seed: int, out: Path) -> float:
    compressible("train", "--config", config, "--arch", arch, "--method", method, "--seed", seed,
                 "--data", data, "--out", out)
    return json.loads(out.with_suffix(".json").read_text())["wall_time_s"]


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
            fast, portable = (statistics.median(times[m]) for m in ("fast", "portable"))
            print(f"{method}: fast {fast:.1f} s, portable {portable:.1f} s, ratio {portable / fast:.2f} "
                  f"({args.repeat} runs each: {times})", flush=True)


if __name__ == "__main__":
    main()
