"""Validation: GX table suites, the one-record checker, the report and the CLI.

GX costs about 1.5 s per validation of the small fixture, so the corruption tests share ONE run
over a dataset carrying one corruption per admission, and each test looks for its own error.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from features.catalog import SCORING_RECORD
from features.settings import ValidationConfig
from harness.cohort import make_valid_tables
from validation.io import TableLoadError, load_tables
from validation.record import check_record, record_json_schema
from validation.report import validate_tables
from validation.suites import training_sanity

# One worker builds the corrupted tables once: session fixtures are built per worker, and with
# this file's tests split across two workers they were built twice.
pytestmark = pytest.mark.xdist_group("validation")

# One corruption per admission: (table, admission_id, field, bad value).
CORRUPTIONS = [
    ("intake", "A0002", "sex", "Male"),
    ("intake", "A0003", "age", "abc"),
    ("intake", "A0004", "age", "120"),
    ("intake", "A0011", "admission_date", "2099-01-01"),
    ("intake", "A0013", "age_first_use", "60"),
    ("intake", "A0014", "counsellor_id", "C99"),
    ("intake", "A0015", "age", "35.5"),
    ("intake", "A0016", "tcu_ss_01", "6"),
    ("intake", "A0017", "legal_pressure", "yes"),
    ("episodes", "A0012", "discharge_date", "2001-01-01"),
]


def _set(df: pd.DataFrame, admission_id: str, field: str, value) -> None:
    df.loc[df["admission_id"] == admission_id, field] = value


@pytest.fixture(scope="session")
def corrupted():
    t = make_valid_tables()
    for table, aid, field, value in CORRUPTIONS:
        _set(t[table], aid, field, value)
    intake = t["intake"]
    intake.loc[intake["admission_id"] == "A0005", "admission_id"] = "A0006"  # duplicate id
    al = t["alliance"]
    orphan = al.iloc[[0]].assign(admission_id="ZZZ9")
    dup = al[al["admission_id"] == "A0010"].iloc[[0]]
    t["alliance"] = pd.concat([al, orphan, dup], ignore_index=True)
    t["episodes"] = t["episodes"].drop(columns=["discharge_reason"])  # missing required column
    t["counsellors"] = t["counsellors"].rename(columns={"years_experience": "years_experiance"})
    t["intake"]["notes_internal"] = "x"  # unknown column: a warning only
    return t, validate_tables(t)


def _find(report, table, field, admission_id=None, rule=None):
    return [
        (e, r)
        for e, r in zip(report.errors, report.rules, strict=True)
        if e.table == table
        and e.field == field
        and (admission_id is None or e.admission_id == admission_id)
        and (rule is None or r == rule)
    ]


# ------------------------------------------------------------------------------------- tables


def test_clean_fixture_passes(valid_tables):
    report = validate_tables(valid_tables)
    assert report.errors == [], [str(e) for e in report.errors]
    assert not report.blocking
    assert set(report.tables) == {"intake", "counsellors", "alliance", "episodes"}
    assert report.summary_rows() == []


@pytest.mark.parametrize(
    "table,admission_id,field,value,rule",
    [
        ("intake", "A0002", "sex", "Male", "code"),
        ("intake", "A0003", "age", "abc", "type"),
        ("intake", "A0015", "age", "35.5", "type"),
        ("intake", "A0004", "age", "120", "range"),
        ("intake", "A0016", "tcu_ss_01", "6", "range"),
        ("intake", "A0017", "legal_pressure", "yes", "type"),
        ("intake", "A0011", "admission_date", "2099-01-01", "date_range"),
        ("intake", "A0013", "age_first_use", "60", "not_above"),
        ("intake", "A0014", "counsellor_id", "C99", "in_counsellors"),
        ("episodes", "A0012", "discharge_date", "2001-01-01", "not_before_admission"),
        ("alliance", "ZZZ9", "admission_id", "ZZZ9", "in_intake"),
    ],
)
def test_row_errors_name_field_value_and_admission(
    corrupted, table, admission_id, field, value, rule
):
    _, report = corrupted
    hits = _find(report, table, field, admission_id, rule)
    assert hits, f"no {rule} error for {table}.{field} {admission_id}"
    err, _ = hits[0]
    assert err.value == value and err.blocking


def test_wrong_type_is_reported_once_not_as_range(corrupted):
    _, report = corrupted
    assert [r for _, r in _find(report, "intake", "age", "A0003")] == ["type"]


def test_duplicate_admission_id(corrupted):
    _, report = corrupted
    hits = _find(report, "intake", "admission_id", "A0006", "unique")
    assert len(hits) == 2


def test_duplicate_rating(corrupted):
    _, report = corrupted
    hits = [e for e, r in zip(report.errors, report.rules, strict=True) if r == "one_per_key"]
    assert len(hits) == 2 and {e.admission_id for e in hits} == {"A0010"}
    assert all(e.table == "alliance" and "week=" in e.value for e in hits)


def test_missing_and_misspelt_columns(corrupted):
    _, report = corrupted
    (err, _), *_ = _find(report, "episodes", "discharge_reason")
    assert err.blocking and "missing" in err.reason
    (err, _), *_ = _find(report, "counsellors", "years_experiance")
    assert err.blocking and "years_experience" in err.reason
    (err, _), *_ = _find(report, "intake", "notes_internal")
    assert not err.blocking


def test_report_summary_and_blocking(corrupted):
    _, report = corrupted
    assert report.blocking and report.tables["intake"].blocking
    rows = {(g["table"], g["field"], g["rule"]): g for g in report.summary_rows()}
    g = rows[("intake", "sex", "code")]
    assert g["count"] == 1 and g["example_ids"] == ["A0002"] and g["example_values"] == ["Male"]


def test_html_report_is_self_contained(corrupted):
    _, report = corrupted
    page = report.to_html()
    assert "A0002" in page and "Male" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)


def test_drop_fraction_allows_dropping_few_bad_rows(valid_tables):
    _set(valid_tables["intake"], "A0002", "sex", "Male")
    report = validate_tables(valid_tables, ValidationConfig(max_drop_fraction=0.1))
    assert not report.blocking and report.dropped_admission_ids == ["A0002"]
    kept = report.drop_rows(valid_tables)
    assert "A0002" not in set(kept["alliance"]["admission_id"])


def test_training_sanity():
    cfg = ValidationConfig(min_labelled=10, min_class_count=3)
    ok = pd.Series([0, 1] * 10, index=[f"A{i}" for i in range(20)])
    assert training_sanity(ok, cfg) == []
    few = training_sanity(ok.iloc[:4], cfg)
    assert any("labelled" in e.reason for e in few)
    one_class = training_sanity(pd.Series([0] * 20), cfg)
    assert any("class 1 absent" in e.reason for e in one_class)


# ------------------------------------------------------------------------------------- io


def test_load_tables_keeps_ids_and_bad_values(valid_dir):
    (valid_dir / "intake.csv").write_text(
        (valid_dir / "intake.csv").read_text().replace(",31,", ",abc,", 1)
    )
    tables = load_tables(valid_dir)
    assert tables["intake"]["admission_id"].iloc[0] == "A0000"
    assert (tables["intake"]["age"] == "abc").any()
    assert "episodes" in tables


def test_load_tables_parquet_and_optional_episodes(tmp_path, valid_tables):
    for name in ("intake", "counsellors", "alliance"):
        df = valid_tables[name]
        if name == "intake":
            df = df.assign(age=pd.to_numeric(df["age"]).astype("Int64"))
        df.to_parquet(tmp_path / f"{name}.parquet")
    tables = load_tables(tmp_path)
    assert set(tables) == {"intake", "counsellors", "alliance"}
    assert tables["intake"]["admission_id"].iloc[0] == "A0000"


def test_missing_table_is_a_clear_error(valid_dir):
    (valid_dir / "alliance.csv").unlink()
    with pytest.raises(TableLoadError, match="alliance"):
        load_tables(valid_dir)


# ------------------------------------------------------------------------------------- record


@pytest.fixture
def good_record(valid_tables):
    row = valid_tables["intake"].iloc[1].to_dict()
    rec = {k: v for k, v in row.items() if isinstance(v, str)}
    rec.update(counsellor_sex="female", counsellor_ex_user=True, counsellor_years_experience=4)
    return rec


def test_record_valid(good_record):
    model, errors = check_record(good_record)
    assert errors == [] and model is not None
    assert model.age == 31 and model.admission_id == "A0001"


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("sex", "Male", "code"),
        ("age", 120, "range"),
        ("age", "abc", "type"),
        ("age", 31.5, "type"),
        ("legal_pressure", "maybe", "type"),
        ("admission_date", "2099-01-01", "range"),
        ("admission_date", "31/01/2020", "type"),
        ("counsellor_years_experience", 80, "range"),
        ("wai_01", 3, "unknown"),
        ("agee", 30, "unknown"),
    ],
)
def test_record_rejects_with_field_name(good_record, field, value, words):
    rec = dict(good_record, **{field: value})
    model, errors = check_record(rec)
    assert model is None
    assert [e.field for e in errors] == [field]
    assert words in errors[0].reason and errors[0].admission_id == "A0001"
    assert errors[0].table == "intake" and errors[0].value == value


@pytest.mark.parametrize("field", ["admission_id", "age", "sex"])
def test_record_missing_required(good_record, field):
    rec = {k: v for k, v in good_record.items() if k != field}
    _, errors = check_record(rec)
    assert [e.field for e in errors] == [field] and "missing" in errors[0].reason


def test_record_cross_field(good_record):
    _, errors = check_record(dict(good_record, age="20", age_first_use="25"))
    assert [e.field for e in errors] == ["age_first_use"]


def test_record_schema_lists_every_field_with_ranges_and_codes():
    props = record_json_schema()["properties"]
    assert set(props) == {f.name for f in SCORING_RECORD}
    assert props["sex"]["enum"] == ["male", "female", "other", "not_stated"]
    assert props["age"]["minimum"] == 16 and props["age"]["maximum"] == 90
    assert "16..90" in props["age"]["description"]


@pytest.mark.parametrize(
    "admission_id,field,value",
    # counsellor_id -> counsellors.csv is a table-only rule (a record has no counsellor table)
    [(a, f, v) for t, a, f, v in CORRUPTIONS if t == "intake" and f != "counsellor_id"],
)
def test_same_bad_value_rejected_by_table_and_record(corrupted, admission_id, field, value):
    tables, report = corrupted
    assert _find(report, "intake", field, admission_id), "table path accepted it"
    intake = tables["intake"]
    row = intake[intake["admission_id"] == admission_id].iloc[0].to_dict()
    rec = {k: v for k, v in row.items() if isinstance(v, str) and k != "notes_internal"}
    model, errors = check_record(rec)
    assert model is None and [e.field for e in errors] == [field]
    assert errors[0].value == value


# ------------------------------------------------------------------------------------- CLI


def test_cli_corrupted_folder(valid_dir, tmp_path, capsys):
    from pipelines.validate import main

    path = valid_dir / "intake.csv"
    df = pd.read_csv(path, dtype=str)
    df.loc[df["admission_id"] == "A0007", "sex"] = "Mail"
    df.to_csv(path, index=False)
    report_dir = tmp_path / "rep"
    code = main([str(valid_dir), "--report-dir", str(report_dir)])
    out = capsys.readouterr().out
    assert code == 1
    for word in ("intake", "sex", "Mail", "A0007"):
        assert word in out
    pages = [report_dir / "validation_report.html", *sorted((report_dir / "gx").rglob("*.html"))]
    assert len(pages) > 2
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I), page
        assert "http://" not in text and "https://" not in text, page


def test_cli_clean_folder_and_json(valid_dir, tmp_path, capsys):
    import json

    from pipelines.validate import main

    code = main([str(valid_dir), "--report-dir", str(tmp_path / "rep"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["blocking"] is False and out["errors"] == []


def test_cli_missing_folder_or_table(valid_dir, tmp_path, capsys):
    from pipelines.validate import main

    assert main([str(tmp_path / "nowhere")]) == 2
    (valid_dir / "counsellors.csv").unlink()
    assert main([str(valid_dir), "--report-dir", str(tmp_path / "rep")]) == 2
    assert "counsellors" in capsys.readouterr().out
