"""A small cohort that satisfies data contract v1, built from the field catalog (30 admissions,
5 counsellors, ratings for weeks 1-3, episodes), as text columns the way load_tables reads a CSV.
Tests copy it and corrupt one value. ``labelled_matrix``: a SYNTHETIC cohort's labelled clients
as model rows, labels and counsellor groups, for the tests that fit candidates."""

from __future__ import annotations

import pandas as pd

from features.catalog import TABLES, Field

N_ADMISSIONS = 30
N_COUNSELLORS = 5


def _value(f: Field, i: int) -> str | None:
    """A valid text value of field f for row i (cycling through codes and ranges)."""
    if f.codes:
        return f.codes[i % len(f.codes)]
    if f.kind == "boolean":
        return ("true", "false")[i % 2]
    if f.kind == "date":
        return f"2022-{1 + i % 12:02d}-{1 + i % 28:02d}"
    if f.kind in ("integer", "number"):
        lo, hi = f.minimum, f.maximum
        span = int(hi - lo)
        v = lo + (i * 7) % (span + 1)
        if f.kind == "number" and v < hi:
            v += 0.5
        return str(int(v)) if float(v).is_integer() else str(v)
    return None


def _intake() -> pd.DataFrame:
    rows = []
    for i in range(N_ADMISSIONS):
        row = {f.name: _value(f, i) for f in TABLES["intake"]}
        row.update(
            admission_id=f"A{i:04d}",  # leading zeros must survive
            service_id=f"S{i % 2}",
            counsellor_id=f"C{i % N_COUNSELLORS:02d}" if i % 7 else None,
            age=str(30 + i % 50),
            age_first_use=str(12 + i % 10),
        )
        rows.append(row)
    return pd.DataFrame(rows, dtype="str")


def _counsellors() -> pd.DataFrame:
    rows = []
    for i in range(N_COUNSELLORS):
        row = {f.name: _value(f, i) for f in TABLES["counsellors"]}
        row.update(counsellor_id=f"C{i:02d}", service_id=f"S{i % 2}")
        rows.append(row)
    return pd.DataFrame(rows, dtype="str")


def _alliance() -> pd.DataFrame:
    rows = []
    for i in range(N_ADMISSIONS):
        for week in (1, 2, 3)[: 1 + i % 3]:
            for rater in ("client", "counsellor"):
                row = {f.name: _value(f, i + week) for f in TABLES["alliance"]}
                row.update(admission_id=f"A{i:04d}", week=str(week), rater=rater)
                rows.append(row)
    return pd.DataFrame(rows, dtype="str")


def _episodes() -> pd.DataFrame:
    rows = []
    for i in range(N_ADMISSIONS):
        reason = ("completed", "dropped_out", "ongoing")[i % 3]
        rows.append(
            {
                "admission_id": f"A{i:04d}",
                "discharge_date": None if reason == "ongoing" else "2023-06-30",
                "discharge_reason": reason,
            }
        )
    return pd.DataFrame(rows, dtype="str")


def make_valid_tables() -> dict[str, pd.DataFrame]:
    return {
        "intake": _intake(),
        "counsellors": _counsellors(),
        "alliance": _alliance(),
        "episodes": _episodes(),
    }


def labelled_matrix(n: int, seed: int, label_cfg=None, **generate_kw):
    """(scored frame, model matrix X, labels y, counsellor groups) of the labelled clients of a
    SYNTHETIC cohort of ``n`` admissions (simulator.generator.generate(n, seed, **generate_kw)),
    labelled with ``label_cfg`` (default: the default LabelConfig)."""
    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import LabelConfig
    from models.building.training import split_groups
    from models.scoring.predict import frame_to_matrix
    from simulator.generator import generate

    c = generate(n, seed=seed, **generate_kw)
    labels = build_labels(c.alliance, label_cfg or LabelConfig(), c.intake, c.episodes)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    frame = frame[frame["admission_id"].isin(labels.labels.index)].reset_index(drop=True)
    X, scored, errors = frame_to_matrix(frame)
    assert not errors
    y = labels.labels.reindex(frame["admission_id"]).to_numpy().astype(int)
    return scored, X, y, split_groups(scored, "counsellor")


def weekly_fit(n: int, seed: int, settings=None, **generate_kw):
    """A SYNTHETIC cohort trained as ``pipelines.train`` trains (admission model by
    ``train_models`` without the learning curve and transport, then the weekly models of issue 19,
    ``models.building.weekly.fit_weekly``): (cohort, TrainResult, WeeklyResult). Default settings
    keep it quick: the ridge alone, 5 folds, 1 repeat, 200 bootstrap resamples."""
    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import load_settings
    from models.building.training import train_models
    from models.building.weekly import fit_weekly
    from models.scoring.predict import frame_to_matrix
    from simulator.generator import generate

    settings = settings or load_settings(
        train__candidates=("ridge",), train__n_repeats=1, train__n_bootstrap=200
    )
    c = generate(n, seed=seed, **generate_kw)
    labels = build_labels(c.alliance, settings.label, c.intake, c.episodes)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    frame = frame[frame["admission_id"].isin(labels.labels.index)].reset_index(drop=True)
    X, scored, errors = frame_to_matrix(frame)
    assert not errors
    y = labels.labels.reindex(frame["admission_id"]).to_numpy().astype(int)
    result = train_models(settings, scored, X, y, extras=False)
    weekly = fit_weekly(settings, result, scored, c.alliance, c.intake, c.episodes)
    return c, result, weekly
