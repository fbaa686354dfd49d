"""Hand-computed checks of questionnaire scoring (keys from features/instruments.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from features.instruments import SCALES, item_fields
from features.scoring import (
    ITEMS_USED,
    _to_float,
    attachment_style,
    model_of_others,
    model_of_self,
    parse_items_used,
    score_attachment,
    score_intake,
    score_record,
    score_wai,
)


def items(prefix: str, values: list) -> dict:
    return {f"{prefix}_{i:02d}": v for i, v in enumerate(values, start=1)}


def one(record: dict) -> tuple[dict, list]:
    """Score a record both ways and insist the paths agree."""
    scored, errors = score_record(record)
    res = score_intake(pd.DataFrame([record]))
    assert res.errors == errors
    assert res.items_used_at(0) == scored[ITEMS_USED]
    for s in SCALES:
        if s.field in scored:
            a, b = scored[s.field], res.frame[s.field].iloc[0]
            if a is None or (isinstance(a, float) and math.isnan(a)):
                assert pd.isna(b)
            else:
                assert a == b
    return scored, errors


# --- TCU -------------------------------------------------------------------------------------


def test_social_support_reflects_item_6():
    # 6th item reflected: 1 -> 5. Keyed sum 5+4+3+4+5+5+3+4+2 = 35; 35/9*10.
    rec = {"admission_id": "A1", **items("tcu_ss", [5, 4, 3, 4, 5, 1, 3, 4, 2])}
    scored, errors = one(rec)
    assert errors == []
    assert scored["social_support"] == pytest.approx(350 / 9)
    assert scored[ITEMS_USED]["social_support"] == [f"tcu_ss_{i:02d}" for i in range(1, 10)]


def test_treatment_readiness_reflects_items_2_3_6():
    # keyed: 4, 6-2, 6-1, 5, 3, 6-2, 4, 4 = 33; 33/8*10 = 41.25
    scored, errors = one({"admission_id": "A1", **items("tcu_tr", [4, 2, 1, 5, 3, 2, 4, 4])})
    assert errors == []
    assert scored["mot_treatment_readiness"] == pytest.approx(41.25)


def test_prorate_one_missing_of_nine():
    # item 9 missing (1/9 = 11% <= 20%): mean of the other eight (keyed sum 33) x 10
    vals = [5, 4, 3, 4, 5, 1, 3, 4, None]
    scored, errors = one({"admission_id": "A1", **items("tcu_ss", vals)})
    assert errors == []
    assert scored["social_support"] == pytest.approx(41.25)
    assert "tcu_ss_09" not in scored[ITEMS_USED]["social_support"]


def test_two_of_eight_missing_is_refused():
    # 2/8 = 25% > 20%: the scale is missing
    vals = [4, 2, 1, 5, None, 2, float("nan"), 4]
    scored, errors = one({"admission_id": "A1", **items("tcu_tr", vals)})
    assert errors == []
    assert scored["mot_treatment_readiness"] is None
    assert "mot_treatment_readiness" not in scored[ITEMS_USED]


def test_too_few_items_keeps_a_given_score():
    vals = [4, 2, None, None, None, None, None, None]
    scored, errors = one(
        {"admission_id": "A1", "mot_treatment_readiness": 30, **items("tcu_tr", vals)}
    )
    assert errors == []
    assert scored["mot_treatment_readiness"] == 30


def test_missing_item_columns_count_as_missing():
    # a table that carries only 8 of the 9 social support items: 1 missing, prorated
    df = pd.DataFrame([{"admission_id": "A1", **items("tcu_ss", [5, 4, 3, 4, 5, 1, 3, 4])}])
    res = score_intake(df)
    assert res.errors == []
    assert res.frame["social_support"].iloc[0] == pytest.approx(41.25)


# --- GHQ-12 and Brief COPE ---------------------------------------------------------------------


def test_ghq_sum():
    scored, errors = one({"admission_id": "A1", **items("ghq", [0, 1, 2, 3] * 3)})
    assert errors == []
    assert scored["psych_distress"] == 18


def test_ghq_sum_prorated():
    # 2 of 12 missing: 10 answered summing to 15 -> 15/10*12 = 18
    vals = [1, 2] * 5 + [None, None]
    scored, _ = one({"admission_id": "A1", **items("ghq", vals)})
    assert scored["psych_distress"] == pytest.approx(18.0)


def test_cope_composite_means():
    rec = {"admission_id": "A1", **items("cope", [3] * 28)}
    # adaptive items: 2,5,7,10,12,14,15,17,20,23,24,25; avoidant: 1,3,4,6,8,9,11,13,16,19,21,26
    rec["cope_02"], rec["cope_05"] = 4, 1  # adaptive: (10*3 + 4 + 1)/12
    rec["cope_01"] = 1  # avoidant: (11*3 + 1)/12
    rec["cope_18"] = 4  # humour: in neither composite
    scored, errors = one(rec)
    assert errors == []
    assert scored["coping_adaptive"] == pytest.approx(35 / 12)
    assert scored["coping_avoidant"] == pytest.approx(34 / 12)
    assert "cope_18" not in scored[ITEMS_USED]["coping_adaptive"]
    assert len(scored[ITEMS_USED]["coping_avoidant"]) == 12


# --- conflicts and bad items -------------------------------------------------------------------


def test_item_scale_conflict_names_scale_and_admission():
    rec = {
        "admission_id": "A7",
        "social_support": 20,
        **items("tcu_ss", [5, 4, 3, 4, 5, 1, 3, 4, 2]),
    }
    scored, errors = one(rec)
    assert len(errors) == 1
    e = errors[0]
    assert (e.table, e.field, e.admission_id, e.value) == ("intake", "social_support", "A7", 20)
    assert "disagrees" in e.reason
    assert scored["social_support"] == 20  # left as given
    assert "social_support" not in scored[ITEMS_USED]


def test_agreeing_item_and_scale_accepted():
    # items give 38.89; a score rounded to 39 agrees within 0.5
    rec = {
        "admission_id": "A1",
        "social_support": 39,
        **items("tcu_ss", [5, 4, 3, 4, 5, 1, 3, 4, 2]),
    }
    scored, errors = one(rec)
    assert errors == []
    assert scored["social_support"] == pytest.approx(350 / 9)


def test_cope_tolerance_is_tighter():
    rec = {"admission_id": "A2", "coping_adaptive": 3.1, **items("cope", [3] * 28)}
    _, errors = one(rec)
    assert [(e.field, e.admission_id) for e in errors] == [("coping_adaptive", "A2")]
    rec["coping_adaptive"] = 3.05
    assert one(rec)[1] == []


def test_out_of_range_item_error():
    rec = {"admission_id": "A3", **items("tcu_ss", [5, 4, 7, 4, 5, 1, 3, 4, 2])}
    scored, errors = one(rec)
    assert len(errors) == 1
    e = errors[0]
    assert (e.field, e.admission_id, e.value) == ("tcu_ss_03", "A3", 7)
    assert "outside 1-5" in e.reason
    assert "social_support" not in scored or scored.get("social_support") is None


def test_non_integer_and_non_numeric_items():
    rec = {"admission_id": "A4", **items("ghq", [1.5] + [1] * 11), "tcu_se_01": "often"}
    _, errors = one(rec)
    assert [(e.field, e.admission_id) for e in errors] == [("tcu_se_01", "A4"), ("ghq_01", "A4")]
    assert errors[1].value == 1.5
    assert "whole number" in errors[1].reason


def test_no_items_leaves_scale_as_given():
    rec = {"admission_id": "A1", "social_support": 27.5, "psych_distress": None}
    scored, errors = one(rec)
    assert errors == []
    assert scored["social_support"] == 27.5 and scored["psych_distress"] is None
    assert scored[ITEMS_USED] == {}
    # item columns present but blank in this row: also left as given
    df = pd.DataFrame([rec, {"admission_id": "A2", **items("tcu_ss", [3] * 9)}])
    res = score_intake(df)
    assert res.frame["social_support"].tolist() == [27.5, 30.0]
    assert res.items_used.iloc[0] == ""


# --- both paths agree on a messy table -------------------------------------------------------


def _random_table(n: int, seed: int = 3, bad: float = 0.002, given: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict = {"admission_id": [f"A{i}" for i in range(n)]}
    for scale, code in item_fields():
        v = rng.integers(scale.low, scale.high + 1, n).astype(float)
        v[rng.random(n) < 0.07] = np.nan
        v[rng.random(n) < bad] = scale.high + 2
        cols[code] = v
    for s in SCALES:
        lo, hi = s.score_range
        g = rng.uniform(lo, hi, n).round(1)
        g[rng.random(n) >= given] = np.nan
        cols[s.field] = g
    return pd.DataFrame(cols)


@pytest.mark.parametrize("as_text", [False, True], ids=["numeric", "text"])
def test_score_record_equals_score_intake(as_text):
    # text: columns as validation/io.py loads a CSV (dtype "str")
    df = _random_table(400)
    if as_text:
        df = df.astype("str")
    res = score_intake(df)
    errors = []
    for i, rec in enumerate(df.to_dict("records")):
        scored, errs = score_record(rec)
        errors.extend(errs)
        assert scored[ITEMS_USED] == parse_items_used(res.items_used.iloc[i])
        for s in SCALES:
            # a given score the record path left untouched may still be text ("22.7")
            a, b = _to_float(scored[s.field]), _to_float(res.frame[s.field].iloc[i])
            assert math.isnan(a) == math.isnan(b), (i, s.field)
            if not math.isnan(b):
                assert a == b, (i, s.field)
    assert errors == res.errors
    assert {e.field for e in errors} & {s.field for s in SCALES}  # conflicts occurred
    assert any(e.field.startswith("tcu_") for e in errors)  # bad items occurred


def test_score_intake_scores_a_table_of_items_without_errors():
    # 5,000 rows with every item column, 7% items missing, no given scores. (Speed is measured by
    # bench/batch_throughput.py, not asserted here.)
    df = _random_table(5_000, bad=0.0, given=0.0)
    res = score_intake(df)
    assert res.errors == [] and res.frame["psych_distress"].notna().mean() > 0.9


# --- Relationship Questionnaire ----------------------------------------------------------------


def test_rq_style_and_models():
    assert attachment_style(6, 2, 3, 4) == "secure"
    assert attachment_style(2, 7, 3, 4) == "fearful"
    assert attachment_style(5, 5, 1, 1) == "undetermined"  # tie on the highest rating
    assert attachment_style(5, None, 1, 1) is None
    assert model_of_self(6, 2, 3, 4) == (6 + 4) - (3 + 2)
    assert model_of_others(6, 2, 3, 4) == (6 + 3) - (4 + 2)
    assert math.isnan(model_of_self(6, 2, float("nan"), 4))


def test_rq_vectorised_matches_scalar():
    df = pd.DataFrame(
        {
            "attach_secure": [6, 5, 5, 1],
            "attach_fearful": [2, 5, None, 7],
            "attach_preoccupied": [3, 1, 1, 2],
            "attach_dismissing": [4, 1, 1, 3],
        }
    )
    out = score_attachment(df)
    for i, row in enumerate(df.itertuples(index=False)):
        style = attachment_style(*row)
        assert (out["attach_style"].iloc[i] if style is not None else None) == style or (
            style is None and pd.isna(out["attach_style"].iloc[i])
        )
        exp = model_of_self(*row)
        got = out["model_of_self"].iloc[i]
        assert (math.isnan(exp) and math.isnan(got)) or exp == got
    assert out["attach_style"].tolist()[:2] == ["secure", "undetermined"]
    assert out["model_of_others"].iloc[3] == (1 + 2) - (3 + 7)


# --- WAI-S ------------------------------------------------------------------------------------


def wai(values: list) -> dict:
    return items("wai", values)


def test_wai_reverse_scores_items_4_and_10_and_voids():
    base = [5] * 12
    base[3], base[9] = 2, 1  # reversed: 8-2 = 6, 8-1 = 7 -> (10*5 + 13)/12
    two_missing = [None, None] + [4] * 10
    three_missing = [None, None, None] + [4] * 9
    df = pd.DataFrame([wai(base), wai(two_missing), wai(three_missing)])
    df.insert(0, "admission_id", ["A1", "A2", "A3"])
    s = score_wai(df)
    assert s.iloc[0] == pytest.approx(63 / 12)
    assert s.iloc[1] == pytest.approx((8 * 4 + 2 * 4) / 10)  # items 4 and 10 reversed: 8-4 = 4
    assert math.isnan(s.iloc[2])


def test_wai_out_of_range_raises():
    df = pd.DataFrame([{"admission_id": "A9", **wai([5] * 11 + [8])}])
    with pytest.raises(DataError) as exc:
        score_wai(df)
    e = exc.value.errors[0]
    assert (e.table, e.field, e.admission_id, e.value) == ("alliance", "wai_12", "A9", 8)
