"""Reading the tidy summary.csv, and per-(method, level) statistics shared by figures and tables."""
from __future__ import annotations

import pandas as pd

from ..artefacts import read_with


# how tables and figures name a metric of summary.csv's ``metric`` column
METRIC_LABELS = {"accuracy": "accuracy", "f1": "F1", "exact_match": "exact match"}


def load_summary(path, metric: str | None = None) -> pd.DataFrame:
    """summary.csv with its text columns as text (levels such as '0.5' or '2:4', empty BNT trials);
    a missing or unreadable file raises an ArtefactError naming it.

    The rows of one metric: ``metric``, or the headline metric of the experiment's task (an
    image experiment's accuracy, SQuAD's F1). Its values are read as ``accuracy`` and
    ``dense_accuracy`` (the names every statistic here reads) and its name is in ``metric``.
    """
    dtype = {"level": str, "bnt_trial": str, "prunable": str}
    df = read_with(path, "summary", lambda p: pd.read_csv(p, keep_default_na=False, dtype=dtype))
    if "metric" in df.columns:
        wanted = metric or (headline(df["dataset"].iloc[0]) if len(df) else "accuracy")
        df = df[df["metric"] == wanted].rename(columns={"value": "accuracy", "dense_value": "dense_accuracy"})
        df = df.reset_index(drop=True)
    else:
        df["metric"] = "accuracy"
    df["level_value"] = pd.to_numeric(df["level"], errors="coerce")
    return df


def headline(dataset: str) -> str:
    """The metric tables and figures show for ``dataset`` (its task's first; classification's
    for a name the registry does not hold, as tasks.task_of_dataset)."""
    from .. import registry

    try:
        task = registry.DATASETS.fact(dataset, "task")
    except KeyError:
        task = "classification"
    return registry.TASKS.fact(task, "primary")


FINETUNED = " + fine-tune"  # the method line of a label's finetuned rows (CrAM Table 5's row name)


def finetune_lines(df: pd.DataFrame, methods_order: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Tables and figures: the finetuned rows (summary column ``finetune``) as a method line of
    their own, "<label> + fine-tune", after the label's (in the order whether measured or not:
    a published finetuned cell has its line); a summary without that column as it is."""
    order = [m for label in methods_order for m in (label, label + FINETUNED)]
    if "finetune" not in df.columns:
        return df, order
    tuned = df["finetune"].astype(str).str.lower().isin(["true", "1"])
    return df.assign(method=df["method"].where(~tuned, df["method"] + FINETUNED)), order


def metric_label(df: pd.DataFrame) -> str:
    """The label of the summary's metric (accuracy when there are no rows)."""
    name = df["metric"].iloc[0] if len(df) else "accuracy"
    return METRIC_LABELS.get(name, name)


def per_seed(df: pd.DataFrame, after_bnt: bool) -> pd.DataFrame:
    """One accuracy per (arch, compressor, method, level, seed): the before-BNT value, or the
    mean over that seed's BNT trials."""
    part = df[(df["bnt_trial"] != "") == after_bnt]
    keys = ["arch", "compressor", "method", "level", "level_value", "seed"]
    # dropna=False: non-numeric levels ("2:4") have no level_value and must not be dropped
    return part.groupby(keys, as_index=False, dropna=False)["accuracy"].mean()


def mean_std(df: pd.DataFrame, after_bnt: bool, pooled_trials: bool = False) -> pd.DataFrame:
    """Mean and std (ddof=1; 0 for a single value) per (arch, compressor, method, level).

    Over seeds by default; ``pooled_trials`` takes them over every (seed, BNT trial) pair,
    the spread Table 11 of CrAM reports.
    """
    part = df[(df["bnt_trial"] != "") == after_bnt] if pooled_trials else per_seed(df, after_bnt)
    keys = ["arch", "compressor", "method", "level", "level_value"]
    stats = part.groupby(keys, as_index=False, dropna=False)["accuracy"].agg(["mean", "std", "count"])
    stats["std"] = stats["std"].fillna(0.0)
    return stats.sort_values(["arch", "compressor", "method", "level_value", "level"]).reset_index(drop=True)
