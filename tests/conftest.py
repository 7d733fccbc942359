"""Shared fixtures: small synthetic image splits in the real in-memory format. And how a plain
`pytest` spreads the suite over parallel workers (pytest-xdist), slow tests first."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from clones import TinyRuns, isolated_env, run_root, tiny_runs
from compressible.data import ImageSplits

# Tiny tensors on a 2-core machine: one thread avoids contention between OpenMP workers.
torch.set_num_threads(1)


def synthetic_splits(n_train: int = 256, n_test: int = 64, classes: int = 4, size: int = 12,
                     seed: int = 0) -> ImageSplits:
    """Separable classes: each class brightens its own quadrant pattern, plus noise."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int):
        labels = torch.arange(n) % classes
        base = torch.randint(0, 60, (n, 1, size, size), generator=g)
        half = size // 2
        for c in range(classes):
            r, q = divmod(c, 2)
            base[labels == c, :, r * half:(r + 1) * half, q * half:(q + 1) * half] += 150
        return base.clamp(0, 255).to(torch.uint8), labels

    train, test = make(n_train), make(n_test)
    return ImageSplits(*train, *test, classes, (0.3,), (0.3,), crop_padding=1, flip=False)


@pytest.fixture
def splits() -> ImageSplits:
    return synthetic_splits()


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory) -> Path:
    """One user cache (XDG_CACHE_HOME) for the whole run, never the real ~/.cache: every project
    the tests copy reads the config checks remembered there (compressible.config_memo), as clones
    of one user do; the tests of the memo itself point it elsewhere."""
    root = run_root(tmp_path_factory) / "user-cache"
    root.mkdir(exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(root)
    return root


# --- the tiny DAG, once per pytest run --------------------------------------------------------
# configs/tiny.yaml trained and published (`origin`), pulled into a fresh clone whose one
# `snakemake` ran the whole DAG (`pulled`): read by tests/test_workflow.py and
# tests/test_html_report.py, and by tests/test_slurm.py as the local reference, whichever worker
# builds it first (tests/clones.py: once_per_run).
@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict:
    return isolated_env(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyRuns:
    return tiny_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def origin(tiny) -> Path:
    """Where `tiny` was trained (Snakemake holds metadata of its train jobs) and published; its
    jobs ran through the venv's `snakemake` alone, with no project Python on PATH."""
    return tiny.origin


@pytest.fixture(scope="session")
def pulled(tiny) -> tuple[Path, str]:
    """A fresh clone after the one-liner of docs/running.md: pull, then the whole DAG in one run,
    through the venv's `snakemake` alone with no project Python on PATH (every rule runs the
    interpreter that runs Snakemake, not the first `python` on PATH); and that run's output."""
    return tiny.pulled, tiny.log


# --- parallel workers --------------------------------------------------------------------------
# `pytest` with no paths runs the whole suite on pytest-xdist workers, one per CPU (at most 4)
# plus one: the SLURM tests' worker mostly waits for the cluster's status polls, so the others
# keep every CPU busy meanwhile. Tests that share an expensive module fixture or a cluster carry
# `pytest.mark.xdist_group` and run on one worker: --dist loadgroup, also under a plain `-n N`.
# `pytest tests/test_x.py` stays in one process; `-n 0` or `-p no:xdist` turns the workers off.
def default_workers() -> int:
    return min(len(os.sched_getaffinity(0)), 4) + 1


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns -n into workers
def pytest_cmdline_main(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if (whole_suite and config.option.numprocesses is None and not config.option.collectonly
            and not config.option.usepdb):
        config.option.numprocesses = default_workers()
    if config.option.numprocesses and config.option.dist == "no":
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """Workers parse the command line again, which may not hold the --dist chosen above."""
    node.workerinput["dist"] = node.config.option.dist


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") and "dist" in config.workerinput:
        config.option.loadgroup = config.workerinput["dist"] == "loadgroup"  # xdist adds @group to node ids


@pytest.hookimpl(trylast=True)  # after pytest's ordering by fixture scope and xdist's own hook
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: each test of an xdist_group named by its group, and slow tests first (the
    scheduler hands tests out in this order; a tens-of-seconds test started last would leave the
    other workers idle at the end)."""
    if not hasattr(config, "workerinput"):
        return
    if config.getvalue("loadgroup"):
        for item in items:
            name_by_group(item)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def name_by_group(item: pytest.Item) -> None:
    """`<node id>@<group>`, the name by which --dist loadgroup keeps a group on one worker.
    pytest-xdist 3.8 writes it to `item._nodeid`, which pytest 9.2 no longer reads: its node
    ids live in `item._id`."""
    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                     for m in item.iter_markers("xdist_group")})
    if groups and "@" not in item.nodeid and hasattr(item, "_id"):
        item._id = type(item._id).parse(f"{item.nodeid}@{'_'.join(groups)}")
