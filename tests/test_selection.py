"""Best-configuration selection (compression-aware SFW Figs. 2 and 4) on synthetic summaries
whose answers are known by construction."""
from __future__ import annotations

import copy
import csv
import random
from pathlib import Path

import pytest
import yaml

from compressible.cli import main
from compressible.config import Method, validate_config
from compressible.report.aggregate import COLUMNS
from compressible.report.selection import select, write_selection
from compressible.runs import Experiment

TINY = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").read_text())
LEVELS = ["0.3", "0.5", "0.7"]
# accuracy per level of each entry of the "G" sweep; each seed is this -1 / +1, so the seed
# mean is exact. Per level the winners are a, b, c; over all levels b and c tie at 185/3.
SWEEP = {"G-a": [90.0, 60.0, 20.0], "G-b": [85.0, 70.0, 30.0], "G-c": [80.0, 65.0, 40.0]}
BASELINE = {"SGD": [88.0, 50.0, 10.0]}
DENSE = {"G-a": 93.0, "G-b": 92.0, "G-c": 91.0, "SGD": 94.0}


def method(label, family=None):
    return Method(label=label, name="sgd", params={}, epochs=None, family=family)


def methods(order=("G-a", "G-b", "G-c")):
    return [method("SGD")] + [method(label, "G") for label in order]


def summary_rows(bnt_trials=0):
    rows = []
    for label, accs in {**BASELINE, **SWEEP}.items():
        for seed, delta in ((0, -1.0), (1, 1.0)):
            for level, acc in zip(LEVELS, accs):
                base = dict.fromkeys(COLUMNS, 0.0)
                base.update(experiment="x", dataset="d", arch="resnet20", method=label, seed=seed,
                            compressor="filters", level=level, prunable="weights", bnt_trial="",
                            bnt_seed="", accuracy=acc + delta, dense_accuracy=DENSE[label] + delta)
                rows.append(base)
                for trial in range(bnt_trials):  # after BNT the order of b and a flips at 0.3
                    bumped = acc + delta + (10.0 if label == "G-b" else 0.0) + trial
                    rows.append(dict(base, bnt_trial=trial, bnt_seed=trial, accuracy=bumped))
    return rows


def write_summary(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def picked(rows, criterion, family="G", bnt="before"):
    return [(r["level"], r["method"]) for r in rows
            if r["criterion"] == criterion and r["family"] == family and r["bnt"] == bnt]


def test_per_level_picks_the_best_entry_at_each_level_with_its_dense_accuracy(tmp_path):
    rows = select(write_summary(tmp_path / "s.csv", summary_rows()), methods())
    assert picked(rows, "per_level") == [("0.3", "G-a"), ("0.5", "G-b"), ("0.7", "G-c")]
    mine = [r for r in rows if r["criterion"] == "per_level" and r["family"] == "G"]
    assert [r["accuracy"] for r in mine] == [90.0, 70.0, 40.0]
    assert [r["dense_accuracy"] for r in mine] == [93.0, 92.0, 91.0]
    assert [r["accuracy_std"] for r in mine] == pytest.approx([2 ** 0.5] * 3)  # seeds -1 / +1
    assert {(r["seeds"], r["candidates"]) for r in mine} == {(2, 3)}
    assert picked(rows, "per_level", family="SGD") == [(lv, "SGD") for lv in LEVELS]


def test_mean_over_levels_picks_one_entry_and_breaks_ties_by_config_order(tmp_path):
    summary = write_summary(tmp_path / "s.csv", summary_rows())
    rows = select(summary, methods())
    assert picked(rows, "mean_over_levels") == [(lv, "G-b") for lv in LEVELS]
    scores = [r["score"] for r in rows if r["criterion"] == "mean_over_levels" and r["family"] == "G"]
    assert scores == pytest.approx([185 / 3] * 3)
    reordered = select(summary, methods(order=("G-a", "G-c", "G-b")))
    assert picked(reordered, "mean_over_levels") == [(lv, "G-c") for lv in LEVELS]


def test_after_bnt_selects_on_each_seeds_mean_over_trials(tmp_path):
    rows = select(write_summary(tmp_path / "s.csv", summary_rows(bnt_trials=2)), methods())
    assert picked(rows, "per_level") == [("0.3", "G-a"), ("0.5", "G-b"), ("0.7", "G-c")]
    assert picked(rows, "per_level", bnt="after") == [("0.3", "G-b"), ("0.5", "G-b"), ("0.7", "G-b")]
    after = [r for r in rows if r["bnt"] == "after" and r["family"] == "G" and r["criterion"] == "per_level"]
    # + 10 for b, mean of trials 0 and 1: + 0.5; at 0.7 b ties with c (40.5), b is listed first
    assert [r["accuracy"] for r in after] == [95.5, 80.5, 40.5]


def test_selection_bytes_do_not_depend_on_the_summary_row_order(tmp_path):
    rows = summary_rows(bnt_trials=1)
    first = write_selection(select(write_summary(tmp_path / "a.csv", rows), methods()), tmp_path / "a_sel.csv")
    random.Random(0).shuffle(rows)
    second = write_selection(select(write_summary(tmp_path / "b.csv", rows), methods()), tmp_path / "b_sel.csv")
    assert first.read_bytes() == second.read_bytes()


def test_an_entry_missing_a_level_of_its_family_is_an_error(tmp_path):
    rows = [r for r in summary_rows() if not (r["method"] == "G-c" and r["level"] == "0.5")]
    with pytest.raises(ValueError, match=r"'G-c' has no result at level\(s\) 0.5; its family 'G'"):
        select(write_summary(tmp_path / "s.csv", rows), methods())


def sweep_config():
    raw = copy.deepcopy(TINY)
    raw["experiment"] = "sweep"
    raw["methods"] = [{"label": "SGD", "name": "sgd", "params": {"lr": 0.05}}] + [
        {"label": label, "name": "sgd", "family": "G", "params": {"lr": lr}}
        for label, lr in zip(SWEEP, (0.01, 0.05, 0.1))]
    raw["oneshot"] = [{"operator": "filters", "levels": [0.3, 0.5, 0.7]}]
    return raw


def test_cli_writes_the_csv_and_figures_with_the_same_bytes_on_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep_config()))
    summary = write_summary(tmp_path / "s.csv", summary_rows())
    experiment = Experiment(validate_config(sweep_config()))
    outputs = experiment.selection_outputs()
    assert outputs[0] == "results/sweep/best_configurations.csv" and len(outputs) == 3
    assert main(["select", "--summary", str(summary), "--config", "sweep.yaml"]) == 0
    first = {p: Path(p).read_bytes() for p in outputs}
    assert main(["select", "--summary", str(summary), "--config", "sweep.yaml"]) == 0
    assert {p: Path(p).read_bytes() for p in outputs} == first
    table = list(csv.DictReader(open(outputs[0])))
    assert [(r["level"], r["method"]) for r in table if r["family"] == "G" and r["criterion"] == "per_level"] \
        == [("0.3", "G-a"), ("0.5", "G-b"), ("0.7", "G-c")]


def test_configs_without_families_have_no_selection_outputs():
    assert Experiment(validate_config(copy.deepcopy(TINY))).selection_outputs() == []


@pytest.mark.slow
def test_select_best_rule_end_to_end_picks_the_argmax_of_the_summary(tmp_path, tmp_path_factory):
    """The real DAG on a two-entry sweep (embedded MNIST, seconds): the rule's CSV names, per
    level, the entry whose summary accuracy is highest (recomputed here from summary.csv)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from clones import copy_project, isolated_env, run, with_prepared_data

    env = isolated_env(tmp_path / "home")
    repo = with_prepared_data(copy_project(tmp_path / "repo", env), tmp_path_factory)
    raw = copy.deepcopy(TINY)
    raw.update(experiment="sweep_e2e", seeds=[0], bnt={"trials": 0},
               oneshot=[{"operator": "filters_weights_only", "levels": [0.3, 0.6]}])
    raw["dataset"]["train_subset"] = 256
    raw["methods"] = [{"label": f"SGD-lr{lr}", "family": "SGD", "name": "sgd", "params": {"lr": lr}}
                      for lr in (0.05, 0.01)]
    (repo / "sweep.yaml").write_text(yaml.safe_dump(raw))
    run(["snakemake", "select_best", "--cores", "2", "--configfile", "sweep.yaml"], repo, env)
    summary = list(csv.DictReader(open(repo / "results/sweep_e2e/summary.csv")))
    expected = {}
    for level in ("0.3", "0.6"):
        accs = {r["method"]: float(r["accuracy"]) for r in summary if r["level"] == level}
        expected[level] = max(["SGD-lr0.05", "SGD-lr0.01"], key=lambda m: (accs[m], m == "SGD-lr0.05"))
    selection = repo / "results/sweep_e2e/best_configurations.csv"
    table = list(csv.DictReader(open(selection)))
    assert {r["level"]: r["method"] for r in table if r["criterion"] == "per_level"} == expected
    first = selection.read_bytes()
    run(["snakemake", "select_best", "--cores", "1", "--configfile", "sweep.yaml", "--forcerun", "select_best"],
        repo, env)
    assert selection.read_bytes() == first
