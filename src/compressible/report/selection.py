"""Best-configuration selection behind compression-aware SFW's Figs. 2 and 4.

A sweep is a *family* of method entries (``family:`` in the config; an entry without one is its
own family) that differ in their hyper-parameters. From the tidy summary.csv, per architecture,
operator and family, two selections:

- ``per_level`` (Fig. 4): for each level, the entry with the highest test accuracy after
  compression at that level (mean over seeds); the entry's dense accuracy beside it (the
  figure's dashed line);
- ``mean_over_levels`` (Fig. 2): one entry per family, the one whose accuracy after compression,
  averaged over all levels of the operator (each level's mean over seeds), is highest; its rows
  at every level.

Accuracy is the one measured right after compression, before BNT (the paper uses none); when
the experiment has BNT trials, the same selections after BNT (each seed's mean over trials) are
added (``bnt`` = after). Ties: scores equal to 1e-9 go to the entry listed first in the config.
An entry without a result at one of its family's levels stops the selection with an error.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .aggregate import write_rows
from .stats import load_summary, per_seed

CRITERIA = ("per_level", "mean_over_levels")
COLUMNS = ["arch", "compressor", "family", "criterion", "bnt", "level", "method", "score",
           "accuracy", "accuracy_std", "seeds", "dense_accuracy", "candidates"]
TIE_DIGITS = 9


def families(methods) -> dict[str, list[str]]:
    """Family name -> its method labels, both in config order."""
    out: dict[str, list[str]] = {}
    for m in methods:
        out.setdefault(m.family or m.label, []).append(m.label)
    return out


def level_stats(df: pd.DataFrame, after_bnt: bool) -> pd.DataFrame:
    """Per (arch, compressor, method, level): accuracy mean, std (ddof 1; 0 for one seed), the
    number of seeds and the mean dense accuracy of those seeds."""
    seeds = per_seed(df, after_bnt)
    dense = df.groupby(["arch", "compressor", "method", "seed"], as_index=False)["dense_accuracy"].first()
    seeds = seeds.merge(dense, on=["arch", "compressor", "method", "seed"])
    keys = ["arch", "compressor", "method", "level", "level_value"]
    stats = seeds.groupby(keys, as_index=False, dropna=False).agg(
        accuracy=("accuracy", "mean"), accuracy_std=("accuracy", "std"), seeds=("seed", "count"),
        dense_accuracy=("dense_accuracy", "mean"))
    stats["accuracy_std"] = stats["accuracy_std"].fillna(0.0)
    return stats


def best(scores: dict[str, float], order: list[str]) -> str:
    """The label with the highest score; equal scores (to ``TIE_DIGITS``) go to the first in ``order``."""
    ranked = [label for label in order if label in scores]
    return max(ranked, key=lambda label: (round(scores[label], TIE_DIGITS), -ranked.index(label)))


def _levels(part: pd.DataFrame) -> list[str]:
    ordered = part.sort_values(["level_value", "level"], na_position="last")
    return list(dict.fromkeys(ordered["level"]))


def _row(stat: dict, family: str, criterion: str, bnt: str, score: float, candidates: int) -> dict:
    keep = ("arch", "compressor", "level", "method", "accuracy", "accuracy_std", "dense_accuracy")
    return {**{k: stat[k] for k in keep}, "family": family, "criterion": criterion, "bnt": bnt,
            "score": score, "seeds": int(stat["seeds"]), "candidates": candidates}


def _check_complete(part: pd.DataFrame, stat: dict, levels: list, present: list, family: str) -> None:
    for label in present:
        missing = [lv for lv in levels if (label, lv) not in stat]
        if missing:
            raise ValueError(f"{part['arch'].iloc[0]}, {part['compressor'].iloc[0]}: method {label!r} has no "
                             f"result at level(s) {', '.join(missing)}; its family {family!r} has them")


def select_family(part: pd.DataFrame, family: str, labels: list[str], bnt: str) -> list[dict]:
    """Both selections for one family's rows of one (arch, operator)."""
    stat = {(r["method"], r["level"]): r for r in part.to_dict("records")}
    levels, present = _levels(part), [lb for lb in labels if lb in set(part["method"])]
    _check_complete(part, stat, levels, present, family)
    rows = []
    for level in levels:  # Fig. 4: the best entry at each level
        scores = {lb: float(stat[lb, level]["accuracy"]) for lb in present}
        chosen = best(scores, labels)
        rows.append(_row(stat[chosen, level], family, "per_level", bnt, scores[chosen], len(present)))
    means = {lb: sum(float(stat[lb, lv]["accuracy"]) for lv in levels) / len(levels) for lb in present}
    chosen = best(means, labels)  # Fig. 2: the best entry over all levels
    rows += [_row(stat[chosen, lv], family, "mean_over_levels", bnt, means[chosen], len(present)) for lv in levels]
    return rows


def select(summary_csv, methods) -> list[dict]:
    """Every selection of the summary, for the config's ``methods`` (their families and order)."""
    df = load_summary(summary_csv)
    kinds = [("before", False)] + ([("after", True)] if (df["bnt_trial"] != "").any() else [])
    rows = []
    for bnt, after in kinds:
        stats = level_stats(df, after)
        for _, part in stats.groupby(["arch", "compressor"], sort=True):
            for family, labels in families(methods).items():
                members = part[part["method"].isin(labels)]
                if not members.empty:
                    rows += select_family(members, family, labels, bnt)
    return rows


def write_selection(rows: list[dict], out_csv: str | Path) -> Path:
    """The selections as CSV, in the order :func:`select` gives (deterministic); atomic."""
    return write_rows(rows, COLUMNS, out_csv)


def _panel(ax, rows: list[dict], criterion: str) -> None:
    """One line per family; per level also the chosen entries' dense accuracy, dashed (Fig. 4)."""
    for i, family in enumerate(dict.fromkeys(r["family"] for r in rows)):
        line = [r for r in rows if r["family"] == family and r["criterion"] == criterion]
        x = [100 * float(r["level"]) for r in line]
        name = family if criterion == "per_level" else f"{family}: {line[0]['method']}"
        ax.plot(x, [r["accuracy"] for r in line], marker="o", ms=3, color=f"C{i}", label=name)
        if criterion == "per_level":
            ax.plot(x, [r["dense_accuracy"] for r in line], ls="--", lw=1, color=f"C{i}")
    ax.set_xlabel("level (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")


def selection_figure(rows: list[dict], out_stem: str | Path, arch: str, operator: str) -> list[Path]:
    """Two panels before BNT: the best entry per level (Fig. 4) and each family's best entry
    over all levels (Fig. 2); writes ``out_stem``.pdf and .png with fixed metadata."""
    import matplotlib.pyplot as plt

    from .savefig import save_pdf_png

    mine = [r for r in rows if r["arch"] == arch and r["compressor"] == operator and r["bnt"] == "before"]
    plt.rcParams.update({"svg.hashsalt": "compressible", "font.size": 9})
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8), sharey=True)
    for ax, criterion, title in ((axes[0], "per_level", "best per level"),
                                 (axes[1], "mean_over_levels", "best over all levels")):
        _panel(ax, mine, criterion)
        ax.set_title(f"{arch}, {operator}: {title}")
    axes[0].set_ylabel("test accuracy (%)")
    fig.tight_layout()
    return save_pdf_png(fig, out_stem)
