"""``python -m compressible <command>``: the thin entry points the Snakemake rules call.

Every command reads the experiment config (the resolved JSON that the workflow writes, or a
YAML file) and asks :class:`~compressible.runs.Experiment` for the paths it writes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .artefacts import ArtefactError, read_json
from .config import ConfigError, load_config, validate_config
from .runs import Experiment, Run
from .stops import RunStopped
from .report.published import PublishedError


def read_config(path: str, check_files: bool = True):
    # The rules pass the resolved config (JSON written by common.smk); YAML works the same.
    if path.endswith(".json"):
        return validate_config(read_json(path, "config"), check_files)
    return load_config(path, check_files)


def _run(args) -> Run:
    return Run(args.arch, args.method, args.seed)


def cmd_check(args) -> None:
    from .data import missing_files

    # the config alone: a streamed dataset's folders may live elsewhere than where it is checked
    cfg = read_config(args.config, check_files=False)
    print(f"{args.config}: valid ({len(cfg.archs)} arch, {len(cfg.methods)} methods, {len(cfg.seeds)} seeds)")
    if missing_files(cfg.dataset):
        print(f"note: {missing_files(cfg.dataset)}; preparing the data stops there")


def cmd_prepare(args) -> None:
    from .data import build_splits, save_prepared
    from .provenance import provenance

    cfg, start = read_config(args.config), time.perf_counter()
    splits = build_splits(cfg.dataset)
    save_prepared(splits, args.out, provenance(cfg.dataset, None, time.perf_counter() - start, "cpu"))


def cmd_train(args) -> None:
    from . import numerics
    from .train import train_run

    spec = Experiment(read_config(args.config)).spec(_run(args))
    numerics.enter(spec.training.numerics, args.relaunch)
    info = train_run(spec, args.data, args.out, args.resume)
    if info:  # processes other than 0 of a torchrun launch write nothing
        print(f"{args.out}: test accuracy {info['final_test_accuracy']:.2f}% in {info['wall_time_s']:.1f}s")


def cmd_oneshot(args) -> None:
    from . import numerics
    from .evaluate import oneshot_run

    cfg = read_config(args.config)
    numerics.enter(cfg.training.numerics, args.relaunch)
    oneshot_run(cfg, _run(args), args.checkpoint, args.data, args.operator, args.out)


def cmd_aggregate(args) -> None:
    from .report.aggregate import aggregate

    print(f"{args.out}: {aggregate(args.results, args.out)} rows")


def cmd_figures(args) -> None:
    from .report.figures import accuracy_vs_sparsity

    cfg = read_config(args.config)
    experiment, methods = Experiment(cfg), [m.label for m in cfg.methods]
    for arch in cfg.archs:
        for entry in experiment.plotted_entries():
            stem = Path(experiment.figure(arch.name, entry.operator, "pdf")).with_suffix("")
            accuracy_vs_sparsity(args.summary, stem, arch.name, entry.operator, methods,
                                 cfg.resolved, args.published)


def cmd_tables(args) -> None:
    from .report.tables import accuracy_table

    cfg = read_config(args.config)
    experiment, methods = Experiment(cfg), [m.label for m in cfg.methods]
    levels = [str(lv) for lv in cfg.report.table_levels] or None
    for arch in cfg.archs:
        for entry in cfg.oneshot:
            for kind in experiment.table_kinds():
                out = experiment.table(arch.name, entry.operator, kind)
                accuracy_table(args.summary, out, arch.name, entry.operator, kind == "bnt", methods, levels,
                               cfg.resolved, args.published)


def cmd_pull(args) -> None:
    from .published import NotPublished, pull

    try:
        code = pull(args.experiments)
    except NotPublished as err:
        sys.exit(f"error: {err}")
    if code:
        sys.exit(code)


COMMANDS = {"check-config": cmd_check, "prepare": cmd_prepare, "train": cmd_train,
            "oneshot": cmd_oneshot, "aggregate": cmd_aggregate, "figures": cmd_figures,
            "tables": cmd_tables, "pull": cmd_pull}


def cmd_reproduce(args) -> None:
    from .report.reproduction import write_report

    out = write_report(args.summary, read_config(args.config).resolved, args.out, args.published)
    print(f"{out}: written")


def add_reproduce(sub) -> None:
    """`reproduce`: published numbers and claims beside ours (REPRODUCTION.md)."""
    s = sub.add_parser("reproduce", help=add_reproduce.__doc__)
    s.set_defaults(func=cmd_reproduce)
    s.add_argument("--summary", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--published", default=None, help="directory of <paper>.yaml (default configs/published)")


def cmd_plan(args) -> None:
    from .planner import devices, measured_step_times, plan, render

    cfg, table = read_config(args.config, check_files=False), measured_step_times()  # plan before the data is there
    device = args.device or (devices(table) or ["cpu"])[0]
    parallel = args.parallel or cfg.training.jobs_per_gpu
    jobs = plan(cfg, device, table)
    print(render(cfg, device, jobs, parallel, table))
    for job in jobs if args.jobs else []:
        hours = "not measured" if job.hours is None else f"{job.hours:.3f} h"
        print(f"  {job.rule:<8} {job.name:<40} epochs {job.epochs:>4} steps {job.steps:>9,} {hours}")


def add_plan(sub) -> None:
    """`plan`: the job matrix and its predicted device-hours and wall time (planner.py)."""
    s = sub.add_parser("plan", help=add_plan.__doc__)
    s.set_defaults(func=cmd_plan)
    s.add_argument("--config", "--configfile", dest="config", required=True)
    s.add_argument("--device", help="a device of the step-time table (default: its first GPU, else cpu)")
    s.add_argument("--parallel", type=int, help="jobs at once (default: training.jobs_per_gpu, one GPU)")
    s.add_argument("--jobs", action="store_true", help="also list every job")


def cmd_select(args) -> None:
    from .report.selection import select, selection_figure, write_selection

    cfg = read_config(args.config)
    experiment, rows = Experiment(cfg), select(args.summary, cfg.methods)
    out = write_selection(rows, args.out or experiment.selection)
    for arch in cfg.archs:
        for entry in experiment.plotted_entries():
            stem = Path(experiment.selection_figure(arch.name, entry.operator, "pdf")).with_suffix("")
            selection_figure(rows, stem, arch.name, entry.operator)
    print(f"{out}: {len(rows)} rows")


def add_select(sub) -> None:
    """`select`: the best configuration of each family per level and over all levels
    (compression-aware SFW Figs. 4 and 2), as CSV and figures."""
    s = sub.add_parser("select", help=add_select.__doc__)
    s.set_defaults(func=cmd_select)
    s.add_argument("--summary", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--out", default=None, help="CSV path (default results/<experiment>/best_configurations.csv)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compressible", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    subs = {name: sub.add_parser(name) for name in COMMANDS}
    for name, s in subs.items():
        s.set_defaults(func=COMMANDS[name])
        if name not in ("aggregate", "pull"):
            s.add_argument("--config", required=True)
    for name in ("prepare", "train", "oneshot", "aggregate"):
        subs[name].add_argument("--out", required=True)
    for name in ("train", "oneshot"):
        subs[name].add_argument("--arch", required=True)
        subs[name].add_argument("--method", required=True, help="the method's label")
        subs[name].add_argument("--seed", type=int, required=True)
        subs[name].add_argument("--data", required=True)
    subs["train"].add_argument("--resume", help="resume state: saved after every epoch and on SIGTERM/"
                               "SIGUSR1 (exit code 75), continued by a rerun, removed with the checkpoint")
    subs["oneshot"].add_argument("--checkpoint", required=True)
    subs["oneshot"].add_argument("--operator", required=True)
    subs["aggregate"].add_argument("results", nargs="+")
    subs["pull"].add_argument("experiments", nargs="*", help="default: every published experiment")
    for name in ("figures", "tables"):
        subs[name].add_argument("--summary", required=True)
        subs[name].add_argument("--published", default=None,
                                help="directory of <paper>.yaml for the config's reproduces (default configs/published)")
    add_reproduce(sub)
    add_plan(sub)
    add_select(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.relaunch = argv is None  # this process is `python -m compressible ...` (see numerics.py)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except ArtefactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 4
    except RunStopped as err:  # interrupted (resumable) or diverged; see stops.py
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return err.exit_code
    except PublishedError as err:  # bad published data or `reproduces` entry
        print(f"published data error: {err}", file=sys.stderr)
        return 2
    return 0
