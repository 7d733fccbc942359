"""The verdict rule against hand-computed cases: Welch's 95 % t interval of Δ = ours − paper from
both standard errors, judged against an equivalence margin (report/verdict.py)."""
from __future__ import annotations

import math

import pytest

from compressible.report.verdict import Side, judge_claim, judge_number, welch

T_2, T_4 = 4.302653, 2.776445  # Student's t, 97.5 % quantile, 2 and 4 degrees of freedom (tables)


def test_equal_spreads_give_the_pooled_t_interval_by_hand():
    # 3 seeds each, std 0.1 each: se = √(0.01/3 + 0.01/3) = 0.081650; Welch ν = 4 exactly
    iv = welch(Side(90.1, 0.1, 3), Side(90.0, 0.1, 3))
    assert iv.se == pytest.approx(math.sqrt(0.02 / 3))
    assert iv.df == pytest.approx(4.0)
    assert (iv.low, iv.high) == pytest.approx((0.1 - T_4 * 0.081650, 0.1 + T_4 * 0.081650), abs=1e-5)


def test_welch_satterthwaite_degrees_of_freedom_by_hand():
    # ours 0.2/√3 (v1 = 0.013333), paper 0.1/√3 (v2 = 0.003333):
    # ν = (v1 + v2)² / (v1²/2 + v2²/2) = 0.00027778 / 0.000094444 = 2.9412
    iv = welch(Side(90.2, 0.2, 3), Side(90.0, 0.1, 3))
    assert iv.df == pytest.approx(2.941176, abs=1e-6)


def test_a_t_interval_is_wider_than_a_normal_one_at_three_seeds():
    # with 3 seeds of ours and a std-less paper number: ν = 2, half-width 4.30·se, not 1.96·se
    iv = welch(Side(90.0, 0.3, 3), Side(90.0, None, 1))
    assert iv.high - iv.delta == pytest.approx(T_2 * 0.3 / math.sqrt(3), rel=1e-6)


@pytest.mark.parametrize("ours, paper, word", [
    # Δ = 0.1 ± 2.776·0.0816 = [−0.13, +0.33] inside ±0.5
    (Side(90.1, 0.1, 3), Side(90.0, 0.1, 3), "reproduced"),
    # Δ = 2.0, [1.77, 2.23] wholly above +0.5
    (Side(92.0, 0.1, 3), Side(90.0, 0.1, 3), "deviates"),
    # Δ = −2.0 below −0.5: deviates on the other side too
    (Side(88.0, 0.1, 3), Side(90.0, 0.1, 3), "deviates"),
    # Δ = 0.2, se 0.1291, ν 2.94: [−0.22, +0.62] crosses +0.5
    (Side(90.2, 0.2, 3), Side(90.0, 0.1, 3), "inconclusive"),
    # one run each, no std: no interval exists
    (Side(89.0, None, 1), Side(90.0, None, 1), "inconclusive"),
])
def test_verdicts_by_hand(ours, paper, word):
    assert judge_number(ours, paper, 0.5).word == word


def test_a_noisy_run_the_old_rule_called_reproduced_is_inconclusive():
    # seeds 86, 90, 94 (mean 90, std 4) against 89.0 ± 0.1 over 3 seeds. The old rule:
    # |Δ| = 1 ≤ max(2·0.1, 2·4, 0.5) = 8 -> "reproduced". Now: se = √(16/3 + 0.01/3) = 2.3101,
    # ν ≈ 2.0, Δ = 1 ± 4.30·2.31 = [−8.93, +10.93]: it straddles both bounds.
    v = judge_number(Side(90.0, 4.0, 3), Side(89.0, 0.1, 3), 0.5)
    assert v.word == "inconclusive"
    assert (v.interval.low, v.interval.high) == pytest.approx((-8.928, 10.928), abs=1e-3)
    # to show a deviation beyond 0.5 pp, t·se must fall under |Δ| − 0.5 = 0.5: √(16/n) ≲ 0.5/1.97
    assert v.advice == "ours: ~263 seeds would suffice at the observed spread 4.00"


def test_advice_names_the_side_that_needs_more_runs():
    # 2 seeds of ours at std 0.2, Δ = 0.1: 263 would be absurd; 3 suffice? t(2)·0.2/√3 = 0.497 > 0.4
    v = judge_number(Side(90.1, 0.2, 2), Side(90.0, None, 1), 0.5)
    assert v.word == "inconclusive" and v.advice == "ours: ~4 seeds would suffice at the observed spread 0.20"
    # the paper's 3 seeds at std 1.0 alone give 4.303·0.577 = ±2.48 > 0.4: no number of ours suffices
    v = judge_number(Side(90.1, 0.2, 3), Side(90.0, 1.0, 3), 0.5)
    assert v.advice == "the paper's side: its 3 runs (std 1) alone leave ±2.48 pp, more than the 0.40 pp to the margin"
    # a std-less paper number and a huge spread of ours: 4.0/√1000·1.96 = 0.25 > 0.1
    assert judge_number(Side(90.4, 4.0, 3), Side(90.0, None, 1), 0.5).advice == (
        "ours: more than 1000 seeds at the observed spread 4.00")
    assert "run ≥ 2 seeds" in judge_number(Side(90.0, None, 1), Side(91.0, None, 1)).advice


def test_the_margin_is_the_tables_choice():
    ours, paper = Side(91.0, 0.1, 3), Side(90.0, 0.1, 3)  # Δ = 1.0 ± 0.23
    assert judge_number(ours, paper, 0.5).word == "deviates"
    assert judge_number(ours, paper, 1.5).word == "reproduced"


def test_claims_need_the_interval_to_exclude_the_reversed_order():
    tiny = judge_claim("greater", 0.0, Side(60.01, 0.01, 3), Side(60.0, 0.01, 3))
    assert tiny[0] == "inconclusive"  # Δ 0.01 ± 0.023: 0.01 pp of noise no longer "holds"
    assert judge_claim("greater", 0.0, Side(62.0, 0.5, 3), Side(60.0, 0.5, 3))[0] == "holds"  # [0.87, 3.13]
    assert judge_claim("greater", 3.0, Side(62.0, 0.5, 3), Side(60.0, 0.5, 3))[0] == "inconclusive"
    assert judge_claim("greater", 0.0, Side(58.0, 0.5, 3), Side(60.0, 0.5, 3))[0] == "does not hold"
    # not_below with tolerance 1: left − right = −0.5 ± 0.04 stays above −1
    assert judge_claim("not_below", 1.0, Side(59.5, 0.01, 3), Side(60.0, 0.01, 3))[0] == "holds"
    assert judge_claim("not_below", 1.0, Side(58.0, 0.01, 3), Side(60.0, 0.01, 3))[0] == "does not hold"
    assert judge_claim("within", 0.5, Side(60.1, 0.1, 3), Side(60.0, 0.1, 3))[0] == "holds"
    assert judge_claim("greater", 0.0, Side(70.0, None, 1), Side(60.0, None, 1))[0] == "inconclusive"
