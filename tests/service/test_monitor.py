"""Drift monitoring (monitoring.drift, python -m pipelines.monitor): PSI by hand, exit codes on a
stable and a shifted cohort, the audit-store source, and an offline HTML report."""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import subprocess

import numpy as np
import pandas as pd
import pytest

from harness.commands import run_pipeline
from monitoring.drift import (
    MonitorConfig,
    categorical_counts,
    numeric_histogram,
    psi_categorical,
    psi_from_counts,
    psi_numeric,
    quantile_edges,
)


def test_psi_by_hand():
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5)
    want = 0.4 * math.log(1.8) + (-0.4) * math.log(0.2)
    assert psi_from_counts([50, 50], [90, 10]) == pytest.approx(want)
    assert psi_from_counts([50, 50], [50, 50]) == 0.0
    # An empty bin is floored, not infinite.
    assert math.isfinite(psi_from_counts([100, 0], [50, 50]))


def test_psi_numeric_identical_is_zero_and_shift_is_large():
    rng = np.random.default_rng(0)
    ref = rng.normal(30, 5, 5000)
    assert psi_numeric(ref, ref.copy()) == pytest.approx(0.0, abs=1e-12)
    assert psi_numeric(ref, rng.normal(30, 5, 5000)) < 0.02  # same distribution, new sample
    assert psi_numeric(ref, ref - 10) > 1.0  # two standard deviations down


def test_missing_values_are_their_own_bin():
    ref = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    edges = quantile_edges(ref, 5)
    h = numeric_histogram(np.array([1.0, np.nan, np.nan, 10]), edges)
    assert h[-1] == 2 and h.sum() == 4
    assert psi_numeric(ref, np.where(np.arange(10) < 5, np.nan, ref)) > 0.5
    cats, rc, cc = categorical_counts(
        pd.Series(["a", "b", None]), pd.Series(["a", None, None]), ("a", "b", "c")
    )
    assert cats == ["a", "b", "c", "(missing)"]
    assert rc.tolist() == [1, 1, 0, 1] and cc.tolist() == [1, 0, 0, 2]
    assert psi_categorical(pd.Series(["a", "b"] * 50), pd.Series(["a", "b"] * 50)) == 0.0


def test_monitor_config_rejects_nonsense():
    with pytest.raises(ValueError):
        MonitorConfig(psi_threshold=0)
    assert MonitorConfig().psi_threshold == 0.2 and MonitorConfig().score_shift_threshold == 0.1


# ---------------------------------------------------------------------------------------------
# With a trained champion


def _monitor(store, *args: str) -> subprocess.CompletedProcess:
    return run_pipeline("monitor", "--reference", str(store.data), *args, env=store.env())


def external_refs(html: str) -> list[str]:
    """Every src/href that is not an inline data URI or a fragment, and any http(s) URL."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", html, re.I)
    bad = [r for r in refs if not r.startswith(("data:", "#"))]
    return bad + re.findall(r"https?://\S+|url\(|@import", html, re.I)


@pytest.fixture(scope="session")
def shifted_dir(tmp_path_factory):
    """Another SYNTHETIC cohort (other seed) with treatment readiness 10 points lower."""
    from simulator.generator import generate, write

    c = generate(1500, seed=12345, ground_truth=False)
    v = pd.to_numeric(c.intake["mot_treatment_readiness"], errors="coerce") - 10
    c.intake["mot_treatment_readiness"] = v.clip(lower=10)
    # Items would re-score the scale: drop the readiness items so the shifted score stands.
    for col in [k for k in c.intake.columns if k.startswith("tcu_tr_")]:
        c.intake[col] = pd.NA
    d = tmp_path_factory.mktemp("shifted") / "data"
    write(c, d)
    return d


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_reference_against_itself_is_stable(trained_store, tmp_path):
    out = tmp_path / "report"
    proc = _monitor(trained_store, "--current", str(trained_store.data), "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "monitoring.json").read_text())
    assert summary["status"] == "ok" and summary["alarms"] == []
    assert summary["scores"]["mean_risk_diff"] == 0.0 and summary["scores"]["risk_psi"] == 0.0
    assert max(f["psi"] for f in summary["features"]) == pytest.approx(0.0, abs=1e-9)
    assert summary["validation"]["blocking"] is False
    html = (out / "monitoring_report.html").read_text()
    assert external_refs(html) == []
    assert html.count("data:image/png;base64,") >= 3


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_shifted_cohort_exits_1_and_names_the_feature(trained_store, shifted_dir, tmp_path):
    out = tmp_path / "report"
    proc = _monitor(trained_store, "--current", str(shifted_dir), "--out", str(out))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mot_treatment_readiness" in proc.stdout
    summary = json.loads((out / "monitoring.json").read_text())
    assert "mot_treatment_readiness" in summary["drifting_features"]
    top = summary["features"][0]
    assert top["feature"] == "mot_treatment_readiness" and top["psi"] > 0.5
    assert top["cur_mean"] < top["ref_mean"] - 5
    assert summary["scores"]["mean_risk_diff"] > 0  # less readiness, more risk
    html = (out / "monitoring_report.html").read_text()
    assert "mot_treatment_readiness" in html and external_refs(html) == []


def _audit_store(path, ids, version: str, risks, bands):
    """An audit store written by the service's own writer (serving.audit.AuditLog)."""
    from serving.audit import AuditLog

    log = AuditLog(path, "monitor-test-audit-key")
    assert log.healthy
    log.record(
        [(a, version, float(p), b) for a, p, b in zip(ids, risks, bands, strict=True)], "/score"
    )
    log.close()
    with sqlite3.connect(path) as db:  # every score landed
        assert db.execute("select count(*) from scores").fetchone()[0] == len(ids)
    return path


def test_audit_reader_gives_back_what_the_writer_stored(tmp_path):
    """Monitoring reads the audit store only through AuditLog.read_scores: rows come back in the
    order written, keyed-hashed, filtered by model version; no store or no scores table is an
    error that names the file, and nothing is created by reading."""
    import hashlib
    import hmac

    from serving.audit import AuditLog, AuditReadError

    path = _audit_store(tmp_path / "a.sqlite", ["A1", "A2"], "3", [0.1, 0.5], ["low", "high"])
    log = AuditLog(path, "monitor-test-audit-key")
    log.record([("A3", "4", 0.3, "moderate")], "/score")
    log.close()
    h = lambda a: hmac.new(b"monitor-test-audit-key", a.encode(), hashlib.sha256).hexdigest()  # noqa: E731
    assert AuditLog.read_scores(path, "3") == [(h("A1"), 0.1, "low"), (h("A2"), 0.5, "high")]
    assert [r[0] for r in AuditLog.read_scores(path)] == [h("A1"), h("A2"), h("A3")]
    with pytest.raises(FileNotFoundError, match="absent.sqlite"):
        AuditLog.read_scores(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("create table audit (risk real)")
    with pytest.raises(AuditReadError, match="no scores table"):
        AuditLog.read_scores(other)


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_audit_store_as_the_current_scores(trained_store, tmp_path):
    """The service's audit table as the current scores: the reference's own scores give no drift
    (exit 0); the same admissions scored 0.3 higher, all in the high band, do (exit 1)."""
    from batch.scoring import score_file
    from models.lifecycle.resolve import load as load_model

    lm = load_model(trained_store.uri)
    scores = tmp_path / "ref.csv"
    score_file(trained_store.data, scores, lm)
    ref = pd.read_csv(scores, dtype={"admission_id": "str"})
    ids = ref.admission_id.tolist()
    same = _audit_store(tmp_path / "same.sqlite", ids, lm.version, ref.risk, ref.band)
    proc = _monitor(trained_store, "--audit-db", str(same), "--out", str(tmp_path / "r1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "r1" / "monitoring.json").read_text())
    assert summary["features"] == [] and any("skipped" in n for n in summary["notes"])
    assert summary["scores"]["mean_risk_diff"] == 0.0

    higher = np.minimum(ref.risk + 0.3, 0.99)
    shifted = _audit_store(
        tmp_path / "shifted.sqlite", ids, lm.version, higher, ["high"] * len(ids)
    )
    proc = _monitor(trained_store, "--audit-db", str(shifted), "--out", str(tmp_path / "r2"))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mean risk moved" in proc.stdout
    summary = json.loads((tmp_path / "r2" / "monitoring.json").read_text())
    assert summary["scores"]["mean_risk_diff"] == pytest.approx(
        float(higher.mean() - ref.risk.mean()),
        abs=1e-6,  # the report rounds to 6 places
    )


def test_missing_reference_exits_2(tmp_path):
    proc = run_pipeline(
        "monitor",
        "--reference",
        str(tmp_path / "none"),
        "--current",
        str(tmp_path / "none"),
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'x.db'}"},
        timeout=120,
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stdout
