"""The synthetic cohort generator: determinism, contract conformance, the brief's targets, ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.catalog import DRIVER_GROUPS, ID_RE, TABLES
from features.instruments import SCALES_BY_FIELD, WAI_S
from simulator.generator import generate, write

ROOT = Path(__file__).resolve().parent.parent
WAI = WAI_S.item_codes()


@pytest.fixture(scope="module")
def cohort():
    return generate(2000, 11)


@pytest.fixture(scope="module")
def big():
    """Larger cohort without the Monte Carlo, for variance-component checks."""
    return generate(8000, 5, ground_truth=False)


def _rating_means(alliance: pd.DataFrame) -> pd.DataFrame:
    """Per admission and rater: mean over valid weeks of the keyed WAI-S item mean."""
    x = alliance[WAI].astype("float64").to_numpy()
    refl = [WAI.index(f"wai_{i:02d}") for i in WAI_S.reflected]
    x[:, refl] = WAI_S.low + WAI_S.high - x[:, refl]
    valid = np.isnan(x).sum(axis=1) <= 2
    df = alliance.loc[valid, ["admission_id", "rater"]].assign(m=np.nanmean(x[valid], axis=1))
    return df.groupby(["admission_id", "rater"])["m"].mean().unstack()


def test_same_seed_same_frames_different_seed_different():
    a, b, c = (
        generate(300, 3, mc_draws=20),
        generate(300, 3, mc_draws=20),
        generate(300, 4, mc_draws=20),
    )
    for name, df in a.tables().items():
        pd.testing.assert_frame_equal(df, b.tables()[name])
    pd.testing.assert_frame_equal(a.ground_truth, b.ground_truth)
    assert not a.intake.equals(c.intake)
    assert not a.alliance.equals(c.alliance)


def test_values_follow_the_catalog(cohort):
    for name, df in cohort.tables().items():
        fields = TABLES[name]
        assert list(df.columns) == [f.name for f in fields], name
        for f in fields:
            col = df[f.name]
            present = col.dropna()
            if f.required:
                assert col.notna().all(), f"{name}.{f.name} has blanks"
            if f.unique:
                assert col.is_unique, f"{name}.{f.name} not unique"
            if f.pattern:
                assert present.map(lambda v: bool(ID_RE.match(str(v)))).all(), (
                    f"{name}.{f.name} ids"
                )
            if f.codes:
                assert set(present) <= set(f.codes), (
                    f"{name}.{f.name}: {set(present) - set(f.codes)}"
                )
            if f.kind in ("integer", "number") and f.minimum is not None:
                v = present.astype(float)
                assert v.between(f.minimum, f.maximum).all(), f"{name}.{f.name} out of range"
            if f.kind == "integer":
                assert (present.astype(float) % 1 == 0).all(), f"{name}.{f.name} not integer"
    assert cohort.intake["counsellor_id"].dropna().isin(cohort.counsellors["counsellor_id"]).all()
    assert cohort.alliance["admission_id"].isin(cohort.intake["admission_id"]).all()
    assert not cohort.alliance.duplicated(["admission_id", "week", "rater"]).any()


def test_plausible_records(cohort):
    i = cohort.intake
    known = i["age_first_use"].notna()
    assert (i.loc[known, "age_first_use"] <= i.loc[known, "age"]).all()
    assert i["age"].between(18, 65).mean() > 0.9
    assert 0.42 < (i["primary_substance"] == "opiates").mean() < 0.58
    crack = i["primary_substance"] == "crack"
    assert (i.loc[crack, "crack_days_28"].dropna() > 0).mean() > 0.85
    assert (
        i.loc[~crack & (i["primary_substance"] != "opiates"), "crack_days_28"].dropna().mean() < 3
    )
    adm = pd.to_datetime(i["admission_date"])
    assert adm.min() >= pd.Timestamp("2018-01-01") and adm.max() <= pd.Timestamp("2025-12-31")
    ep = cohort.episodes.merge(i[["admission_id", "admission_date"]], on="admission_id")
    closed = ep["discharge_date"].notna()
    assert (
        pd.to_datetime(ep.loc[closed, "discharge_date"])
        >= pd.to_datetime(ep.loc[closed, "admission_date"])
    ).all()
    assert (ep.loc[~closed, "discharge_reason"] == "ongoing").all()
    assert (ep.loc[closed, "discharge_reason"] != "ongoing").all()
    assert (i["counsellor_id"].isna().mean()) == pytest.approx(0.15, abs=0.04)
    assert 0.03 < i["mot_treatment_readiness"].isna().mean() < 0.35


def test_early_leavers_have_no_ratings_and_leave_within_a_week(cohort):
    gt = cohort.ground_truth
    early = gt.loc[gt["early_leaver"], "admission_id"]
    assert 0.04 < len(early) / len(gt) < 0.15
    assert not cohort.alliance["admission_id"].isin(early).any()
    ep = (
        cohort.episodes.set_index("admission_id")
        .loc[early]
        .join(cohort.intake.set_index("admission_id")["admission_date"])
    )
    ep = ep[ep["discharge_date"].notna()]
    days = (pd.to_datetime(ep["discharge_date"]) - pd.to_datetime(ep["admission_date"])).dt.days
    assert (days < 7).all() and (ep["discharge_reason"] == "dropped_out").all()
    weeks = cohort.alliance.groupby("admission_id")["week"].nunique()
    assert (weeks < 3).mean() > 0.03  # some leave (or skip forms) between weeks


def test_item_level_records(cohort):
    i = cohort.intake
    for field, scale in SCALES_BY_FIELD.items():
        codes = scale.item_codes()
        has_items = i[codes].notna().any(axis=1)
        assert 0.08 < has_items.mean() < 0.25, field
        assert i.loc[has_items, field].isna().all(), f"{field}: score and items together"
        keyed = i.loc[has_items, codes].astype(float).to_numpy()
        for j, item in enumerate(scale.items):
            if item in scale.reflected:
                keyed[:, j] = scale.low + scale.high - keyed[:, j]
        m = np.nanmean(keyed, axis=1)
        score = {"mean_x10": m * 10, "sum": m * len(codes), "mean": m}[scale.combine]
        shown = i.loc[~has_items, field].dropna()
        assert abs(np.mean(score) - shown.mean()) < 0.15 * shown.std() + 0.5, field
    assert (
        np.isnan(
            i[WAI_S.item_codes()[:0] + SCALES_BY_FIELD["psych_distress"].item_codes()].astype(float)
        )
        .to_numpy()
        .mean()
        > 0.5
    )


def test_label_prevalence_and_ceiling(cohort):
    m = cohort.meta
    assert 0.18 <= m["prevalence_client"] <= 0.32
    x = cohort.alliance[WAI].astype("float64").to_numpy()
    refl = [WAI.index(f"wai_{i:02d}") for i in WAI_S.reflected]
    x[:, refl] = 8 - x[:, refl]
    assert np.nanmean(x == 7) / np.mean(~np.isnan(x)) > 0.25  # answers pile up at 7


def test_counsellor_icc_and_rater_correlation(big):
    means = _rating_means(big.alliance)
    both = means.dropna()
    r = both["client"].corr(both["counsellor"])
    assert 0.2 <= r <= 0.4, r
    cl = (
        means["client"]
        .dropna()
        .to_frame()
        .join(big.intake.set_index("admission_id")["counsellor_id"])
        .dropna()
    )
    g = cl.groupby("counsellor_id")["client"]
    k = g.size()
    n0 = (k.sum() - (k**2).sum() / k.sum()) / (len(k) - 1)
    msb = (k * (g.mean() - cl["client"].mean()) ** 2).sum() / (len(k) - 1)
    msw = ((cl["client"] - g.transform("mean")) ** 2).sum() / (len(cl) - len(k))
    icc = (msb - msw) / (msb - msw + n0 * msw)
    assert 0.03 <= icc <= 0.12, icc


def test_directions(big):
    gt = big.ground_truth.set_index("admission_id")
    i = big.intake.set_index("admission_id")
    lab = gt["labelled_client"]
    low = gt.loc[lab, "low_alliance_client"].astype(bool)
    ready = i.loc[lab, "mot_treatment_readiness"]
    q1, q3 = ready.quantile([0.25, 0.75])
    assert low[ready <= q1].mean() > low[ready >= q3].mean() + 0.05
    distress = i.loc[lab, "psych_distress"]
    assert (
        low[distress >= distress.quantile(0.75)].mean()
        > low[distress <= distress.quantile(0.25)].mean()
    )
    means = _rating_means(big.alliance)
    c = big.counsellors.set_index("counsellor_id")
    joined = (
        means.join(i["counsellor_id"]).dropna(subset=["counsellor_id"]).join(c, on="counsellor_id")
    )
    ex = joined["ex_user"].astype(bool)
    assert joined.loc[ex, "client"].mean() > joined.loc[~ex, "client"].mean()
    old = joined["years_experience"] >= 12
    young = joined["years_experience"] <= 4
    assert joined.loc[old, "counsellor"].mean() < joined.loc[young, "counsellor"].mean()
    ep = big.episodes.set_index("admission_id")
    crack = i["crack_days_28"].fillna(0) > 0
    completed = ep["discharge_reason"] == "completed"
    assert completed[crack].mean() < completed[~crack].mean()


def test_ground_truth(cohort):
    gt = cohort.ground_truth
    lab = gt["labelled_client"].to_numpy()
    for col in (
        "p_low_alliance_client",
        "p_low_alliance_counsellor",
        "p_low_alliance_either",
        "p_low_alliance_client_no_ids",
    ):
        p = gt[col].to_numpy()
        assert ((p > 0) & (p < 1)).all(), col
    observed = gt.loc[lab, "low_alliance_client"].astype(bool).mean()
    assert abs(gt.loc[lab, "p_low_alliance_client"].mean() - observed) < 0.03
    # the no-ids truth averages over new counsellors and services, not this cohort's realised ones
    assert abs(gt.loc[lab, "p_low_alliance_client_no_ids"].mean() - observed) < 0.05
    # the truth discriminates, and better than chance by a clear margin
    y = gt.loc[lab, "low_alliance_client"].astype(bool).to_numpy()
    p = gt.loc[lab, "p_low_alliance_client"].to_numpy()
    pos, neg = p[y], p[~y]
    auc = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert 0.68 < auc < 0.86, auc
    groups = [r["group"] for r in cohort.driver_ranking]
    assert sorted(groups) == sorted(DRIVER_GROUPS)
    assert groups[0] == "motivation"


def test_cli_writes_synthetic_files_byte_identically(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        cmd = [
            sys.executable,
            "-m",
            "pipelines.simulate",
            "--n",
            "150",
            "--seed",
            "9",
            "--mc-draws",
            "20",
            "--out",
            str(out),
        ]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "SYNTHETIC" in res.stdout
        outs.append(out)
    names = [
        "intake.csv",
        "counsellors.csv",
        "alliance.csv",
        "episodes.csv",
        "ground_truth.csv",
        "ground_truth.json",
        "README.md",
    ]
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    meta = json.loads((outs[0] / "ground_truth.json").read_text())
    assert meta["SYNTHETIC"] is True and meta["driver_ranking"]["ranking"]
    assert "SYNTHETIC" in (outs[0] / "README.md").read_text()
    intake = pd.read_csv(outs[0] / "intake.csv", dtype=str, keep_default_na=False)
    assert list(intake.columns) == [f.name for f in TABLES["intake"]]
    assert set(intake["legal_pressure"]) <= {"true", "false", ""}


def test_parquet_and_bad_arguments(tmp_path):
    c = generate(60, 1, mc_draws=10)
    paths = write(c, tmp_path, "parquet")
    assert (tmp_path / "intake.parquet") in paths
    back = pd.read_parquet(tmp_path / "alliance.parquet")
    assert list(back.columns) == [f.name for f in TABLES["alliance"]]
    with pytest.raises(ValueError):
        generate(10, 1, n_services=2)
    with pytest.raises(ValueError):
        write(c, tmp_path, "xlsx")
