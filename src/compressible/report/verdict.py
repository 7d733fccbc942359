"""Verdicts from the uncertainty of two means: a 95 % interval of their difference judged against
an equivalence margin (two one-sided tests, as in bioequivalence), for numbers and for claims.

Each side is a mean with a spread and the count it was taken over; its standard error is
spread/√n. The interval of Δ = left − right is Welch's: Δ ± t(0.975, ν)·√(se_l² + se_r²) with ν
the Welch–Satterthwaite degrees of freedom. We use Student's t rather than the normal quantile
because both sides are means of 2–10 runs: with 3 seeds (ν = 2) the 97.5 % quantile is 4.30, and
a normal 1.96 would cover the true difference only about 81 % of the time, calling noise a
reproduction. A side without a spread (a paper's number printed without a std, one run of ours)
contributes no uncertainty; where neither side has one, no interval exists and the verdict waits
for more runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from scipy import stats

LEVEL = 0.95
DEFAULT_MARGIN = 0.5  # pp: papers print one decimal of a mean; a smaller difference is not a finding
MAX_SEEDS = 1000  # beyond this, "more seeds" is no answer: the other side's uncertainty dominates
EPS = 1e-9  # absorbs binary rounding of decimal differences (75.9 - 75.3 = 0.6000000000000085)


@dataclass(frozen=True)
class Side:
    """A mean, the spread (sample std, ddof 1) of the values it averages, and their count.
    ``spread`` None: unknown (a paper's number without a std, or a single run)."""
    mean: float
    spread: Optional[float]
    n: int

    @property
    def var_of_mean(self) -> float:
        return 0.0 if self.spread is None else self.spread ** 2 / self.n


@dataclass(frozen=True)
class Interval:
    delta: float
    low: float
    high: float
    se: float
    df: Optional[float]  # None: no side has a spread (low = high = delta, not an interval)

    @property
    def known(self) -> bool:
        return self.df is not None

    def text(self) -> str:
        if not self.known:
            return f"{self.delta:+.2f} (no spread)"
        return f"{self.delta:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def welch(left: Side, right: Side, level: float = LEVEL) -> Interval:
    """The ``level`` interval of left.mean − right.mean (Welch's t)."""
    delta = left.mean - right.mean
    terms = [(s.var_of_mean, s.n - 1) for s in (left, right) if s.spread is not None and s.n > 1]
    var = math.fsum(v for v, _ in terms)
    if not terms:
        return Interval(delta, delta, delta, 0.0, None)
    if var == 0.0:
        return Interval(delta, delta, delta, 0.0, math.inf)
    df = var ** 2 / math.fsum(v ** 2 / d for v, d in terms)
    half = float(stats.t.ppf(0.5 + level / 2, df)) * math.sqrt(var)
    return Interval(delta, delta - half, delta + half, math.sqrt(var), df)


# ---------------------------------------------------------------- numbers

@dataclass(frozen=True)
class Verdict:
    word: str  # reproduced / deviates / inconclusive
    interval: Interval
    margin: float
    advice: str = ""  # for inconclusive: which side needs more runs, and how many


def judge_number(ours: Side, paper: Side, margin: float = DEFAULT_MARGIN) -> Verdict:
    """Reproduced when the interval of Δ = ours − paper lies inside ±margin, deviates when it lies
    outside, inconclusive when it straddles a bound."""
    iv = welch(ours, paper)
    if iv.known and iv.high <= margin + EPS and iv.low >= -margin - EPS:
        return Verdict("reproduced", iv, margin)
    if iv.known and (iv.low > margin + EPS or iv.high < -margin - EPS):
        return Verdict("deviates", iv, margin)
    return Verdict("inconclusive", iv, margin, _advice(ours, paper, margin))


def _advice(ours: Side, paper: Side, margin: float) -> str:
    """Which side's uncertainty keeps the interval across a bound, and the seeds of ours that
    would resolve it if our spread stayed as observed (the paper's n is what it is)."""
    gap = abs(abs(ours.mean - paper.mean) - margin)
    if gap <= EPS:
        return "|Δ| equals the margin: no number of seeds decides it"
    paper_alone = welch(Side(ours.mean, None, 1), paper)  # the paper's half-width with ours exact
    if paper_alone.known and paper_alone.high - paper_alone.delta >= gap - EPS:
        return (f"the paper's side: its {paper.n} runs (std {paper.spread:g}) alone leave "
                f"±{paper_alone.high - paper_alone.delta:.2f} pp, more than the {gap:.2f} pp to the margin")
    if ours.spread is None or ours.n < 2:
        return f"ours: {ours.n} run, no spread; run ≥ 2 seeds"
    for n in range(ours.n + 1, MAX_SEEDS + 1):
        iv = welch(Side(ours.mean, ours.spread, n), paper)
        if iv.high - iv.delta < gap - EPS:
            return f"ours: ~{n} seeds would suffice at the observed spread {ours.spread:.2f}"
    return f"ours: more than {MAX_SEEDS} seeds at the observed spread {ours.spread:.2f}"


# ---------------------------------------------------------------- claims

def judge_claim(kind: str, threshold: float, left: Side, right: Side) -> tuple[str, Interval]:
    """holds / does not hold / inconclusive for one comparison of a claim.

    greater (left − right > threshold) holds when the whole interval of left − right lies above
    the threshold, fails when it lies at or below it; not_below (left ≥ right − threshold) holds
    when the interval lies above −threshold, fails when it lies below; within (|left − right| ≤
    threshold) is the equivalence test of a number. In between the data cannot tell.
    """
    iv = welch(left, right)
    if not iv.known:
        return "inconclusive", iv
    if kind == "within":
        word = judge_number(left, right, threshold).word
        return {"reproduced": "holds", "deviates": "does not hold"}.get(word, "inconclusive"), iv
    bound = threshold if kind == "greater" else -threshold
    if iv.low > bound + EPS or (kind == "not_below" and iv.low >= bound - EPS):
        return "holds", iv
    if iv.high < bound - EPS or (kind == "greater" and iv.high <= bound + EPS):
        return "does not hold", iv
    return "inconclusive", iv
