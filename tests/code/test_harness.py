"""The test harness's own promises (tests/conftest.py): a missing prerequisite fails under CI and
skips with its reason elsewhere, and MLflow's tracking/registry URIs that code under test sets are
put back after each test."""

from __future__ import annotations

import os

import pytest

from harness.commands import restored_mlflow_uris
from harness.prereqs import need


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_a_missing_prerequisite_fails_under_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    # BaseException: a skip raised instead must be caught here and fail this test, not skip it.
    with pytest.raises(BaseException) as info:
        need(False, "no java")
    assert info.type is pytest.fail.Exception, info.type
    assert "prerequisite missing under CI: no java" in str(info.value)
    need(True, "present: nothing happens")


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_a_missing_prerequisite_skips_with_its_reason_elsewhere(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as info:
        need(False, "no chromium")
    assert info.type is pytest.skip.Exception and "no chromium" in str(info.value)


def test_mlflow_uris_set_by_code_under_test_are_restored(tmp_path):
    import mlflow

    from models.lifecycle.store import get_client

    before = (
        mlflow.get_tracking_uri(),
        mlflow.get_registry_uri(),
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with restored_mlflow_uris():
        get_client(uri)  # sets both globals and, through MLflow, both environment variables
        assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri
        assert os.environ["MLFLOW_TRACKING_URI"] == uri
    after = (
        mlflow.get_tracking_uri(),
        mlflow.get_registry_uri(),
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )
    assert after == before
    assert uri not in after
