"""``python -m compressible <command>``: the thin entry points the Snakemake rules call."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import ConfigError, load_config, run_spec
from .report.published import PublishedError


def _read_config(path: str) -> dict:
    # The rules pass the resolved config (JSON written by common.smk); YAML works the same.
    text = Path(path).read_text()
    from .config import validate_config

    return validate_config(json.loads(text)) if path.endswith(".json") else load_config(path)


def cmd_check(args) -> None:
    cfg = load_config(args.config)
    print(f"{args.config}: valid ({len(cfg['archs'])} arch, {len(cfg['methods'])} methods, {len(cfg['seeds'])} seeds)")


def cmd_prepare(args) -> None:
    from .data import build_splits
    from .provenance import provenance, write_json_atomic

    cfg, start = _read_config(args.config), time.perf_counter()
    splits = build_splits(cfg["dataset"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    digest = splits.save(tmp)
    tmp.replace(out)
    info = provenance(cfg["dataset"], None, time.perf_counter() - start, "cpu")
    info.update(sha256=digest, train=len(splits.train_labels), test=len(splits.test_labels))
    write_json_atomic(out.with_suffix(".json"), info)


def cmd_train(args) -> None:
    from .train import train_run

    spec = run_spec(_read_config(args.config), args.arch, args.method, args.seed)
    info = train_run(spec, args.data, args.out)
    print(f"{args.out}: test accuracy {info['final_test_accuracy']:.2f}% in {info['wall_time_s']:.1f}s")


def cmd_oneshot(args) -> None:
    from .evaluate import oneshot_run

    oneshot_run(_read_config(args.config), args.checkpoint, args.data, args.operator, args.seed, args.out)


def cmd_aggregate(args) -> None:
    from .report.aggregate import aggregate

    print(f"{args.out}: {aggregate(args.results, args.out)} rows")


def cmd_figures(args) -> None:
    from .report.figures import accuracy_vs_sparsity

    cfg = _read_config(args.config)
    methods = [m["label"] for m in cfg["methods"]]
    for arch in cfg["archs"]:
        for entry in magnitude_entries(cfg):
            stem = Path(args.outdir) / f"accuracy_vs_sparsity_{arch['name']}_{entry['operator']}"
            accuracy_vs_sparsity(args.summary, stem, arch["name"], entry["operator"], methods)


def magnitude_entries(cfg: dict) -> list[dict]:
    """The one-shot entries whose levels are sparsities (plotted against sparsity)."""
    from .report.stats import SPARSITY_LEVEL_OPERATORS

    return [e for e in cfg["oneshot"] if e["operator"] in SPARSITY_LEVEL_OPERATORS]


def table_kinds(cfg: dict) -> tuple[str, ...]:
    """Tables after BNT exist only when BNT trials are configured (the SFW papers use none)."""
    return ("bnt", "nobnt") if cfg["bnt"]["trials"] > 0 else ("nobnt",)


def cmd_tables(args) -> None:
    from .report.tables import accuracy_table

    cfg = _read_config(args.config)
    methods = [m["label"] for m in cfg["methods"]]
    levels = [str(lv) for lv in cfg["report"].get("table_levels", [])] or None
    for arch in cfg["archs"]:
        for entry in cfg["oneshot"]:
            for suffix in table_kinds(cfg):
                after = suffix == "bnt"
                out = Path(args.outdir) / f"{arch['name']}_{entry['operator']}_{suffix}.tex"
                accuracy_table(args.summary, out, arch["name"], entry["operator"], after, methods, levels)


def cmd_reproduce(args) -> None:
    from .report.reproduction import write_report

    out = write_report(args.summary, _read_config(args.config), args.out, args.published)
    print(f"{out}: written")


def add_reproduce(sub) -> None:
    """`reproduce`: published numbers and claims beside ours (REPRODUCTION.md)."""
    s = sub.add_parser("reproduce", help=add_reproduce.__doc__)
    s.set_defaults(func=cmd_reproduce)
    s.add_argument("--summary", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--published", default=None, help="directory of <paper>.yaml (default configs/published)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compressible", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    commands = {"check-config": cmd_check, "prepare": cmd_prepare, "train": cmd_train,
                "oneshot": cmd_oneshot, "aggregate": cmd_aggregate, "figures": cmd_figures,
                "tables": cmd_tables}
    subs = {name: sub.add_parser(name) for name in commands}
    for name, s in subs.items():
        s.set_defaults(func=commands[name])
        if name != "aggregate":
            s.add_argument("--config", required=True)
    subs["prepare"].add_argument("--out", required=True)
    for name in ("train", "oneshot"):
        subs[name].add_argument("--seed", type=int, required=True)
        subs[name].add_argument("--data", required=True)
    subs["train"].add_argument("--arch", required=True)
    subs["train"].add_argument("--method", required=True)
    subs["train"].add_argument("--out", required=True)
    subs["oneshot"].add_argument("--checkpoint", required=True)
    subs["oneshot"].add_argument("--operator", required=True)
    subs["oneshot"].add_argument("--out", required=True)
    subs["aggregate"].add_argument("--out", required=True)
    subs["aggregate"].add_argument("results", nargs="+")
    for name in ("figures", "tables"):
        subs[name].add_argument("--summary", required=True)
        subs[name].add_argument("--outdir", required=True)
    add_reproduce(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except PublishedError as err:  # bad published data or `reproduces` entry
        print(f"published data error: {err}", file=sys.stderr)
        return 2
    return 0
