"""The reproduction report: for every published number and claim a config says it reproduces,
ours beside the paper's, the difference and a verdict (``paper_tables/<exp>/REPRODUCTION.md``).

A published cell meets our results through the config: its row's method (registry name and the
parameters that identify the paper's variant, builder defaults filled in) picks the config's
method labels, its setup the architecture, its column the operator, level and BNT.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from .. import registry
from . import published as pub
from .selection import best
from .stats import load_summary
from .verdict import Side, judge_claim, judge_number


@dataclass(frozen=True)
class Ours:
    """Our value of a cell: mean ± std (ddof 1; 0 for one value) of n measurements."""
    label: str
    mean: float
    std: float
    n: int
    seeds: tuple
    trials: int  # BNT trials per seed (0: dense or before BNT)
    seed_means: tuple = ()  # one value per seed (the mean of its BNT trials): the independent runs
    arch: str = ""  # the architecture(s) and dataset actually run
    dataset: str = ""

    @property
    def side(self) -> Side:
        """The mean over seeds with its spread over seeds: BNT trials of one model share its
        training noise, so they are averaged per seed, not counted as independent runs."""
        m = self.seed_means or (self.mean,)
        if len(m) < 2:
            return Side(math.fsum(m) / len(m), None, len(m))
        mean = math.fsum(m) / len(m)
        return Side(mean, math.sqrt(math.fsum((v - mean) ** 2 for v in m) / (len(m) - 1)), len(m))

    @property
    def runs(self) -> str:
        seeds = ", ".join(str(s) for s in self.seeds)
        return f"{self.label} s{seeds}" + (f" × {self.trials} BNT trials" if self.trials else "")


# ---------------------------------------------------------------- matching

def effective_params(method: dict) -> dict:
    """The config method's parameters with the builder's defaults filled in."""
    defaults = dict(registry.METHODS.fact(method["name"], "params"))
    return {**defaults, **method.get("params", {})}


def matching_labels(cfg: dict, cell: pub.Cell) -> list[str]:
    """The config's method labels that train the cell's row (config order)."""
    if not cell.reproducible:
        return []
    return [m["label"] for m in cfg["methods"] if m["name"] == cell.method and _params_match(m, cell)]


def _params_match(method: dict, cell: pub.Cell) -> bool:
    params = effective_params(method)
    return (all(_same(params.get(k), v) for k, v in cell.params.items())
            and all(params.get(k) is not None for k in cell.given))


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):  # a tuple default, a YAML list
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-12)
    return a == b


def _same_level(ours: str, level) -> bool:
    """'0.9' and 0.9 are the same sparsity; patterns ('2:4') compare as text."""
    try:
        return float(ours) == float(level)
    except (TypeError, ValueError):
        return str(ours) == str(level)


def ours_for(df: pd.DataFrame, cell: pub.Cell, label: str) -> Optional[Ours]:
    """Our measurements of the cell for one method label, or None where none exist."""
    if cell.finetune and "finetune" not in df.columns:  # no finetune-after-pruning stage yet: none
        return None
    part = df[df["arch"].isin(cell.setup.archs) & (df["method"] == label)]
    if "finetune" in df.columns:
        part = part[part["finetune"].astype(str).str.lower().isin(["true", "1"]) == cell.finetune]
    if cell.compressor == pub.DENSE:
        values = part.groupby("seed", sort=True)["dense_accuracy"].first()
        return _ours(label, values.tolist(), tuple(values.index), 0, part=part) if len(values) else None
    part = part[(part["compressor"] == cell.compressor) & part["level"].map(lambda lv: _same_level(lv, cell.level)).astype(bool)]
    if cell.prunable is not None:
        part = part[part["prunable"] == cell.prunable]
    part = part[(part["bnt_trial"] != "") == bool(cell.bnt)].sort_values(["seed", "bnt_trial"])
    if part.empty:
        return None
    seeds = tuple(sorted(set(part["seed"].tolist())))
    trials = int(part.groupby("seed").size().max()) if cell.bnt else 0
    per_seed = part.groupby("seed", sort=True)["accuracy"].apply(lambda a: math.fsum(a) / len(a))
    return _ours(label, part["accuracy"].tolist(), seeds, trials, tuple(per_seed.tolist()), part)


def _ours(label: str, values: list, seeds: tuple, trials: int, seed_means: tuple = (), part=None) -> Ours:
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    ran = {k: ", ".join(sorted(set(part[k].astype(str)))) if part is not None else "" for k in ("arch", "dataset")}
    return Ours(label, mean, std, n, tuple(int(s) for s in seeds), trials, seed_means or tuple(values), **ran)


# ---------------------------------------------------------------- setups

def own_epochs(method: dict, cfg: dict) -> int:
    """A method's epochs: its own (0: the pretrained weights as given), else the config's."""
    return cfg["training"]["epochs"] if method.get("epochs") is None else method["epochs"]


def run_setup(cfg: dict, label: str, arch: str) -> dict:
    """What was run for a method label on an architecture: dataset, arch, width, epochs."""
    method = next(m for m in cfg["methods"] if m["label"] == label)
    width = next((a.get("width") for a in cfg["archs"] if a["name"] == arch), None)
    return {"dataset": cfg["dataset"]["name"], "arch": arch, "width": width,
            "epochs": own_epochs(method, cfg)}


def paper_setup(cell: pub.Cell) -> dict:
    s = cell.setup
    return {"dataset": s.dataset, "arch": s.arch, "width": s.width, "epochs": s.epochs if cell.epochs is None else cell.epochs}


def stand_in(cfg: dict, cell: pub.Cell, label: str, arch: str) -> list[str]:
    """The parts of the paper's setup the run does not match (empty: it reproduces the setup).
    A setup that states no epochs (the text does not give them) is not held to any."""
    ran, paper = run_setup(cfg, label, arch), paper_setup(cell)
    return [k for k in ("dataset", "arch", "width", "epochs")
            if (paper[k] is not None or k == "width") and ran[k] != paper[k]]


def describe(setup: dict) -> str:
    width = f" width {setup['width']}" if setup["width"] else ""
    epochs = "" if setup["epochs"] is None else f", {setup['epochs']} epochs" if setup["epochs"] else ", as given"
    return f"{setup['arch']}{width}, {setup['dataset']}{epochs}"


# ---------------------------------------------------------------- verdicts

def published_side(number: pub.Number) -> Side:
    """The paper's mean: its std over the table's n runs, or no spread where it prints none."""
    return Side(number.value, number.std, number.n if number.std is not None else 1)


def judgement(number: pub.Number, ours: Optional[Ours]):
    """The Verdict of our mean against the published one, or None where nothing was run."""
    return None if ours is None else judge_number(ours.side, published_side(number), number.margin)


def verdict(number: pub.Number, ours: Optional[Ours], cfg: Optional[dict] = None) -> str:
    """reproduced / deviates / inconclusive / not run (report/verdict.py); with the config, a run
    that does not match the paper's setup (dataset, architecture, width, epochs) is a stand-in."""
    found = judgement(number, ours)
    if found is None:
        return "not run"
    if cfg is not None and any(stand_in(cfg, number.cell, ours.label, a) for a in ours.arch.split(", ")):
        return "stand-in"
    return found.word


def pair_holds(kind: str, threshold: float, left: float, right: float) -> bool:
    """The claim on two printed values taken as exact (the paper's own numbers without stds)."""
    eps = 1e-9
    if kind == "greater":
        return left - right > threshold + eps
    if kind == "not_below":
        return left >= right - threshold - eps
    return abs(left - right) <= threshold + eps  # within


_SYMBOL = {"greater": ">", "not_below": "≥", "within": "≈"}


@dataclass(frozen=True)
class ClaimResult:
    claim: pub.Claim
    verdict: str  # holds / does not hold / inconclusive / not run
    on_paper: str  # the same check on the paper's own numbers: holds / does not hold / inconclusive / n/a
    numbers: tuple  # one string per pair


class Evaluator:
    """Our value (or, for cited rows, the published one) of any cell, from one summary."""

    def __init__(self, df: pd.DataFrame, cfg: dict, papers: dict):
        self.df, self.cfg, self.papers = df, cfg, papers
        self.published = {n.cell.key: n for n in pub.iter_numbers(papers)}
        self.family = {m["label"]: m.get("family") for m in cfg["methods"]}

    def ours(self, cell: pub.Cell) -> list[Ours]:
        return [o for o in (ours_for(self.df, cell, lb) for lb in matching_labels(self.cfg, cell)) if o]

    def value(self, cell: pub.Cell) -> tuple[Optional[Side], str]:
        if not cell.reproducible:
            return published_side(self.published[cell.key]), "published"
        found = self.ours(cell)
        if not found:
            return None, "not run"
        chosen = self.representative(cell, found)
        return chosen.side, chosen.label

    def representative(self, cell: pub.Cell, found: list) -> Ours:
        """The entry that stands for a published row: the first matching one in config order; in a
        table that shows the best configuration of a sweep (``selection``), the one the paper's
        criterion selects from the matching entries of one family (compression-aware SFW Figs. 2, 4)."""
        how = self.papers[cell.paper].tables[cell.table].selection
        families = {self.family.get(o.label) for o in found}
        if how is None or len(found) == 1 or len(families) != 1 or None in families:
            return found[0]
        if how == "per_level":
            scores = {o.label: o.mean for o in found}
        else:
            scores = {o.label: mean_over_levels(self.df, cell, o.label) for o in found}
        chosen = best(scores, [o.label for o in found])
        return next(o for o in found if o.label == chosen)

    def claim(self, claim: pub.Claim) -> ClaimResult:
        texts, results, paper = [], [], []
        for a, b in claim.pairs:
            (va, sa), (vb, sb) = self.value(a), self.value(b)
            ok, iv = (None, None) if va is None or vb is None else judge_claim(claim.kind, claim.threshold, va, vb)
            results.append(ok)
            texts.append(f"{_side(a, va, sa)} {_SYMBOL[claim.kind]} {_side(b, vb, sb)}{_mark(ok, iv)}")
            pa, pb = self.published.get(a.key), self.published.get(b.key)
            paper.append(None if pa is None or pb is None else on_paper(claim, pa, pb))
        return ClaimResult(claim, _combine(results), _combine(paper, missing="n/a"), tuple(texts))


def on_paper(claim: pub.Claim, left: pub.Number, right: pub.Number) -> str:
    """The claim on the paper's own numbers: by their intervals where it prints stds, else on
    the printed values taken as exact (the paper states the ordering of what it prints)."""
    word, iv = judge_claim(claim.kind, claim.threshold, published_side(left), published_side(right))
    if iv.known:
        return word
    return "holds" if pair_holds(claim.kind, claim.threshold, left.value, right.value) else "does not hold"


def mean_over_levels(df: pd.DataFrame, cell: pub.Cell, label: str) -> float:
    """One entry's accuracy under the cell's operator (and BNT setting) averaged over its levels."""
    part = df[df["arch"].isin(cell.setup.archs) & (df["method"] == label) & (df["compressor"] == cell.compressor)]
    if cell.prunable is not None:
        part = part[part["prunable"] == cell.prunable]
    part = part[(part["bnt_trial"] != "") == bool(cell.bnt)]
    return float(part.groupby("level")["accuracy"].mean().mean())


def _side(cell: pub.Cell, value: Optional[Side], source: str) -> str:
    where = f"{cell.row} {cell.column}"
    if value is None:
        return f"{where}: not run"
    spread = "" if value.spread is None else f" ± {value.spread:.2f}"
    return f"{where}: {value.mean:.2f}{spread} (n {value.n}" + (", published)" if source == "published" else ")")


def _mark(word: Optional[str], iv) -> str:
    if word is None:
        return ""
    return {"holds": " ✓", "does not hold": " ✗"}.get(word, " ?") + f" (Δ {iv.text()})"


def _combine(results: list, missing: str = "not run") -> str:
    """Any failing comparison: does not hold; else any not evaluated: not run; else any
    undecided: inconclusive; else holds."""
    if "does not hold" in results:
        return "does not hold"
    if any(r is None for r in results):
        return missing
    return "inconclusive" if "inconclusive" in results else "holds"


# ---------------------------------------------------------------- the report

HEADER = """Ours: mean ± std (ddof 1) over seeds, n seeds (after BNT each seed is first averaged over its
BNT trials: trials of one model are not independent runs). Δ = ours − published, with its 95 %
interval from both standard errors (σ/√n each; the paper's n per table as it states it, a number
printed without a std has none) by Welch's t (t, not normal: 2–10 runs per side). A number is
**reproduced** when the interval lies inside ±margin (0.5 pp unless the table says otherwise),
**deviates** when it lies outside, **inconclusive** when it straddles a bound (the note says which
side needs more runs and how many seeds of ours would suffice at the observed spread), **not run**
where no result of this experiment matches it (architecture, method and its identifying
parameters, operator, level, before/after BNT), **stand-in** where a result differs from the
paper's setup in dataset, architecture (a stand-in such as option-A shortcuts), width or epochs:
shown with what was run, never counted in "k of n reproduced". Rows of methods the paper only cites are shown, never judged;
in claims they enter with their published value. Where several of this config's methods match
one row, each gets its own line; claims use the first in config order, or, in a table that shows
the best configuration of a sweep, the entry of the sweep (`family`) that the paper's criterion
selects (best at that level, or best on average over the levels). A comparison of a claim holds
when the 95 % interval of left − right excludes the reversed order by the claim's margin, fails
when it lies wholly on the reversed side, else is inconclusive; a claim holds when every
comparison holds. "paper": the same test on the paper's numbers (on the printed values where it
gives no stds)."""


def write_report(summary_csv, cfg: dict, out, directory=None) -> Path:
    """Write the report for the config's ``reproduces`` entries (same inputs, same bytes)."""
    text = build_report(summary_csv, cfg, directory)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def build_report(summary_csv, cfg: dict, directory=None) -> str:
    selected = pub.resolve_references(cfg.get("reproduces", []), directory)
    if not selected:
        raise pub.PublishedError("config key 'reproduces': empty; name the published tables this experiment reproduces")
    df = load_summary(summary_csv)
    ev = Evaluator(df, cfg, pub.load_all(directory))
    lines = [f"# Reproduction report: {cfg['experiment']}", "",
             f"Summary `{Path(summary_csv).as_posix()}` ({_origin(df)}); {_experiment(cfg)} "
             f"Runs: `results/{cfg['experiment']}/checkpoints/<arch>-<label>-s<seed>.pt`, each with its "
             "provenance (resolved config, git commit, package versions, device) in the JSON beside it.",
             "", HEADER, ""]
    by_paper: dict = {}
    for paper, table, what in selected:
        by_paper.setdefault(paper.name, (paper, []))[1].append((table, what))
    for paper, tables in by_paper.values():
        lines += _paper_section(ev, paper, tables)
    return "\n".join(lines).rstrip() + "\n"


def _origin(df: pd.DataFrame) -> str:
    pairs = sorted(set(zip(df["experiment"].astype(str), df["dataset"].astype(str))))
    return "; ".join(f"experiment {e}, dataset {d}" for e, d in pairs) or "no rows"


def _experiment(cfg: dict) -> str:
    archs = ", ".join(a["name"] + (f" (width {a['width']})" if a.get("width") else "") for a in cfg["archs"])
    epochs = sorted({own_epochs(m, cfg) for m in cfg["methods"]})
    return (f"this experiment: dataset {cfg['dataset']['name']}, {archs}, "
            f"epochs {'/'.join(map(str, epochs))}, seeds {', '.join(map(str, cfg['seeds']))}, "
            f"{cfg.get('bnt', {}).get('trials', 0)} BNT trials.")


def _paper_section(ev: Evaluator, paper: pub.Paper, tables: list) -> list[str]:
    body, verdicts, claims, stand_ins = [], [], [], 0
    for table, what in tables:
        rows = _number_rows(ev, table) if "cells" in what else []
        results = [ev.claim(c) for c in table.claims] if "claims" in what else []
        verdicts += [r[-2] for r in rows if r[-2] not in ("cited", "stand-in")]
        stand_ins += sum(r[-2] == "stand-in" for r in rows)
        claims += [r.verdict for r in results]
        body += _table_section(paper, table, rows, results)
    shown = f", {stand_ins} stand-in results shown, not counted" if stand_ins else ""
    counts = ([_count(verdicts, "reproduced", "numbers reproduced") + shown] if any("cells" in w for _, w in tables) else []) \
        + ([_count(claims, "holds", "claims hold")] if any("claims" in w for _, w in tables) else [])
    return [f"## {paper.name}: {'; '.join(counts)}", "", paper.title, ""] + body


def _count(verdicts: list, good: str, what: str) -> str:
    """'3 of 5 claims hold (1 inconclusive, 1 not run)'."""
    others = ", ".join(f"{verdicts.count(w)} {w}" for w in ("inconclusive", "not run") if w in verdicts)
    return f"{verdicts.count(good)} of {len(verdicts)} {what}" + (f" ({others})" if others else "")


def _number_rows(ev: Evaluator, table: pub.Table) -> list[tuple]:
    """Report rows (row, column, arch, published, ours, n, Δ [95 %], verdict, runs): one per matching
    method label, one "not run" where none matches, one "cited" for a cited method."""
    rows = []
    for number in table.numbers:
        cell = number.cell
        if not cell.reproducible:
            rows.append(_head(cell, number) + ("—", "", "", "", "cited", cell.note))
            continue
        rows += [_number_row(cell, number, ours, ev.cfg) for ours in (ev.ours(cell) or [None])]
    return rows


def _head(cell: pub.Cell, number: pub.Number) -> tuple:
    row = cell.row + (f" ({cell.epochs} epochs)" if cell.epochs is not None else "")
    return (row, cell.column, cell.setup.arch, pub.printed(number.token) + (f" (n {number.n})" if number.std is not None else ""))


def _number_row(cell: pub.Cell, number: pub.Number, ours: Optional[Ours], cfg: dict) -> tuple:
    if ours is None:
        labels = matching_labels(cfg, cell)
        why = (f"no results of {', '.join(labels)} for {_where(cell)}" if labels
               else f"no method {_method(cell)} in this config")
        return _head(cell, number) + ("—", "", "", "", "not run", why)
    side, judged = ours.side, judgement(number, ours)
    spread = "" if side.spread is None else f" ± {side.spread:.2f}"
    word = verdict(number, ours, cfg)
    ran = "; ".join(describe(run_setup(cfg, ours.label, a)) for a in ours.arch.split(", "))
    note = "; ".join(x for x in (ours.runs, ran, judged.advice if word == "inconclusive" else "",
                                 f"the paper's: {describe(paper_setup(cell))}" if word == "stand-in" else "") if x)
    return _head(cell, number) + (f"{side.mean:.2f}{spread}", str(side.n), judged.interval.text(),
                                  f"{judged.margin:g}", word, note)


def _where(cell: pub.Cell) -> str:
    if cell.compressor == pub.DENSE:
        return f"{cell.setup.arch}, dense"
    return (f"{cell.setup.arch}, {cell.compressor} {cell.level}, {'after' if cell.bnt else 'before'} BNT"
            + (f", prunable {cell.prunable}" if cell.prunable else ""))


def _method(cell: pub.Cell) -> str:
    params = ", ".join(f"{k}={v}" for k, v in cell.params.items())
    given = ", ".join(f"{k} set" for k in cell.given)
    inner = "; ".join(x for x in (params, given) if x)
    return f"`{cell.method}`" + (f" ({inner})" if inner else "")


def _table_section(paper: pub.Paper, table: pub.Table, rows: list, results: list) -> list[str]:
    lines = [f"### {paper.name}/{table.name}", "", table.title, "", f"Published setup: {_setups(table, results)}", ""]
    if rows:
        lines += ["| row | column | arch | published | ours | n | Δ [95 %] | margin | verdict | runs |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(_escape(x) for x in r) + " |" for r in rows] + [""]
    if results:
        lines += ["| claim | comparisons (ours) | verdict | paper |", "| --- | --- | --- | --- |"]
        lines += [f"| {_escape(r.claim.text)} | {_escape('; '.join(r.numbers))} | {r.verdict} | {r.on_paper} |"
                  for r in results] + [""]
    return lines


def _setups(table: pub.Table, results: list) -> str:
    setups = {n.cell.setup for n in table.numbers} | {c.setup for r in results for p in r.claim.pairs for c in p}
    setups = sorted(setups | {table.setup}, key=lambda s: s.name)
    return "; ".join(f"{s.dataset}, {s.arch}" + (f", {s.epochs} epochs" if s.epochs else "")
                     + (f" ({s.note})" if s.note else "") for s in setups)


def _escape(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
