"""The alarm rules of monitoring/outcomes.py on constructed scores: calibration needs BOTH a CI
that excludes 1 and a ratio outside [0.8, 1.25]; discrimination fires below the training CI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from features.settings import BandConfig
from monitoring.outcomes import evaluate_outcomes

TRAINING = {"auroc": (0.74, 0.68, 0.81)}
LM = SimpleNamespace(bands=BandConfig(), version="1")


def _run(y, p, n_boot=60):
    n = len(y)
    frame = pd.DataFrame({"sex": np.where(np.arange(n) % 2, "male", "female"), "age": 40})
    counts = {"admissions": n, "labelled": n, "low": int(y.sum())}
    return evaluate_outcomes(
        np.asarray(y, float),
        np.asarray(p, float),
        frame,
        LM,
        TRAINING,
        None,
        None,
        "t",
        {},
        counts,
        n_boot,
    )


def _cohort(n, seed, factor=1.0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.6, n)
    return rng.binomial(1, np.clip(p * factor, 0, 1)), p


def test_calibrated_informative_scores_are_quiet():
    y, p = _cohort(3000, 1)
    r = _run(y, p)
    assert r.alarms == []
    assert 0.9 < r.current["oe_ratio"][0] < 1.1


def test_uninformative_scores_alarm_on_discrimination():
    y, p = _cohort(3000, 2)
    rng = np.random.default_rng(3)
    r = _run(y, rng.permutation(p))  # same risks, no longer tied to the outcome
    assert r.current["auroc"][0] < TRAINING["auroc"][1]
    assert [a.split(":")[0] for a in r.alarms] == ["discrimination"]


def test_calibration_alarm_needs_both_a_clear_ci_and_a_large_ratio():
    # 15% more events than predicted on 20,000 clients: CI excludes 1, ratio inside [0.8, 1.25]
    y, p = _cohort(20_000, 4, factor=1.15)
    r = _run(y, p, n_boot=40)
    oe, lo, hi = r.current["oe_ratio"]
    assert lo > 1 and oe < 1.25 and r.alarms == []
    # 60% more on 40 clients: a large ratio whose CI still includes 1
    y, p = _cohort(40, 5, factor=1.6)
    r = _run(y, p)
    oe, lo, hi = r.current["oe_ratio"]
    assert oe > 1.25 and lo <= 1 <= hi  # the exact Poisson bound widens the bootstrap's
    assert not any(a.startswith("calibration") for a in r.alarms)
    # 60% more on 3,000 clients: both hold, the alarm says calibration and "more"
    y, p = _cohort(3000, 6, factor=1.6)
    r = _run(y, p)
    assert r.current["oe_ratio"][1] > 1.25
    assert any(a.startswith("calibration") and "more than predicted" in a for a in r.alarms)
