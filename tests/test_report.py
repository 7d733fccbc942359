"""Aggregation, figures and tables: tidy rows, best-in-bold, LaTeX that compiles, same bytes."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess

import pytest

from compressible.report.aggregate import COLUMNS, aggregate
from compressible.report.figures import accuracy_vs_sparsity
from compressible.report.tables import accuracy_table

LEVELS = [0.0, 0.5, 0.9]


def result_file(path, method: str, seed: int, acc: dict) -> None:
    """A one-shot result in the format evaluate.oneshot_run writes."""
    levels = [{
        "level": lv, "accounting": {"sparsity_prunable": lv, "sparsity_total": lv * 0.9,
                                    "compression_ratio": 1 / (1 - 0.9 * lv), "flops_ratio": 1 - lv,
                                    "speedup": 1 / (1 - lv), "params_remaining": int(1000 * (1 - lv)),
                                    "relative_distance": lv / 2},
        "before_bnt": {"accuracy": acc[lv] - 5, "loss": 1.0},
        "bnt_trials": [{"trial": t, "seed": 100 + t, "accuracy": acc[lv] + t, "loss": 0.5} for t in range(2)],
    } for lv in LEVELS]
    payload = {"run": {"arch": "resnet20", "method": method, "seed": seed}, "experiment": "x",
               "dataset": "mnist_embedded", "checkpoint": "ignored-file-name.pt",
               "operator": "global_magnitude", "prunable": "weights",
               "dense": {"accuracy": acc[0.0], "loss": 0.4}, "levels": levels, "provenance": {}}
    path.write_text(json.dumps(payload))


@pytest.fixture
def summary(tmp_path):
    files = []
    for method, base in (("SGD", 90.0), ("CrAM+-Multi", 92.0)):
        for seed in (0, 1):
            f = tmp_path / f"{method}-{seed}.json"
            result_file(f, method, seed, {0.0: base + seed, 0.5: base - 1 + seed, 0.9: base - 20 + 5 * (method != "SGD")})
            files.append(f)
    out = tmp_path / "summary.csv"
    assert aggregate(files, out) == 4 * 3 * 3
    return out


def test_summary_is_tidy_with_the_design_columns(summary):
    rows = list(csv.DictReader(open(summary)))
    assert list(rows[0]) == COLUMNS
    before = [r for r in rows if r["bnt_trial"] == ""]
    assert len(before) == 12 and all(r["bnt_seed"] == "" for r in before)
    assert {r["method"] for r in rows} == {"SGD", "CrAM+-Multi"}


def test_table_cells_are_mean_and_std_with_the_best_in_bold(summary, tmp_path):
    tex = accuracy_table(summary, tmp_path / "t.tex", "resnet20", "global_magnitude", True,
                         ["SGD", "CrAM+-Multi"]).read_text()
    sgd = next(line for line in tex.splitlines() if line.startswith("SGD"))
    cram = next(line for line in tex.splitlines() if line.startswith("CrAM+-Multi"))
    # SGD at 90 %: trials 70, 71 for both seeds -> mean 70.5, std of (70, 71, 70, 71) = 0.577
    assert "$70.5 \\pm 0.6$" in sgd and "\\mathbf{77.5 \\pm 0.6}" in cram
    assert "\\mathbf" not in sgd.split("&")[-1]
    assert "\\toprule" in tex and "90\\%" in tex


def assert_compiles(folder, table: str = "table") -> None:
    """``folder/<table>.tex`` inside a booktabs article compiles with pdflatex (skipped without it)."""
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed: the generated LaTeX is not compiled")
    (folder / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        f"\\begin{{table}}\\input{{{table}}}\\end{{table}}\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=folder, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (folder / "doc.pdf").stat().st_size > 1000


def test_generated_table_compiles_with_pdflatex(summary, tmp_path):
    accuracy_table(summary, tmp_path / "table.tex", "resnet20", "global_magnitude", False, ["SGD", "CrAM+-Multi"])
    assert_compiles(tmp_path)


def test_figures_and_tables_are_byte_identical_on_rerun(summary, tmp_path):
    def render(tag):
        paths = accuracy_vs_sparsity(summary, tmp_path / tag / "fig", "resnet20", "global_magnitude",
                                     ["SGD", "CrAM+-Multi"])
        paths.append(accuracy_table(summary, tmp_path / tag / "t.tex", "resnet20", "global_magnitude",
                                    True, ["SGD", "CrAM+-Multi"]))
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]

    assert render("a") == render("b")


def test_pattern_and_bit_levels_are_tabulated_as_given(tmp_path):
    payload = json.loads((_write_one(tmp_path, "nm", ["2:4", "4:8"])).read_text())
    assert [lv["level"] for lv in payload["levels"]] == ["2:4", "4:8"]
    aggregate([tmp_path / "nm.json"], tmp_path / "s.csv")
    tex = accuracy_table(tmp_path / "s.csv", tmp_path / "t.tex", "resnet20", "nm", True, ["SGD"]).read_text()
    assert "Method & 2:4 & 4:8" in tex and tex.count(" \\pm ") == 2
    aggregate([_write_one(tmp_path, "quantize", [4, 8])], tmp_path / "q.csv")
    tex = accuracy_table(tmp_path / "q.csv", tmp_path / "q.tex", "resnet20", "quantize", False, ["SGD"]).read_text()
    assert "Method & 4 & 8" in tex


def _write_one(tmp_path, operator: str, levels: list):
    path = tmp_path / f"{operator}.json"
    result_file(path, "SGD", 0, {lv: 80.0 for lv in LEVELS})
    payload = json.loads(path.read_text())
    payload["operator"] = operator
    payload["levels"] = [dict(entry, level=lv) for entry, lv in zip(payload["levels"], levels)]
    path.write_text(json.dumps(payload))
    return path
