"""Tidy results: one row per measurement (one level, before BNT or one BNT trial).

Image experiments measure top-1 accuracy: their columns ``accuracy`` and ``dense_accuracy``
hold it. Tasks with other metrics (question answering: F1 and exact match) write one row per
metric and measurement, with the metric's name in ``metric`` and its value in ``value`` and
``dense_value`` (METRIC_COLUMNS): no column named accuracy holds anything else, and the image
experiments' summaries keep their columns and bytes.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterable

from ..artefacts import read_with

COLUMNS = [
    "experiment", "dataset", "arch", "method", "seed", "compressor", "level", "prunable",
    "bnt_trial", "bnt_seed", "accuracy", "loss", "dense_accuracy", "sparsity_prunable",
    "sparsity_total", "compression_ratio", "flops_ratio", "speedup", "params_remaining",
    "relative_distance",
]
# the columns of a task whose metrics are not accuracy alone (the result JSON lists them)
METRIC_COLUMNS = [{"accuracy": "value", "dense_accuracy": "dense_value"}.get(c, c) for c in COLUMNS]
METRIC_COLUMNS.insert(METRIC_COLUMNS.index("value"), "metric")


def rows_of(result: dict) -> list[dict]:
    """Every row of one (checkpoint, operator) result file."""
    rows = [row for level in result["levels"] for row in level_rows(result, level)]
    return [r for row in rows for r in metric_rows(row, result["metrics"])] if "metrics" in result else rows


def metric_rows(row: dict, metrics: list[str]) -> list[dict]:
    """One row per metric (in the task's order, the headline first) of a measurement row that
    holds every metric under its own name."""
    common = {k: v for k, v in row.items() if k not in metrics and not k.startswith("dense_")}
    return [dict(common, metric=m, value=row[m], dense_value=row[f"dense_{m}"]) for m in metrics]


def level_rows(result: dict, level: dict) -> list[dict]:
    """The before-BNT row and one row per BNT trial of one level."""
    run, acct = result["run"], level["accounting"]  # the identity travels in the JSON
    base = {
        "experiment": result["experiment"], "dataset": result["dataset"], "arch": run["arch"],
        "method": run["method"], "seed": run["seed"], "compressor": result["operator"],
        "level": level["level"], "prunable": result["prunable"],
        **{f"dense_{m}": result["dense"][m] for m in result.get("metrics", ["accuracy"])},
        **{k: acct[k] for k in ("sparsity_prunable", "sparsity_total", "compression_ratio",
                                "flops_ratio", "speedup", "params_remaining", "relative_distance")},
    }
    if "finetune" in level:  # CrAM Table 5's "+ fine-tune": the pruned model trained with its mask fixed
        base["finetune"] = level["finetune"]
    rows = [dict(base, bnt_trial="", bnt_seed="", **level["before_bnt"])]
    for trial in level["bnt_trials"]:
        rows.append(dict(base, bnt_trial=trial["trial"], bnt_seed=trial["seed"],
                         **{k: v for k, v in trial.items() if k not in ("trial", "seed")}))
    return rows


def finite_rows(path: str) -> list[dict]:
    """The rows of one result file; a NaN or infinity (a diverged model) is an error naming it."""
    rows = read_with(path, "one-shot result", lambda p: rows_of(json.loads(p.read_text())))
    for row in rows:
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ValueError(f"{path}: non-finite {', '.join(f'{k}={row[k]}' for k in bad)} at level "
                             f"{row['level']} (bnt_trial {row['bnt_trial'] or 'none'}); "
                             "retrain the run (lower its learning rate) before aggregating")
    return rows


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def aggregate(result_files: Iterable[str | Path], out_csv: str | Path) -> int:
    """Write the sorted tidy CSV (same inputs -> same bytes); returns the number of rows."""
    rows = [r for f in sorted(map(str, result_files)) for r in finite_rows(f)]
    columns = METRIC_COLUMNS if rows and "metric" in rows[0] else COLUMNS
    if any("finetune" in r for r in rows):  # only then: every other summary keeps its bytes
        rows = [dict(r, finetune=r.get("finetune", False)) for r in rows]
        columns = columns[:columns.index("level") + 1] + ["finetune"] + columns[columns.index("level") + 1:]
    # stable: a measurement's metrics stay in the task's order
    rows.sort(key=lambda r: (r["arch"], r["method"], r["seed"], r["compressor"], str(r["level"]),
                             r.get("finetune", False), -1 if r["bnt_trial"] == "" else r["bnt_trial"]))
    write_rows(rows, columns, out_csv)
    return len(rows)


def write_rows(rows: list[dict], columns: list, out_csv: str | Path) -> Path:
    """``rows`` as CSV in their order (floats to 6 significant digits: same rows, same bytes),
    written atomically."""
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(out_csv.name + ".partial")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _fmt(r[k]) for k in columns})
    tmp.replace(out_csv)
    return out_csv
