"""Performance on outcomes (monitoring/outcomes.py through python -m pipelines.monitor), with the
monitoring history in MLflow (monitoring/history.py).

One SYNTHETIC cohort is cut in two by admission: the first part trains the champion, the rest is
"the current batch" from the same population (same services and counsellors, same effects). A
second copy of that batch has its WAI-S ratings made systematically worse (keyed items down, the
reverse-scored items 4 and 10 up), so more clients have a low alliance than the model expects."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.commands import FAST_CONFIG, Store, run_pipeline, train_champion

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("outcomes")]

N_TRAIN, N_CURRENT = 2000, 1500


def _subset(cohort, ids: set[str]):
    def keep(df):
        return df[df["admission_id"].astype(str).isin(ids)].reset_index(drop=True)

    return dataclasses.replace(
        cohort,
        intake=keep(cohort.intake),
        alliance=keep(cohort.alliance),
        episodes=keep(cohort.episodes),
        ground_truth=keep(cohort.ground_truth),
    )


def worse_alliance(alliance: pd.DataFrame, shift: int = 1) -> pd.DataFrame:
    """Every rating `shift` points worse on the 1-7 scale (reverse-scored items move up)."""
    from features.instruments import WAI_S

    out = alliance.copy()
    for i in WAI_S.items:
        col = f"wai_{i:02d}"
        v = pd.to_numeric(out[col], errors="coerce")
        moved = v + shift if i in WAI_S.reflected else v - shift
        out[col] = moved.clip(1, 7).astype("Int64")
    return out


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    from simulator.generator import generate, write

    root = tmp_path_factory.mktemp("outcomes")
    cohort = generate(N_TRAIN + N_CURRENT, seed=21)
    ids = cohort.intake["admission_id"].astype(str).tolist()
    train, current = set(ids[:N_TRAIN]), set(ids[N_TRAIN:])
    write(_subset(cohort, train), root / "data")
    cur = _subset(cohort, current)
    write(cur, root / "current")
    write(dataclasses.replace(cur, alliance=worse_alliance(cur.alliance)), root / "worse")
    store = Store.at(root)
    # The promotion gate is not under test here: floors wide enough that the first model is the
    # champion whichever candidate wins on this cohort (the monitor watches the champion).
    store.config.write_text(FAST_CONFIG + "min_auroc = 0.5\nslope_range = [0.2, 5.0]\n")
    return train_champion(store)


def _monitor(store, *args):
    return run_pipeline("monitor", "--reference", str(store.data), *args, env=store.env())


@dataclasses.dataclass
class MonitorRun:
    proc: subprocess.CompletedProcess
    out: Path

    def summary(self) -> dict:
        return json.loads((self.out / "monitoring.json").read_text())

    def run_id(self) -> str:
        """The MLflow run the monitor says it logged (``logged to MLflow: ..., run <id>``)."""
        found = re.search(
            r"logged to MLflow: experiment \S+, run\s+([0-9a-f]{32})", self.proc.stdout
        )
        assert found, self.proc.stdout[-2000:]
        return found.group(1)


@pytest.fixture(scope="session")
def monitored(world, tmp_path_factory):
    """One monitor run per current batch, shared by the tests that read it (each run costs
    about 9 s of CPU): ``monitored(name)`` for name in "current" (the same population with its
    outcomes) and "worse" (the same intake, every rating a point worse)."""
    runs: dict[str, MonitorRun] = {}

    def get(name: str) -> MonitorRun:
        if name not in runs:
            out = tmp_path_factory.mktemp(f"monitor-{name}")
            proc = _monitor(world, "--current", str(world.root / name), "--out", str(out))
            runs[name] = MonitorRun(proc, out)
        return runs[name]

    return get


def test_same_population_with_outcomes_is_quiet(monitored):
    run = monitored("current")
    proc, out = run.proc, run.out
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads((out / "monitoring.json").read_text())
    o = s["outcomes"]
    assert o is not None and o["alarms"] == [] and s["alarms"] == []
    assert o["label_definition"]["rater"] == "client"  # the champion's own (default) label
    assert o["labelled_and_scored"] > 1000
    oe = o["current"]["oe_ratio"]
    assert oe["lo"] <= 1 <= oe["hi"] or 0.8 <= oe["value"] <= 1.25
    # Next to the training figures, all with CIs
    for k in ("oe_ratio", "cal_slope", "auroc", "brier"):
        for side in ("current", "training"):
            v = o[side][k]
            assert v["lo"] <= v["value"] <= v["hi"], (side, k, v)
    assert o["current"]["auroc"]["value"] >= o["training"]["auroc"]["lo"]
    # Observed rate per band rises from low to high; every band is present
    rates = {b["band"]: b["observed_rate"] for b in o["bands"]}
    assert rates["low"] < rates["moderate"] < rates["high"]
    # Fairness once outcomes exist: every subgroup, suppression applied
    subs = {r["subgroup"] for r in o["fairness"]}
    assert subs == {
        "sex",
        "ethnicity",
        "age_band",
        "primary_substance",
        "service_id",
        "referral_source",
    }
    assert all(r["n"] >= 10 for r in o["fairness"] if not r["suppressed"])
    html = (out / "monitoring_report.html").read_text()
    assert "Performance on outcomes" in html and "Fairness at the band thresholds" in html
    assert "training hold-out" in html and "ref_rows" not in html.split("<h2>Scores</h2>")[0]
    assert o["synthetic"] is True and "Performance on outcomes (SYNTHETIC data)" in html
    from tests.service.test_monitor import external_refs

    assert external_refs(html) == []
    # The weekly early warning (issue 19): both weeks, both targets, the signal, with CIs, beside
    # the admission risk on the same clients and the training run's out-of-fold figures.
    weekly = {(r["week"], r["target"]): r for r in o["weekly"]}
    assert set(weekly) == {(1, "label"), (1, "remaining"), (2, "label"), (2, "remaining")}
    for r in weekly.values():
        assert r["n"] > 500 and 0 < r["events"] < r["n"]
        assert r["oe_ratio_lo"] <= r["oe_ratio"] <= r["oe_ratio_hi"]
        assert r["auroc_lo"] <= r["auroc"] <= r["auroc_hi"]
        assert np.isfinite(r["training_auroc"])  # from the run's weekly_w<K>_* metrics
    # the ratings add what admission cannot know: the updated label risk separates better
    assert weekly[(1, "label")]["auroc"] > weekly[(1, "label")]["admission_auroc"]
    rem = weekly[(1, "remaining")]
    assert rem["oe_ratio_lo"] <= 1 <= rem["oe_ratio_hi"] or 0.8 <= rem["oe_ratio"] <= 1.25
    signal = {r["week"]: r for r in o["signal"]}
    assert set(signal) == {1, 2}
    for r in signal.values():
        assert 0 < r["sensitivity"] <= 1 and 0 <= r["false_alarm_rate"] < r["sensitivity"]
        assert np.isfinite(r["training_sensitivity"])
    assert "Weekly early warning (SYNTHETIC data)" in html and "Not-on-track signal" in html
    assert "weekly early warning: week 1: signal sensitivity" in proc.stdout


def test_systematically_worse_alliance_alarms_on_calibration(monitored):
    run = monitored("worse")
    proc, out = run.proc, run.out
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ALARM: calibration" in proc.stdout
    s = json.loads((out / "monitoring.json").read_text())
    oe = s["outcomes"]["current"]["oe_ratio"]
    assert oe["value"] > 1.25 and oe["lo"] > 1
    # The intake is the same batch as the quiet run: only the outcomes moved
    assert s["drifting_features"] == []


def test_monitor_runs_are_logged_to_mlflow(world, monitored):
    """Each monitor run is an MLflow run with metrics, alarms and the report."""
    from mlflow.tracking import MlflowClient

    proc = monitored("worse").proc
    assert proc.returncode == 1
    assert "logged to MLflow" in proc.stdout
    client = MlflowClient(world.uri)
    exp = client.get_experiment_by_name("alliance-risk-monitoring")
    assert exp is not None
    run = client.get_run(monitored("worse").run_id())
    assert run.info.experiment_id == exp.experiment_id
    m = run.data.metrics
    assert m["outcome_oe_ratio"] > 1.25 and m["alarms_calibration"] == 1
    assert m["outcome_auroc_lo"] <= m["outcome_auroc"] <= m["outcome_auroc_hi"]
    assert "scores_mean_risk_diff" in m and "psi_mot_treatment_readiness" in m
    for k in ("w1_signal_sensitivity", "w1_signal_false_alarm_rate", "w2_remaining_oe_ratio"):
        assert f"outcome_weekly_{k}" in m, k
    assert run.data.tags["status"] == "alarm" and "calibration" in run.data.tags["alarms"]
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert arts == {"report/monitoring_report.html", "report/monitoring.json"}


def test_scores_from_the_audit_store_joined_by_keyed_hash(world, monitored, tmp_path):
    """The service's audit rows (hashed ids, installation key beside the store) joined to the
    outcomes give the same figures as scoring the intake; an unknown key cannot join."""
    from batch.scoring import score_file
    from models.lifecycle.resolve import load as load_model
    from serving.audit import AuditLog

    lm = load_model(world.uri)
    scored = tmp_path / "scores.csv"
    score_file(world.root / "current", scored, lm)
    rows = pd.read_csv(scored, dtype={"admission_id": str})
    db = tmp_path / "audit.sqlite"
    audit = AuditLog(db)  # no configured key: a random installation key in audit.sqlite.key
    audit.record(
        [
            (a, lm.version, float(p), b)
            for a, p, b in zip(rows.admission_id, rows.risk, rows.band, strict=True)
        ],
        "/score",
    )
    audit.close()
    text = db.read_bytes()
    assert rows.admission_id.iloc[0].encode() not in text  # ids are not in the store

    env = {k: v for k, v in world.env().items() if "AUDIT_HASH_KEY" not in k}
    args = ["--audit-db", str(db), "--outcomes", str(world.root / "current")]
    proc = run_pipeline(
        "monitor", "--reference", str(world.data), *args, "--out", str(tmp_path / "a"), env=env
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    via_audit = json.loads((tmp_path / "a" / "monitoring.json").read_text())["outcomes"]
    direct = monitored("current").summary()["outcomes"]  # scoring the intake
    assert via_audit["labelled_and_scored"] == direct["labelled_and_scored"]
    for k in ("oe_ratio", "auroc", "brier"):
        assert via_audit["current"][k]["value"] == pytest.approx(
            direct["current"][k]["value"], rel=1e-6
        )
    assert "audit store" in via_audit["source"]
    # the weekly figures from the audit's admission risks equal those from scoring the intake
    for a, b in zip(via_audit["signal"], direct["signal"], strict=True):
        assert a["sensitivity"] == pytest.approx(b["sensitivity"], rel=1e-9)
    for a, b in zip(via_audit["weekly"], direct["weekly"], strict=True):
        assert a["auroc"] == pytest.approx(b["auroc"], rel=1e-6)

    # A different key (another installation's) joins nothing: a clear input error, exit 2.
    (tmp_path / "audit.sqlite.key").write_text("0" * 64)
    proc = run_pipeline(
        "monitor", "--reference", str(world.data), *args, "--out", str(tmp_path / "c"), env=env
    )
    assert proc.returncode == 2 and "labelled and scored" in proc.stdout


def test_label_definition_comes_from_the_model(world):
    from models.lifecycle.resolve import load as load_model
    from monitoring.outcomes import label_config

    lm = load_model(world.uri)
    cfg = label_config(lm)
    assert (cfg.rater, cfg.threshold, cfg.min_valid_weeks) == ("client", 5.0, 1)
    assert np.isfinite(cfg.threshold)
