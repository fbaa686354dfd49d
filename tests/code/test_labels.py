"""Hand-computed checks of the label builder (data contract, "The label")."""

from __future__ import annotations

import pandas as pd
import pytest

from features.errors import DataError
from features.labels import build_labels
from features.settings import LabelConfig


def rating(aid: str, week: int, rater: str, level: float, missing: int = 0) -> dict:
    """A WAI-S rating whose item mean after reverse-scoring is `level` (integer levels 1-7)."""
    row = {"admission_id": aid, "week": week, "rater": rater}
    for i in range(1, 13):
        row[f"wai_{i:02d}"] = 8 - level if i in (4, 10) else level
    for i in range(1, missing + 1):
        row[f"wai_{i:02d}"] = None
    return row


def table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def intake(*ids: str, date: str = "2024-03-01") -> pd.DataFrame:
    return pd.DataFrame({"admission_id": list(ids), "admission_date": [date] * len(ids)})


def test_rater_choice():
    al = table(rating("A1", 1, "client", 4), rating("A1", 1, "counsellor", 6))
    client = build_labels(al, LabelConfig(rater="client", threshold=5.0))
    counsellor = build_labels(al, LabelConfig(rater="counsellor", threshold=5.0))
    assert client.labels.to_dict() == {"A1": 1}
    assert client.score.to_dict() == {"A1": 4.0}
    assert counsellor.labels.to_dict() == {"A1": 0}
    assert counsellor.definition["rater"] == "counsellor"


def test_reverse_scored_items_matter():
    row = {"admission_id": "A1", "week": 1, "rater": "client"}
    row.update({f"wai_{i:02d}": 5 for i in range(1, 13)})  # items 4 and 10 -> 3: mean 56/12
    res = build_labels(table(row), LabelConfig(threshold=5.0))
    assert res.score["A1"] == pytest.approx(56 / 12)
    assert res.labels["A1"] == 1


def test_threshold_is_strict_and_weeks_averaged():
    # weeks 4 and 6 average to exactly 5.0: not below a threshold of 5.0
    al = table(rating("A1", 1, "client", 4), rating("A1", 2, "client", 6))
    assert build_labels(al, LabelConfig(threshold=5.0)).labels["A1"] == 0
    assert build_labels(al, LabelConfig(threshold=5.5)).labels["A1"] == 1
    assert build_labels(al, LabelConfig(threshold=5.0)).score["A1"] == 5.0


def test_void_ratings_ignored_and_counted():
    al = table(
        rating("A1", 1, "client", 1, missing=3),  # void: would pull the mean down
        rating("A1", 2, "client", 6, missing=2),  # 2 missing: still valid
        rating("A2", 1, "client", 2, missing=3),  # A2 has only a void rating
    )
    res = build_labels(al, LabelConfig(threshold=5.0))
    assert res.labels.to_dict() == {"A1": 0}
    assert res.score["A1"] == 6.0
    assert res.counts["void_ratings"] == 2
    assert res.counts["unlabelled_no_valid_rating"] == 1
    assert res.counts["early_leavers"] == 0  # A2 was rated (void), so not an early leaver


def test_min_valid_weeks():
    al = table(
        rating("A1", 1, "client", 3),
        rating("A1", 2, "client", 3),
        rating("A2", 1, "client", 3),
        rating("A2", 2, "client", 3, missing=5),
    )
    res = build_labels(al, LabelConfig(threshold=5.0, min_valid_weeks=2))
    assert res.labels.to_dict() == {"A1": 1}
    assert res.counts["unlabelled_too_few_weeks"] == 1
    assert res.per_rater.loc["A2", "client_valid_weeks"] == 1


def test_early_leavers_without_episodes():
    al = table(rating("A1", 1, "client", 3), rating("A2", 1, "client", 6))
    res = build_labels(al, LabelConfig(), intake=intake("A1", "A2", "A3"))
    assert list(res.early_leavers) == ["A3"]
    assert "A3" not in res.labels.index
    c = res.counts
    assert (c["admissions"], c["labelled"], c["low"], c["early_leavers"]) == (3, 2, 1, 1)
    assert c["labelled"] + c["unlabelled"] + c["early_leavers"] == c["admissions"]


def test_early_leavers_from_episodes():
    al = table(
        rating("A1", 1, "client", 3),
        rating("A5", 1, "client", 2, missing=4),  # rated, but void
    )
    episodes = pd.DataFrame(
        {
            "admission_id": ["A1", "A3", "A4", "A5", "A6"],
            "discharge_date": ["2024-03-04", "2024-03-05", None, "2024-03-06", "2024-03-20"],
            "discharge_reason": ["dropped_out", "dropped_out", "ongoing", "other", "dropped_out"],
        }
    )
    res = build_labels(
        al, LabelConfig(), intake=intake("A1", "A3", "A4", "A5", "A6"), episodes=episodes
    )
    # A1 left early but was validly rated: labelled. A3, A5: left within 7 days with no valid
    # rating. A4: ongoing, unrated: unlabelled. A6: left after 19 days: unlabelled.
    assert sorted(res.early_leavers) == ["A3", "A5"]
    assert res.labels.to_dict() == {"A1": 1}
    assert res.counts["unlabelled"] == 2
    assert res.counts["low"] == 1


def test_either_rater():
    al = table(
        rating("A1", 1, "client", 6),
        rating("A1", 1, "counsellor", 4),  # counsellor sees a weak alliance -> low
        rating("A2", 1, "client", 6),  # only the client rated -> labelled, not low
        rating("A3", 1, "client", 6),
        rating("A3", 2, "client", 6),
        rating("A3", 1, "counsellor", 2),  # one week only: below min_valid_weeks=2, ignored
    )
    res = build_labels(al, LabelConfig(rater="either", threshold=5.0))
    assert res.labels.to_dict() == {"A1": 1, "A2": 0, "A3": 1}
    assert res.score.to_dict() == {"A1": 4.0, "A2": 6.0, "A3": 2.0}
    res2 = build_labels(al, LabelConfig(rater="either", threshold=5.0, min_valid_weeks=2))
    assert res2.labels.to_dict() == {"A3": 0}
    assert res2.counts["unlabelled_too_few_weeks"] == 2


def test_counts_partition_and_definition():
    al = table(rating("A1", 1, "client", 3), rating("A1", 4, "client", 3))  # week 4 ignored
    res = build_labels(al, LabelConfig(threshold=4.5, min_valid_weeks=1))
    assert res.counts["ratings_ignored"] == 1
    assert res.definition["threshold"] == 4.5
    assert res.definition["min_valid_weeks"] == 1
    assert res.labels.dtype.kind == "i" and res.labels.name == "low_alliance"


def test_unknown_admission_and_duplicates_are_errors():
    al = table(rating("A9", 1, "client", 3))
    with pytest.raises(DataError) as exc:
        build_labels(al, LabelConfig(), intake=intake("A1"))
    e = exc.value.errors[0]
    assert (e.table, e.field, e.admission_id) == ("alliance", "admission_id", "A9")
    dup = table(rating("A1", 1, "client", 3), rating("A1", 1, "client", 4))
    with pytest.raises(DataError) as exc:
        build_labels(dup, LabelConfig())
    e = exc.value.errors[0]
    assert (e.field, e.admission_id, e.value) == ("week", "A1", 1)


def test_label_over_some_weeks_only():
    """weeks=(2, 3): the label of the weeks still to come after week 1 (issue 19); early leavers
    are still decided on all weeks, and a client rated only in week 1 is unlabelled."""
    al = table(
        rating("A1", 1, "client", 3),
        rating("A1", 2, "client", 6),
        rating("A1", 3, "client", 6),
        rating("A2", 1, "client", 6),
        rating("A2", 3, "client", 4),
        rating("A3", 1, "client", 2),
    )
    res = build_labels(al, LabelConfig(rater="client"), weeks=(2, 3))
    assert res.labels.to_dict() == {"A1": 0, "A2": 1}
    assert res.score.to_dict() == {"A1": 6.0, "A2": 4.0}
    assert res.counts["unlabelled"] == 1 and res.counts["early_leavers"] == 0
    assert res.definition["weeks"] == [2, 3]
    full = build_labels(al, LabelConfig(rater="client"))
    assert full.labels.to_dict() == {"A1": 0, "A2": 0, "A3": 1}
    assert full.definition["weeks"] == [1, 2, 3]
    with pytest.raises(ValueError, match="subset"):
        build_labels(al, LabelConfig(rater="client"), weeks=(0, 4))
