"""The reproduction report from a synthetic summary.csv: verdicts from the interval of Δ and the
margin, not run, cited rows, claims that hold and that do not, byte-identical output, the CLI."""
from __future__ import annotations

import copy
import csv
import json
import random
from pathlib import Path

import pytest
import yaml

from compressible.config import load_config
from compressible.report.aggregate import COLUMNS
from compressible.report.published import PublishedError
from compressible.report.reproduction import build_report, write_report

ROOT = Path(__file__).resolve().parents[1]

# A toy paper: SGD and CrAM+-Multi (the default config's methods) on resnet20.
TOY = {
    "paper": "toy", "title": "A toy paper", "seed_prefix": "x_",
    # the default config's setup: runs of it are judged; tests below change one part to make them stand-ins
    "setups": {"s": {"dataset": "mnist_embedded", "arch": "resnet20", "width": 8, "epochs": 4}},
    "tables": {"t1": {
        "title": "toy table", "setup": "s", "n": 3,
        "rows": {"SGD": {"method": "sgd"},
                 "CrAM+-Multi": {"method": "cram_plus_multi", "params": {"sparse_grad": True}},
                 "Cited": {"reproducible": False, "note": "another paper"},
                 "CrAM+-k70": {"method": "cram_plus", "params": {"sparsity": 0.7}}},
        "columns": {"dense": {"compressor": "dense"},
                    "50%": {"compressor": "global_magnitude", "level": 0.5, "bnt": True},
                    "90%": {"compressor": "global_magnitude", "level": 0.9, "bnt": True},
                    "90% before": {"compressor": "global_magnitude", "level": 0.9, "bnt": False},
                    "70%": {"compressor": "global_magnitude", "level": 0.7, "bnt": True}},
        "numbers": [
            {"row": "SGD", "context": "SGD | 90.0 | 89.0 0.1 | 60.0 1.0 | 61.0 |",
             "cells": {"dense": {"token": "90.0", "value": 90.0},
                       "50%": {"token": "89.0 0.1", "value": 89.0, "std": 0.1},
                       "90%": {"token": "60.0 1.0", "value": 60.0, "std": 1.0},
                       "70%": {"token": "61.0", "value": 61.0}}},
            {"row": "CrAM+-Multi", "context": "CrAM+-Multi | 91.0 | 89.0 | 85.0 | 10.0 |",
             "cells": {"dense": {"token": "91.0", "value": 91.0}, "50%": {"token": "89.0", "value": 89.0},
                       "90%": {"token": "85.0", "value": 85.0}, "90% before": {"token": "10.0", "value": 10.0}}},
            {"row": "Cited", "context": "Cited | 70.0 |", "cells": {"90%": {"token": "70.0", "value": 70.0}}},
            {"row": "CrAM+-k70", "context": "CrAM+-k70 | 88.0 |", "cells": {"dense": {"token": "88.0", "value": 88.0}}},
        ],
        "claims": [
            {"id": "multi-above-sgd", "text": "Multi keeps more at 90 %", "sentence": "Multi keeps more at 90 %", "kind": "greater",
             "left": {"rows": ["CrAM+-Multi"], "columns": ["90%"]}, "right": {"rows": ["SGD", "Cited"], "columns": ["90%"]}},
            {"id": "dense-close", "text": "dense within 0.5 pp", "sentence": "dense within 0.5 pp", "kind": "within", "tolerance": 0.5,
             "left": {"rows": ["CrAM+-Multi"], "columns": ["dense"]}, "right": {"rows": ["SGD"], "columns": ["dense"]}},
            {"id": "bnt-helps", "text": "BNT helps by 10 pp", "sentence": "BNT helps by 10 pp", "kind": "greater", "margin": 10.0,
             "left": {"rows": ["CrAM+-Multi"], "columns": ["90%"]}, "right": {"rows": ["CrAM+-Multi"], "columns": ["90% before"]}},
            {"id": "at-70", "text": "Multi not below SGD at 70 %", "sentence": "Multi not below SGD at 70 %", "kind": "not_below", "tolerance": 1.0,
             "left": {"rows": ["CrAM+-Multi"], "columns": ["70%"]}, "right": {"rows": ["SGD"], "columns": ["70%"]}},
        ]}},
}

# (method, seed) -> dense accuracy and, per level, (before BNT, [BNT trials])
RESULTS = {
    ("SGD", 0): (90.25, {"0.5": (80.0, [89.5, 89.5]), "0.9": (20.0, [50.0, 60.0])}),
    ("SGD", 1): (89.75, {"0.5": (80.0, [89.5, 89.5]), "0.9": (20.0, [70.0, 80.0])}),
    ("CrAM+-Multi", 0): (93.0, {"0.5": (85.0, [89.51, 89.51]), "0.9": (40.0, [86.0, 86.0])}),
    ("CrAM+-Multi", 1): (93.0, {"0.5": (85.0, [89.51, 89.51]), "0.9": (40.0, [86.0, 86.0])}),
}


def summary_rows() -> list[dict]:
    rows = []
    for (method, seed), (dense, levels) in RESULTS.items():
        for level, (before, trials) in levels.items():
            base = {"experiment": "default", "dataset": "mnist_embedded", "arch": "resnet20", "method": method,
                    "seed": seed, "compressor": "global_magnitude", "level": level, "prunable": "weights",
                    "loss": 0.5, "dense_accuracy": dense, "sparsity_prunable": level, "sparsity_total": level,
                    "compression_ratio": 2, "flops_ratio": 0.5, "speedup": 2, "params_remaining": 10,
                    "relative_distance": 0.1}
            rows.append(dict(base, bnt_trial="", bnt_seed="", accuracy=before))
            rows += [dict(base, bnt_trial=t, bnt_seed=100 + t, accuracy=a) for t, a in enumerate(trials)]
    return rows


def write_summary(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def published(tmp_path) -> Path:
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "toy.yaml").write_text(yaml.safe_dump(TOY, sort_keys=False))
    return folder


@pytest.fixture
def cfg() -> dict:
    cfg = load_config(ROOT / "configs" / "default.yaml").resolved
    cfg["reproduces"] = ["toy/t1"]
    return cfg


@pytest.fixture
def report(tmp_path, published, cfg) -> str:
    return build_report(write_summary(tmp_path / "summary.csv", summary_rows()), cfg, published)


def line(report: str, *starts: str) -> str:
    prefix = "| " + " | ".join(starts) + " |"
    [found] = [ln for ln in report.splitlines() if ln.startswith(prefix)]
    return found


def test_verdicts_from_the_interval_of_the_difference(report):
    # ours: seed means 89.5, 89.5 (std 0); paper 89.0 ± 0.1 over n 3: se = 0.1/√3 = 0.0577, ν = 2,
    # Δ = 0.5 ± 4.303·0.0577 = [0.25, 0.75]; |Δ| equals the margin, so no n decides it
    assert line(report, "SGD", "50%").endswith(
        "| 89.0 ± 0.1 (n 3) | 89.50 ± 0.00 | 2 | +0.50 [+0.25, +0.75] | 0.5 | inconclusive | "
        "SGD s0, 1 × 2 BNT trials; resnet20 width 8, mnist_embedded, 4 epochs; \\|Δ\\| equals the margin: no number of seeds decides it |")
    # a noisy run: seed means 55 and 75 (std 14.14) against 60.0 ± 1.0. The old rule called it
    # reproduced (|Δ| = 5 ≤ 2·σ_ours = 28.3); its interval spans ±125 pp
    assert "| 65.00 ± 14.14 | 2 | +5.00 [-120.30, +130.30] | 0.5 | inconclusive |" in line(report, "SGD", "90%")
    assert "~44 seeds would suffice at the observed spread 14.14" in line(report, "SGD", "90%")
    # identical seeds and a std-less published number: a point interval 0.51 beyond the margin
    assert "| +0.51 [+0.51, +0.51] | 0.5 | deviates |" in line(report, "CrAM+-Multi", "50%")
    # dense: seeds 90.25 and 89.75 -> 90.00 ± 0.35, t(1)·0.25 = 3.18
    assert "| 90.00 ± 0.35 | 2 | +0.00 [-3.18, +3.18] | 0.5 | inconclusive | SGD s0, 1; resnet20 width 8, mnist_embedded, 4 epochs; ours: ~5 seeds" in line(report, "SGD", "dense")
    assert "| 10.0 | 40.00 ± 0.00 | 2 | +30.00 [+30.00, +30.00] | 0.5 | deviates |" in line(report, "CrAM+-Multi", "90% before")


def test_not_run_and_cited_rows(report):
    assert "| not run | no results of SGD for resnet20, global_magnitude 0.7, after BNT |" in line(report, "SGD", "70%")
    assert "| not run | no method `cram_plus` (sparsity=0.7) in this config |" in line(report, "CrAM+-k70", "dense")
    assert "| cited | another paper |" in line(report, "Cited", "90%")
    assert "## toy: 0 of 9 numbers reproduced (3 inconclusive, 2 not run); 1 of 4 claims hold (2 inconclusive, 1 not run)" in report


def test_a_tables_margin_is_printed_and_used(tmp_path, cfg):
    toy = copy.deepcopy(TOY)
    toy["tables"]["t1"]["margin"] = 2.5
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "toy.yaml").write_text(yaml.safe_dump(toy, sort_keys=False))
    text = build_report(write_summary(tmp_path / "s.csv", summary_rows()), cfg, tmp_path / "published")
    assert "| +0.51 [+0.51, +0.51] | 2.5 | reproduced |" in line(text, "CrAM+-Multi", "50%")


@pytest.mark.parametrize("part, value", [("dataset", "cifar10"), ("arch", "resnet20_b"), ("width", None), ("epochs", 200)])
def test_a_run_of_another_setup_is_a_stand_in_shown_never_counted(tmp_path, cfg, part, value):
    toy = copy.deepcopy(TOY)
    toy["setups"]["s"][part] = value
    if part == "arch":
        toy["setups"]["s"]["also_archs"] = ["resnet20"]
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "toy.yaml").write_text(yaml.safe_dump(toy, sort_keys=False))
    text = build_report(write_summary(tmp_path / "s.csv", summary_rows()), cfg, tmp_path / "published")
    row = line(text, "CrAM+-Multi", "50%")
    assert "| stand-in | CrAM+-Multi s0, 1 × 2 BNT trials; resnet20 width 8, mnist_embedded, 4 epochs; the paper's: " in row
    assert "## toy: 0 of 2 numbers reproduced (2 not run), 7 stand-in results shown, not counted;" in text


def test_claims_hold_fail_or_are_inconclusive(report):
    # one of SGD's seeds at 90 % BNT is 20 pp above the other: the ordering cannot be told apart
    assert line(report, "Multi keeps more at 90 %").endswith("| inconclusive | holds |")
    assert "CrAM+-Multi 90%: 86.00 ± 0.00 (n 2) > Cited 90%: 70.00 (n 1, published) ✓ (Δ +16.00 [+16.00, +16.00])" in report
    # ours 93.0 vs 90.0 ± 0.35: [−0.18, +6.18] reaches inside ±0.5; the toy paper's 91.0 vs 90.0 fails
    assert line(report, "dense within 0.5 pp").endswith("| inconclusive | does not hold |")
    assert line(report, "BNT helps by 10 pp").endswith("| holds | holds |")  # 86.0 - 40.0 > 10
    assert line(report, "Multi not below SGD at 70 %").endswith("| not run | n/a |")


def test_report_is_byte_identical_and_independent_of_row_order(tmp_path, published, cfg):
    rows = summary_rows()
    first = write_report(write_summary(tmp_path / "a.csv", rows), cfg, tmp_path / "a.md", published).read_bytes()
    again = write_report(tmp_path / "a.csv", cfg, tmp_path / "b.md", published).read_bytes()
    random.Random(0).shuffle(rows)
    shuffled = build_report(write_summary(tmp_path / "a.csv", rows), cfg, published).encode()
    assert first == again == shuffled


def test_default_config_reports_the_table17_claims(tmp_path):
    cfg = load_config(ROOT / "configs" / "default.yaml").resolved
    assert cfg["reproduces"] == ["cram/table17/claims", "sfw_pruning/claims-at-default-scale/claims"]
    rows = [dict(r, method="SAM") for r in summary_rows() if r["method"] == "SGD"]
    text = build_report(write_summary(tmp_path / "s.csv", summary_rows() + rows), cfg)
    assert "### cram/table17" in text and "| row | column |" not in text  # claims only
    assert "## cram: 1 of 2 claims hold (1 not run)\n" in text
    assert line(text, "App. C.8: before BNT, CrAM+-Multi's accuracy is still high at 70 % but degrades "
                      "at 90 % sparsity").endswith("| not run | holds |")  # no 70 % here
    assert line(text, "App. C.8: BNT improves the 90 %-sparse CrAM+-Multi model over its accuracy "
                      "before BNT (to over 90 %)").endswith("| holds | holds |")
    # SFW-pruning's claim: this summary has no SFW run; the paper gives no number for it (n/a)
    assert "## sfw_pruning: 0 of 1 claims hold (1 not run)\n" in text
    assert line(text, SFW_CLAIM).endswith("| not run | n/a |")


SFW_CLAIM = ("SFW-pruning significantly outperforms magnitude pruning of SGD-trained networks across sparsity "
             "ratios (\"significantly\": by more than 1 pp), stated across datasets and architectures")


def test_default_scale_sfw_claim_meets_the_defaults_sfw_and_sgd_runs(tmp_path):
    """The SFW claim's table names the default's architecture: its SFW and SGD rows meet the
    default's runs (a K-sparse SFW, an SGD) and the claim is judged with their interval."""
    cfg = load_config(ROOT / "configs" / "default.yaml").resolved
    base = summary_rows()[0]
    rows = [dict(base, method=method, seed=seed, level=level, sparsity_prunable=level, sparsity_total=level,
                 bnt_trial="", bnt_seed="", accuracy=accuracy + seed)  # seeds 1 pp apart
            for method, accuracy in (("SGD", 20.0), ("SFW", 50.0)) for seed in (0, 1)
            for level in ("0.7", "0.8", "0.9", "0.95")]
    summary = write_summary(tmp_path / "s.csv", rows)
    assert "## sfw_pruning: 1 of 1 claims hold\n" in build_report(summary, cfg)  # Δ 30 [27.0, 33.0] > 1 pp
    close = [dict(r, accuracy=r["accuracy"] - 29.5) if r["method"] == "SFW" else r for r in rows]  # Δ 0.5
    text = build_report(write_summary(tmp_path / "close.csv", close), cfg)
    assert "## sfw_pruning: 0 of 1 claims hold (1 inconclusive)\n" in text


def test_cli_writes_the_report_and_refuses_unknown_references(tmp_path, published, cfg, capsys):
    from compressible.cli import main

    summary = write_summary(tmp_path / "summary.csv", summary_rows())
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    out = tmp_path / "paper_tables" / "REPRODUCTION.md"
    argv = ["reproduce", "--summary", str(summary), "--config", str(tmp_path / "cfg.json"), "--out", str(out),
            "--published", str(published)]
    assert main(argv) == 0
    assert out.read_text() == build_report(summary, cfg, published)
    (tmp_path / "cfg.json").write_text(json.dumps(dict(cfg, reproduces=["toy/t2"])))
    capsys.readouterr()
    assert main(argv) == 2 and "unknown 'toy/t2'; allowed" in capsys.readouterr().err


def test_config_schema_rejects_a_malformed_reproduces_entry(tmp_path):
    from compressible.config import ConfigError, validate_config

    raw = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    with pytest.raises(ConfigError, match="reproduces.0"):
        validate_config(dict(raw, reproduces=["cram table17"]))
    assert validate_config({k: v for k, v in raw.items() if k != "reproduces"}).reproduces == []


def test_empty_reproduces_is_refused(tmp_path, published, cfg):
    with pytest.raises(PublishedError, match="reproduces"):
        build_report(write_summary(tmp_path / "s.csv", summary_rows()), dict(cfg, reproduces=[]), published)


def test_a_setup_meets_the_runs_of_its_architecture_and_of_its_stand_ins_only():
    """CrAM's CIFAR ResNet-20 setup is the authors' resnet20_b; the embedded default's resnet20
    stands in for it; another architecture never meets it."""
    import pandas as pd

    from compressible.report import published as pub
    from compressible.report.reproduction import ours_for

    cell = next(n.cell for n in pub.load_all(Path(pub.PUBLISHED_DIR))["cram"].tables["table17"].numbers
                if n.cell.row == "CrAM+-Multi" and n.cell.compressor != pub.DENSE and n.cell.bnt)
    assert cell.setup.archs == ("resnet20_b", "resnet20")
    rows = [dict(r, level=str(cell.level)) for r in summary_rows() if r["method"] == "CrAM+-Multi"]
    for arch, found in (("resnet20_b", True), ("resnet20", True), ("resnet56", False)):
        df = pd.DataFrame([dict(r, arch=arch) for r in rows]).astype({"level": str, "bnt_trial": str})
        assert (ours_for(df, cell, "CrAM+-Multi") is not None) is found, arch


SWEEP = {
    "paper": "sweep", "title": "A paper that shows the best configuration", "seed_prefix": "y_",
    "setups": {"s": {"dataset": "cifar10", "arch": "resnet20"}},
    "tables": {"best": {
        "title": "best of a sweep", "setup": "s",
        "rows": {"SGD": {"method": "sgd"}, "Multi": {"method": "cram_plus_multi", "params": {"sparse_grad": True}}},
        "columns": {"50%": {"compressor": "global_magnitude", "level": 0.5, "bnt": False},
                    "90%": {"compressor": "global_magnitude", "level": 0.9, "bnt": False}},
        "claims": [{"id": "multi-above", "text": "the sweep's best beats SGD", "sentence": "the sweep's best beats SGD", "kind": "greater",
                    "left": {"rows": ["Multi"], "columns": ["50%", "90%"]},
                    "right": {"rows": ["SGD"], "columns": ["50%", "90%"]}}]}},
}
# accuracy before BNT at 50 % and 90 %: entry a is best on average (55), b at 50 % only
SWEEP_RESULTS = {"SGD": (70.0, 30.0), "CrAM+-Multi": (60.0, 50.0), "CrAM+-Multi-b": (75.0, 20.0)}


@pytest.mark.parametrize("selection, family, holds", [
    ("per_level", "multi", "holds"),  # b at 50 % (75 > 70), a at 90 % (50 > 30)
    ("mean_over_levels", "multi", "does not hold"),  # a throughout: 60 < 70 at 50 %
    ("per_level", None, "does not hold"),  # no sweep: the first entry, a
    (None, "multi", "does not hold"),  # the paper shows no selection: the first entry
])
def test_claims_of_a_sweep_use_the_entry_the_papers_criterion_selects(tmp_path, selection, family, holds):
    paper = copy.deepcopy(SWEEP)
    if selection:
        paper["tables"]["best"]["selection"] = selection
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "sweep.yaml").write_text(yaml.safe_dump(paper, sort_keys=False))
    cfg = load_config(ROOT / "configs" / "default.yaml").resolved
    multi = next(m for m in cfg["methods"] if m["label"] == "CrAM+-Multi")
    cfg["methods"] = [m for m in cfg["methods"] if m["label"] in ("SGD", "CrAM+-Multi")]
    cfg["methods"].append(dict(copy.deepcopy(multi), label="CrAM+-Multi-b"))
    for m in cfg["methods"]:
        m["family"] = family if m["label"].startswith("CrAM") else None
    cfg["reproduces"] = ["sweep/best"]
    rows = [r for r in summary_rows() if r["bnt_trial"] == "" and r["method"] == "SGD" and r["seed"] == 0]
    # two seeds 0.2 pp apart: every difference (≥ 5 pp) lies far outside its ±0.6 pp interval
    summary = [dict(r, method=label, level=level, seed=seed, accuracy=acc[i] + 0.2 * seed)
               for label, acc in SWEEP_RESULTS.items() for i, level in enumerate(("0.5", "0.9"))
               for r in rows[:1] for seed in (0, 1)]
    report = build_report(write_summary(tmp_path / "s.csv", summary), cfg, tmp_path / "published")
    assert line(report, "the sweep's best beats SGD").endswith(f"| {holds} | n/a |"), report


def test_table5_finetune_cells_are_judged_against_the_finetuned_rows(tmp_path):
    """CrAM Table 5: the "+ fine-tune" row reads the summary's finetuned oBERT rows, the plain
    oBERT row the others (aggregate adds the `finetune` column when a config finetunes)."""
    from compressible.report.aggregate import METRIC_COLUMNS
    from compressible.report.published import PUBLISHED_DIR

    at = METRIC_COLUMNS.index("level") + 1
    columns = METRIC_COLUMNS[:at] + ["finetune"] + METRIC_COLUMNS[at:]

    def f1(compressor, level, tuned):  # distinct per (compressor, level, finetune)
        return 70.0 - 10 * level + (7.0 if tuned else 0.0) + (1.0 if compressor == "obert" else 0.0)

    rows = [dict({c: "" for c in columns}, experiment="cram_bert_table5", dataset="squad", arch="bert",
                 method="CrAM+-Multi", seed=0, compressor=comp, level=level, finetune=tuned,
                 prunable="bert_encoder", metric="f1", value=f1(comp, level, tuned), dense_value=88.0)
            for comp, tunes in (("uniform_magnitude", (False,)), ("obert", (False, True)))
            for tuned in tunes for level in (0.5, 0.6, 0.7, 0.8)]
    summary = tmp_path / "summary.csv"
    with open(summary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    cfg = load_config(ROOT / "configs" / "cram_bert" / "table5.yaml", check_files=False).resolved
    text = build_report(summary, cfg, PUBLISHED_DIR)
    for level in (0.5, 0.6, 0.7, 0.8):
        column = f"{round(level * 100)}%"
        for row, tuned in (("CrAM+-Multi oBERT", False), ("CrAM+-Multi oBERT + fine-tune", True)):
            line = next(ln for ln in text.splitlines() if ln.startswith(f"| {row} | {column} | bert |"))
            assert f"| {f1('obert', level, tuned):.2f} |" in line, line
    # the LaTeX table: the finetuned rows are their own line, the published "+ fine-tune" row under it
    from compressible.report.tables import accuracy_table

    lines = accuracy_table(summary, tmp_path / "t.tex", "bert", "obert", False, ["CrAM+-Multi"], None, cfg,
                           PUBLISHED_DIR).read_text().splitlines()
    tuned = next(i for i, ln in enumerate(lines) if ln.startswith("CrAM+-Multi + fine-tune &"))
    assert f"{f1('obert', 0.5, True):.1f}" in lines[tuned] and "oBERT + fine-tune" in lines[tuned + 1]
    plain = next(i for i, ln in enumerate(lines) if ln.startswith("CrAM+-Multi &"))
    assert f"{f1('obert', 0.5, False):.1f}" in lines[plain] and "fine-tune" not in lines[plain + 1]
