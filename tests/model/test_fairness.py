"""Fairness at the band thresholds (models/building/fairness.py): values against hand computation on a small
frame, small-cell suppression, the largest gap, plots, and the model card's section."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, gamma

from models.building import fairness as F

MOD, HIGH = 0.3, 0.6


def _frame() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """20 women, 20 men, 6 'other' (a small cell). Risks are 0.1 (low), 0.4 (moderate) or 0.7
    (high); counts per sex are written out so every figure can be counted by hand below."""
    rows = []

    def add(sex, p, y, k):
        rows.extend([(sex, p, y)] * k)

    # women: 10 low (1 event), 6 moderate (3 events), 4 high (3 events): 7 events
    add("female", 0.1, 1, 1), add("female", 0.1, 0, 9)
    add("female", 0.4, 1, 3), add("female", 0.4, 0, 3)
    add("female", 0.7, 1, 3), add("female", 0.7, 0, 1)
    # men: 4 low (0 events), 8 moderate (4 events), 8 high (6 events): 10 events
    add("male", 0.1, 0, 4)
    add("male", 0.4, 1, 4), add("male", 0.4, 0, 4)
    add("male", 0.7, 1, 6), add("male", 0.7, 0, 2)
    # other: 6 clients, suppressed whatever they show
    add("other", 0.7, 1, 6)
    df = pd.DataFrame(rows, columns=["sex", "p", "y"])
    df["age"] = 40
    df["service_id"] = "S1"
    return df["y"].to_numpy(float), df["p"].to_numpy(float), df


def _row(t: pd.DataFrame, sub: str, level: str, measure: str) -> pd.Series:
    r = t[(t.subgroup == sub) & (t.level == level) & (t.measure == measure)]
    assert len(r) == 1
    return r.iloc[0]


def _wilson(k: int, n: int) -> tuple[float, float, float]:
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return k / n, ci.low, ci.high


def test_values_match_hand_counts():
    y, p, df = _frame()
    t = F.fairness_table(y, p, df, MOD, HIGH)
    # women: flagged moderate-or-higher 10 of 20, high 4 of 20; events 7, of which 6 flagged
    # moderate-or-higher and 3 high; of 10 flagged moderate-or-higher 6 have the outcome.
    want = {
        "flag_rate_moderate": (10, 20),
        "flag_rate_high": (4, 20),
        "sensitivity_moderate": (6, 7),  # denominator 7 < 10: suppressed
        "ppv_moderate": (6, 10),
        "ppv_high": (3, 4),  # denominator 4: suppressed
    }
    for measure, (k, n) in want.items():
        r = _row(t, "sex", "female", measure)
        if n < 10:
            assert r.suppressed and math.isnan(r.value) and r.denominator == n
            continue
        v, lo, hi = _wilson(k, n)
        assert not r.suppressed
        assert (r.value, r.lo, r.hi) == pytest.approx((v, lo, hi), abs=1e-9)
        assert (r.numerator, r.denominator) == (k, n)
    # men: 16 of 20 flagged moderate+, events 10 with 10 flagged moderate+ and 6 high
    r = _row(t, "sex", "male", "sensitivity_moderate")
    assert (r.value, r.lo, r.hi) == pytest.approx(_wilson(10, 10), abs=1e-9)
    r = _row(t, "sex", "male", "sensitivity_high")
    assert (r.value, r.lo, r.hi) == pytest.approx(_wilson(6, 10), abs=1e-9)
    # O/E for women: 7 observed, expected 10 x 0.1 + 6 x 0.4 + 4 x 0.7 = 6.2; exact Poisson CI
    r = _row(t, "sex", "female", "oe_ratio")
    e = 10 * 0.1 + 6 * 0.4 + 4 * 0.7
    want_oe = (7 / e, gamma.ppf(0.025, 7) / e, gamma.ppf(0.975, 8) / e)
    assert (r.value, r.lo, r.hi) == pytest.approx(want_oe, rel=1e-9)


def test_small_cells_are_suppressed_whole():
    y, p, df = _frame()
    t = F.fairness_table(y, p, df, MOD, HIGH)
    other = t[(t.subgroup == "sex") & (t.level == "other")]
    assert len(other) == len(F.MEASURES)
    assert other["suppressed"].all() and (other["n"] == 6).all()
    assert other[["value", "lo", "hi", "numerator", "denominator"]].isna().all().all()
    # every subgroup is reported; absent columns are one "missing" level
    assert set(t.subgroup) == set(F.SUBGROUPS)
    assert set(t[t.subgroup == "ethnicity"].level) == {"missing"}
    assert set(t[t.subgroup == "age_band"].level) == {"35-44"}
    shown = F.display_table(t)
    assert (shown[shown.level == "other"].iloc[0, 3:] == "suppressed").all()


def test_largest_gap_with_mover_interval():
    y, p, df = _frame()
    t = F.fairness_table(y, p, df, MOD, HIGH)
    g = F.largest_gaps(t)
    row = g[(g.subgroup == "sex") & (g.measure == "flag_rate_moderate")].iloc[0]
    assert (row.highest, row.lowest) == ("male", "female")  # "other" is suppressed
    a, b = _wilson(16, 20), _wilson(10, 20)
    d = a[0] - b[0]
    lo = d - math.sqrt((a[0] - a[1]) ** 2 + (b[2] - b[0]) ** 2)
    hi = d + math.sqrt((a[2] - a[0]) ** 2 + (b[0] - b[1]) ** 2)
    assert (row.gap, row.lo, row.hi) == pytest.approx((0.3, lo, hi), abs=1e-9)
    # one level only: no gap
    one = g[(g.subgroup == "service_id") & (g.measure == "flag_rate_high")].iloc[0]
    assert math.isnan(one.gap) and pd.isna(one.highest)


def test_one_plot_per_measure_and_card_section(tmp_path):
    from models.building.card import render_model_card

    y, p, df = _frame()
    t = F.fairness_table(y, p, df, MOD, HIGH)
    paths = F.save_plots(t, tmp_path)
    assert set(paths) == set(F.MEASURES)
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in paths.values())
    images = {f"Fairness: {m}": (F.CARD_SECTION, path) for m, path in paths.items()}
    md, html = render_model_card(
        {"fairness": t, "fairness_gaps": F.largest_gaps(t), "images": images}
    )
    assert f"## {F.CARD_SECTION}" in md
    section = md.split(f"## {F.CARD_SECTION}")[1].split("\n## ")[0]
    assert "suppressed" in section and "0.50 (" in section  # women flagged moderate+: 10 of 20
    assert html.count("data:image/png;base64,") == len(F.MEASURES)


def test_misaligned_input_is_refused():
    y, p, df = _frame()
    with pytest.raises(ValueError, match="rows"):
        F.fairness_table(y[:-1], p[:-1], df, MOD, HIGH)
