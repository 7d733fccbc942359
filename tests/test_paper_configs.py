"""The paper configs (configs/<paper>/<table-or-figure>.yaml): each one passes `check-config` and a
Snakemake dry run with the local profile, names published tables that exist, and trains what
those tables need; together they reproduce every published table a method here can train.

The CLI and the dry runs go through their real entry points (``compressible.cli.main`` and
Snakemake's own command-line parser) in one subprocess on a copy of the project, so that the
interpreter and torch start once: run as a script, this file is that subprocess.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ("cram", "sfw_pruning", "ca_sfw")
# config folders beside the papers' own: CrAM's BERT/SQuAD tables (Sec. 4.2, App. D), which
# reproduce cram/<table> like configs/cram/
CONFIG_FOLDERS = {"cram_bert": "cram"}
PAPER_CONFIGS = sorted(p for p in ROOT.glob("configs/*/*.yaml") if p.parent.name != "published")
DRY_RUN = ["-n", "--cores", "1", "--profile", "workflow/profiles/default", "--configfile"]
# one worker runs the `planned` subprocess for all the tests
pytestmark = pytest.mark.xdist_group("paper_configs")
BAD_CONFIG = "configs/cram/bad-arch.yaml"  # written into the copy only: the harness must see failures

# Published tables no config reproduces, and why.
TABLE_EXCEPTIONS: dict = {
    "sfw_pruning/claims-at-default-scale": "SFW-pruning's claim at the embedded default's own scale: "
                                            "configs/default.yaml reproduces it (tests/test_reproduction.py)",
}
# Tables whose configs select the best of a hyperparameter sweep (written separately): an
# exception only while their config does not exist (figure2 has no published entry yet).
PENDING = {ref: f"configs/{ref}.yaml" for ref in ("ca_sfw/figure2", "ca_sfw/figure4")}
# Published cells no config can cover, by (paper, setup), and why.
SETUP_EXCEPTIONS = {
    ("cram", "imagenet_resnet50_sgd100"): "Sec. 4.1's 76.95 % baseline reads as the 100-epoch SGD run; "
                                          "configs/cram/text-4.1.yaml trains the baseline 200 epochs (App. B), a stand-in",
}
# Configs whose `reproduces` names no cell they train (or nothing), and why.
CONFIG_EXCEPTIONS = {
    "ca_sfw/figure1": "the figure (relative distance vs k) has no published numbers or claims",
    "sfw_pruning/figure_tiny_imagenet_resnet18": "the figures' published claims name CIFAR-10 ResNet-18 only",
    "sfw_pruning/figure_tiny_imagenet_vgg16": "the figures' published claims name CIFAR-10 ResNet-18 only",
    "ca_sfw/figure3_tiny_imagenet": "the published Figure 3 claim names CIFAR-100 ResNet-18 only",
}


def config_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


# ---------------------------------------------------------------- the subprocess

def _check_and_plan(configs: list[str]) -> dict:
    """check-config and a dry run of each config, in this process (cwd: a copy of the project)."""
    from snakemake.cli import args_to_api, parse_args

    from compressible.cli import main as compressible_main

    out = {}
    for config in configs:
        parser, args = parse_args(DRY_RUN + [config])  # snakemake's own command line
        out[config] = {"check": _captured(lambda: compressible_main(["check-config", "--config", config]) == 0),
                       "dry_run": _captured(lambda: args_to_api(args, parser))}
        text = out[config]["dry_run"]["output"].split("Job stats:")[-1]
        out[config]["jobs"] = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", text, re.M)}
    return out


def _captured(call) -> dict:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            ok = bool(call())
        except Exception as err:  # noqa: BLE001 - reported to the test, which names the config
            ok = False
            buffer.write(f"{type(err).__name__}: {err}\n")
    return {"ok": ok, "output": buffer.getvalue()}


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from clones import copy_files

    copy = copy_files(tmp_path_factory.mktemp("project"))
    bad = (ROOT / "configs/cram/table17.yaml").read_text().replace("name: resnet20_b", "name: resnet21")
    (copy / BAD_CONFIG).write_text(bad.replace("experiment: cram_table17", "experiment: cram_bad"))
    configs = [str(p.relative_to(ROOT)) for p in PAPER_CONFIGS] + [BAD_CONFIG]
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *configs], cwd=copy,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


# ---------------------------------------------------------------- check-config and dry runs

def test_there_are_paper_configs():
    folders = {p.parent.name for p in PAPER_CONFIGS}
    assert folders - set(CONFIG_FOLDERS) == set(PAPERS), "configs/<paper>/ for each paper"
    assert {CONFIG_FOLDERS[f] for f in folders & set(CONFIG_FOLDERS)} <= set(PAPERS)


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=config_id)
def test_check_config_accepts(path, planned):
    result = planned[str(path.relative_to(ROOT))]["check"]
    assert result["ok"] and f"{path.relative_to(ROOT)}: valid" in result["output"], result["output"][-2000:]


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=config_id)
def test_dry_run_plans_every_run(path, planned):
    result = planned[str(path.relative_to(ROOT))]
    assert result["dry_run"]["ok"], result["dry_run"]["output"][-3000:]
    cfg = _configs()[config_id(path)]
    runs = len(cfg.archs) * len(cfg.methods) * len(cfg.seeds)
    assert result["jobs"]["train"] == runs and result["jobs"]["oneshot"] == runs * len(cfg.oneshot)
    assert result["jobs"].get("reproduction", 0) == (1 if cfg.reproduces else 0)


def test_missing_imagenet_folders_stop_preparation_not_planning(planned, capsys):
    from compressible.cli import main
    from compressible.config import ConfigError, load_config
    from compressible.data import missing_files

    path = ROOT / "configs/cram/table11.yaml"
    cfg = load_config(path, check_files=False)
    if not missing_files(cfg.dataset):
        pytest.skip(f"{cfg.dataset['root']} holds ImageNet here: nothing is missing")
    with pytest.raises(ConfigError, match=r"dataset\.root.*does not exist"):
        load_config(path)
    assert "prepare_data will stop there" in planned["configs/cram/table11.yaml"]["dry_run"]["output"]
    assert main(["prepare", "--config", str(path), "--out", "unused.pt"]) == 2
    assert "dataset.root" in capsys.readouterr().err


def test_a_bad_config_fails_both(planned):
    result = planned[BAD_CONFIG]
    assert not result["check"]["ok"] and "archs.0.name" in result["check"]["output"]
    assert not result["dry_run"]["ok"] and "unknown architecture 'resnet21'" in result["dry_run"]["output"]


def test_experiment_names_are_unique_and_name_their_paper():
    from compressible.config import load_config

    names = {}
    for path in sorted(ROOT.glob("configs/*.yaml")):
        names.setdefault(load_config(path).experiment, []).append(path.stem)
    for key, cfg in _configs().items():
        names.setdefault(cfg.experiment, []).append(key)
        assert cfg.experiment.startswith(f"{key.split('/')[0]}_"), key
    assert all(len(v) == 1 for v in names.values()), {k: v for k, v in names.items() if len(v) > 1}


# ---------------------------------------------------------------- what the configs reproduce

@lru_cache(maxsize=1)
def _configs() -> dict:
    from compressible.config import load_config

    return {config_id(p): load_config(p, check_files=False) for p in PAPER_CONFIGS}


def _selected_cells(table, what: set) -> list:
    cells = [n.cell for n in table.numbers] if "cells" in what else []
    if "claims" in what:
        cells += [c for claim in table.claims for pair in claim.pairs for c in pair]
    return [c for c in cells if c.reproducible]


def covers(cfg, cell) -> bool:
    """The config trains and evaluates what the cell compares (as the reproduction report matches)."""
    from compressible.report.reproduction import _same_level, matching_labels

    arch = cell.setup.arch  # the paper's own architecture (not a reduced-scale stand-in)
    labels = matching_labels(cfg.resolved, cell)
    if cfg.dataset["name"] != cell.setup.dataset or arch not in {a.name for a in cfg.archs} or not labels:
        return False
    epochs = cell.setup.epochs if cell.epochs is None else cell.epochs  # 0: pretrained weights as given
    methods = {m.label: m for m in cfg.methods}
    own = {label: cfg.training.epochs if methods[label].epochs is None else methods[label].epochs for label in labels}
    if epochs is not None and epochs not in own.values():
        return False
    if cell.compressor == "dense":
        return True
    entry = next((e for e in cfg.oneshot if e.operator == cell.compressor), None)
    return (entry is not None and any(_same_level(str(level), cell.level) for level in entry.levels)
            and (cell.prunable is None or (entry.prunable or cfg.prunable) == cell.prunable)
            and (not cell.bnt or cfg.bnt.trials > 0))


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=config_id)
def test_reproduces_resolves_to_cells_the_config_trains(path):
    from compressible.report.published import resolve_references

    key = config_id(path)
    cfg = _configs()[key]
    selected = resolve_references(cfg.reproduces)  # raises on an unknown table
    covered = [c for _, table, what in selected for c in _selected_cells(table, what) if covers(cfg, c)]
    if key in CONFIG_EXCEPTIONS:
        assert not covered, f"{key} is listed as an exception ({CONFIG_EXCEPTIONS[key]}) but covers {covered[0].key}"
        return
    assert cfg.reproduces and covered, f"{key}: no published cell of {cfg.reproduces} is trained by it"


def _published_tables() -> dict:
    from compressible.report.published import PUBLISHED_DIR, load_all

    return {f"{p}/{t}": table for p, paper in load_all(ROOT / PUBLISHED_DIR).items()
            for t, table in paper.tables.items()}


def _reproduced_by() -> dict:
    from compressible.report.published import resolve_references

    out = {}
    for key, cfg in _configs().items():
        for paper, table, what in resolve_references(cfg.reproduces):
            out.setdefault(f"{paper.name}/{table.name}", []).append((cfg, what))
    return out


def _exception(ref: str):
    if ref in TABLE_EXCEPTIONS:
        return TABLE_EXCEPTIONS[ref]
    table = _published_tables()[ref]
    if table.pending:  # the data's own marker (e.g. language models): no config can train it yet
        return f"pending: {table.pending}"
    pending = PENDING.get(ref)
    if pending and not (ROOT / pending).exists():
        return f"{pending} (best configuration of a sweep) is written separately"
    return None


def test_every_reproducible_published_table_is_reproduced():
    by = _reproduced_by()
    missing = [ref for ref, table in _published_tables().items()
               if _selected_cells(table, {"cells", "claims"}) and ref not in by and not _exception(ref)]
    assert not missing, f"no config reproduces {missing}"
    stale = [ref for ref in TABLE_EXCEPTIONS if ref in by]
    assert not stale, f"listed as exceptions but reproduced: {stale}"


def test_every_reproducible_published_cell_is_trained_by_a_config_that_names_its_table():
    by, uncovered = _reproduced_by(), []
    for ref, table in _published_tables().items():
        if _exception(ref):
            continue
        for cell in _selected_cells(table, {"cells", "claims"}):
            if (cell.paper, cell.setup.name) in SETUP_EXCEPTIONS:
                continue
            if not any(what and covers(cfg, cell) for cfg, what in by.get(ref, [])):
                uncovered.append(cell.key)
    assert not uncovered, f"{len(uncovered)} published cells no config trains, e.g. {sorted(set(uncovered))[:8]}"


def test_every_paper_config_is_judged_on_its_own_cells_and_the_default_stands_in():
    """The report judges a run only in the paper's setup (dataset, architecture, width, epochs):
    each paper config's cells are judged, never stand-ins; the embedded default's always are."""
    from compressible.report.reproduction import matching_labels, stand_in

    judged, stood_in = [], []
    for ref, table in _published_tables().items():
        for cfg, what in _reproduced_by().get(ref, []):
            for cell in _selected_cells(table, what):
                if covers(cfg, cell):
                    labels = matching_labels(cfg.resolved, cell)
                    if not any(not stand_in(cfg.resolved, cell, lb, cell.setup.arch) for lb in labels):
                        stood_in.append((cfg.experiment, cell.key))
                    judged.append(cell.key)
    assert judged and not stood_in, stood_in[:5]
    from compressible.config import load_config

    default = load_config(ROOT / "configs/default.yaml").resolved
    cell = next(c for c in _selected_cells(_published_tables()["cram/table17"], {"cells"}) if c.row == "CrAM+-Multi")
    assert stand_in(default, cell, "CrAM+-Multi", "resnet20") == ["dataset", "arch", "width", "epochs"]


@pytest.mark.parametrize("mutate", [
    lambda c: c["methods"].pop(1),                                  # no SAM
    lambda c: c["bnt"].update(trials=0),                            # no BNT
    lambda c: c["oneshot"][0].update(levels=[0.5, 0.6, 0.7, 0.8]),  # no 90 %
    lambda c: c["methods"][0].update(epochs=200),                   # baseline not twice as long
    lambda c: c["methods"][2]["params"].update(sparse_grad=False),  # CrAM+-Multi without SG
], ids=["method", "bnt", "level", "epochs", "params"])
def test_coverage_refuses_what_a_config_does_not_train(mutate):
    import yaml

    from compressible.config import validate_config

    table = _published_tables()["cram/table17"]
    raw = yaml.safe_load((ROOT / "configs/cram/table17.yaml").read_text())
    assert all(covers(validate_config(raw), c) for c in _selected_cells(table, {"cells", "claims"}))
    mutate(raw)
    assert not all(covers(validate_config(raw), c) for c in _selected_cells(table, {"cells", "claims"}))


if __name__ == "__main__":  # the subprocess of the `planned` fixture
    print(json.dumps(_check_and_plan(sys.argv[1:])))
