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
from typing import Callable

from .artefacts import ArtefactError, read_json
from .config import ConfigError, check_config_files, read_yaml, validate_config
from .runs import Experiment, Run
from .training.stops import RunStopped
from .report.published import PUBLISHED_DIR, PublishedError


def raw_config(path: str) -> dict:
    """The mapping in a config file: the resolved JSON the rules pass, or a YAML file."""
    return read_json(path, "config") if path.endswith(".json") else read_yaml(path)


def read_config(path: str, check_files: bool = True, remembered: bool = True):
    """The config at ``path`` (the rules pass the resolved JSON that common.smk writes; YAML
    works the same), checked. In a Snakemake working directory the check the Snakefile
    remembered is read (config_memo.py: no toy model built, no torch for the report's jobs);
    the checks that read the disk (``check_files``) always run."""
    raw = raw_config(path)
    if not (remembered and Path(".snakemake").is_dir()):
        return validate_config(raw, check_files)
    from .config_memo import checked_config

    cfg = checked_config(raw)
    if check_files:
        check_config_files(cfg.resolved)
    return cfg


def enter_numerics(args) -> None:
    """Put this process under the config's ``training.numerics`` before torch is imported: a
    portable run starts again with its environment (numerics.py), so whatever is imported or
    checked before that is done twice. The schema check alone (torch-free) finds the mode."""
    from . import numerics
    from .config import resolve

    numerics.enter(resolve(raw_config(args.config))["training"]["numerics"], args.relaunch)


def _run(args) -> Run:
    return Run(args.arch, args.method, args.seed)


# --- registration: every command is one function, its docstring the help ----------------------
_COMMANDS: list[tuple[str, Callable, tuple]] = []


def arg(*flags, **options) -> tuple:
    """One argparse argument: ``arg("--out", required=True)``."""
    return flags, options


def command(name: str, *arguments: tuple) -> Callable:
    """Register the decorated function as ``python -m compressible <name>`` with ``arguments``."""
    def register(func: Callable) -> Callable:
        _COMMANDS.append((name, func, arguments))
        return func

    return register


CONFIG, OUT, SUMMARY = arg("--config", required=True), arg("--out", required=True), arg("--summary", required=True)
RUN = (arg("--arch", required=True), arg("--method", required=True, help="the method's label"),
       arg("--seed", type=int, required=True), arg("--data", required=True))
PUBLISHED_ARG = arg("--published", default=None,
                    help=f"directory of <paper>.yaml for the config's reproduces (default {PUBLISHED_DIR})")


@command("check-config", CONFIG)
def cmd_check(args) -> None:
    """Validate a config (schema, names, parameters) without touching data."""
    from .data import missing_files

    # the config alone: a streamed dataset's folders may live elsewhere than where it is checked
    cfg = read_config(args.config, check_files=False, remembered=False)
    print(f"{args.config}: valid ({len(cfg.archs)} arch, {len(cfg.methods)} methods, {len(cfg.seeds)} seeds)")
    if missing_files(cfg.dataset):
        print(f"note: {missing_files(cfg.dataset)}; preparing the data stops there")


@command("prepare", CONFIG, OUT)
def cmd_prepare(args) -> None:
    """Prepare the config's dataset into one verified file."""
    from .data import build_splits, save_prepared
    from .provenance import provenance

    cfg, start = read_config(args.config), time.perf_counter()
    splits = build_splits(cfg.dataset)
    save_prepared(splits, args.out, provenance(cfg.dataset, None, time.perf_counter() - start, "cpu"))


@command("train", CONFIG, OUT, *RUN,
         arg("--resume", help="resume state: saved after every epoch and on SIGTERM/SIGUSR1 (exit code 75), "
                              "continued by a rerun, removed with the checkpoint"))
def cmd_train(args) -> None:
    """Train one run (arch, method label, seed) into a checkpoint and its provenance JSON."""
    enter_numerics(args)
    from .training.loop import train_run

    spec = Experiment(read_config(args.config)).spec(_run(args))
    info = train_run(spec, args.data, args.out, args.resume)
    if info:  # processes other than 0 of a torchrun launch write nothing
        metric = next(k for k in info if k.startswith("final_test_"))
        print(f"{args.out}: test {metric[len('final_test_'):]} {info[metric]:.2f}% in {info['wall_time_s']:.1f}s")


@command("oneshot", CONFIG, OUT, *RUN, arg("--checkpoint", required=True), arg("--operator", required=True))
def cmd_oneshot(args) -> None:
    """Compress one checkpoint at every level of one operator, evaluate with and without BNT."""
    enter_numerics(args)
    from .evaluate import oneshot_run

    cfg = read_config(args.config)
    oneshot_run(cfg, _run(args), args.checkpoint, args.data, args.operator, args.out)


@command("finetune", CONFIG, OUT, *RUN, arg("--checkpoint", required=True), arg("--operator", required=True))
def cmd_finetune(args) -> None:
    """Prune one checkpoint at every level of one operator, finetune each with its mask fixed,
    evaluate (CrAM Table 5's "+ fine-tune")."""
    enter_numerics(args)
    from .training.finetune import finetune_run

    cfg = read_config(args.config)
    if not cfg.entry(args.operator).finetune:
        sys.exit(f"error: oneshot entry {args.operator!r} has no 'finetune' in {args.config}")
    finetune_run(cfg, _run(args), args.checkpoint, args.data, args.operator, args.out)


@command("aggregate", OUT, arg("results", nargs="+"))
def cmd_aggregate(args) -> None:
    """One-shot result JSONs -> the tidy summary.csv."""
    from .report.aggregate import aggregate

    print(f"{args.out}: {aggregate(args.results, args.out)} rows")


@command("figures", CONFIG, SUMMARY, PUBLISHED_ARG)
def cmd_figures(args) -> None:
    """Accuracy vs sparsity figures (PDF + PNG), published numbers beside ours."""
    from .report.figures import accuracy_vs_sparsity

    cfg = read_config(args.config, check_files=False)
    experiment, methods = Experiment(cfg), [m.label for m in cfg.methods]
    for arch in cfg.archs:
        for entry in experiment.plotted_entries():
            stem = Path(experiment.figure(arch.name, entry.operator, "pdf")).with_suffix("")
            accuracy_vs_sparsity(args.summary, stem, arch.name, entry.operator, methods,
                                 cfg.resolved, args.published)


@command("tables", CONFIG, SUMMARY, PUBLISHED_ARG)
def cmd_tables(args) -> None:
    """booktabs LaTeX tables, methods x levels, before and after BNT."""
    from .report.tables import accuracy_table

    cfg = read_config(args.config, check_files=False)
    experiment, methods = Experiment(cfg), [m.label for m in cfg.methods]
    levels = [str(lv) for lv in cfg.report.table_levels] or None
    for arch in cfg.archs:
        for entry in cfg.oneshot:
            for kind in experiment.table_kinds():
                out = experiment.table(arch.name, entry.operator, kind)
                accuracy_table(args.summary, out, arch.name, entry.operator, kind == "bnt", methods, levels,
                               cfg.resolved, args.published)


@command("pull", arg("experiments", nargs="*", help="default: every published experiment"))
def cmd_pull(args) -> None:
    """`dvc pull` the published checkpoints of experiments (those in dvc.lock)."""
    from .dvc_pull import NotPublished, pull

    try:
        code = pull(args.experiments)
    except NotPublished as err:
        sys.exit(f"error: {err}")
    if code:
        sys.exit(code)


@command("reproduce", SUMMARY, CONFIG, OUT, PUBLISHED_ARG,
         arg("--html", default=None, help="also its HTML rendering (what `snakemake --report` shows)"))
def cmd_reproduce(args) -> None:
    """Published numbers and claims beside ours (REPRODUCTION.md)."""
    from .report.html import write_markdown_page
    from .report.reproduction import write_report

    out = write_report(args.summary, read_config(args.config, check_files=False).resolved, args.out, args.published)
    print(f"{out}: written")
    if args.html:
        print(f"{write_markdown_page(out, args.html)}: written")


@command("plan", arg("--config", "--configfile", dest="config", required=True),
         arg("--device", help="a device of the step-time table (default: its first GPU, else cpu)"),
         arg("--parallel", type=int, help="jobs at once (default: training.jobs_per_gpu, one GPU)"),
         arg("--jobs", action="store_true", help="also list every job"))
def cmd_plan(args) -> None:
    """The job matrix and its predicted device-hours and wall time (planner.py)."""
    from .planner import devices, measured_step_times, plan, render

    cfg, table = read_config(args.config, check_files=False), measured_step_times()  # plan before the data is there
    device = args.device or (devices(table) or ["cpu"])[0]
    parallel = args.parallel or cfg.training.jobs_per_gpu
    jobs = plan(cfg, device, table)
    print(render(cfg, device, jobs, parallel, table))
    for job in jobs if args.jobs else []:
        hours = "not measured" if job.hours is None else f"{job.hours:.3f} h"
        print(f"  {job.rule:<8} {job.name:<40} epochs {job.epochs:>4} steps {job.steps:>9,} {hours}")


@command("select", SUMMARY, CONFIG,
         arg("--out", default=None, help="CSV path (default results/<experiment>/best_configurations.csv)"))
def cmd_select(args) -> None:
    """The best configuration of each family per level and over all levels (compression-aware
    SFW Figs. 4 and 2), as CSV and figures."""
    from .report.selection import select, selection_figure, write_selection

    cfg = read_config(args.config, check_files=False)
    experiment, rows = Experiment(cfg), select(args.summary, cfg.methods)
    out = write_selection(rows, args.out or experiment.selection)
    for arch in cfg.archs:
        for entry in experiment.plotted_entries():
            stem = Path(experiment.selection_figure(arch.name, entry.operator, "pdf")).with_suffix("")
            selection_figure(rows, stem, arch.name, entry.operator)
    print(f"{out}: {len(rows)} rows")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compressible", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, func, arguments in _COMMANDS:
        s = sub.add_parser(name, help=" ".join(func.__doc__.split()))
        s.set_defaults(func=func)
        for flags, options in arguments:
            s.add_argument(*flags, **options)
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
    except RunStopped as err:  # interrupted (resumable) or diverged; see training/stops.py
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return err.exit_code
    except PublishedError as err:  # bad published data or `reproduces` entry
        print(f"published data error: {err}", file=sys.stderr)
        return 2
    return 0
