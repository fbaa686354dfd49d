"""Settings precedence (defaults < TOML < environment < command-line flags), the sections that
used to live outside Settings, and what every command line shares (pipelines/cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from features.settings import ENV_PREFIX, load_settings
from harness.commands import REPO

DEFAULT_THRESHOLD, TOML_THRESHOLD, ENV_THRESHOLD, FLAG_THRESHOLD = 5.0, 4.0, 6.0, 5.5


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No setting of the machine running the tests may leak into these."""
    for k in list(os.environ):
        if k.startswith(ENV_PREFIX) or k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.delenv(k)


def _toml(tmp_path, text: str):
    """A settings file holding ``text``."""
    config = tmp_path / "settings.toml"
    config.write_text(text)
    return config


@pytest.mark.parametrize(
    ("toml", "env", "flag", "want"),
    [
        (False, False, False, DEFAULT_THRESHOLD),
        (True, False, False, TOML_THRESHOLD),
        (False, True, False, ENV_THRESHOLD),
        (True, True, False, ENV_THRESHOLD),
        (True, True, True, FLAG_THRESHOLD),
        (False, False, True, FLAG_THRESHOLD),
    ],
    ids=["default", "toml", "env", "toml+env", "flag over toml+env", "flag"],
)
def test_label_threshold_precedence(tmp_path, monkeypatch, toml, env, flag, want):
    config = (
        _toml(tmp_path, f"[label]\nthreshold = {TOML_THRESHOLD}\nrater = 'counsellor'\n")
        if toml
        else None
    )
    if env:
        monkeypatch.setenv("ALLIANCE_RISK_LABEL__THRESHOLD", str(ENV_THRESHOLD))
    s = load_settings(config, label__threshold=FLAG_THRESHOLD if flag else None)
    assert s.label.threshold == want
    # Sources merge key by key: the TOML's other label key survives an env or flag threshold.
    assert s.label.rater == ("counsellor" if toml else "client")


@pytest.mark.parametrize(
    ("toml", "env", "want"),
    [(False, False, 0.2), (True, False, 0.3), (False, True, 0.25), (True, True, 0.25)],
    ids=["default", "toml", "env", "toml+env"],
)
def test_monitor_thresholds_are_settings(tmp_path, monkeypatch, toml, env, want):
    config = _toml(tmp_path, "[monitor]\npsi_threshold = 0.3\nbins = 5\n") if toml else None
    if env:
        monkeypatch.setenv("ALLIANCE_RISK_MONITOR__PSI_THRESHOLD", "0.25")
    s = load_settings(config)
    assert s.monitor.psi_threshold == want
    assert s.monitor.bins == (5 if toml else 10)


@pytest.mark.parametrize(
    ("toml", "env", "want"),
    [(False, False, "sqlite-default"), (True, False, "toml"), (True, True, "env")],
    ids=["default", "toml", "MLFLOW_TRACKING_URI over toml"],
)
def test_tracking_uri_precedence(tmp_path, monkeypatch, toml, env, want):
    config = _toml(tmp_path, "tracking_uri = 'sqlite:////from/toml.db'\n") if toml else None
    if env:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////from/env.db")
    uri = load_settings(config).tracking_uri
    expected = {
        "sqlite-default": f"sqlite:///{REPO / 'mlruns' / 'mlflow.db'}",
        "toml": "sqlite:////from/toml.db",
        "env": "sqlite:////from/env.db",
    }[want]
    assert uri == expected


def test_serving_workers_setting_reaches_the_bentoml_service():
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX + "SERVING__")} | {
        "ALLIANCE_RISK_SERVING__WORKERS": "3",
        "BENTOML_DO_NOT_TRACK": "True",
    }
    code = "from serving.service import AllianceRisk; print(AllianceRisk.config['workers'])"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "3"
    assert load_settings().serving.workers == 2


def test_retired_and_misspelt_options_are_refused_by_name(tmp_path):
    config = tmp_path / "old.toml"
    config.write_text("[train]\ncalibration = 'isotonic'\n")  # never read; removed
    with pytest.raises(ValueError, match=r"train\.calibration"):
        load_settings(config)
    config.write_text("[label]\ntreshold = 4.0\n")
    with pytest.raises(ValueError, match=r"label\.treshold"):
        load_settings(config)
    with pytest.raises(FileNotFoundError, match="nowhere.toml"):
        load_settings(tmp_path / "nowhere.toml")


def test_registry_uri_follows_mlflow_registry_uri(monkeypatch, tmp_path):
    import mlflow

    from models.lifecycle.store import get_client, registry_uri

    tracking = f"sqlite:///{tmp_path / 'tracking.db'}"
    assert registry_uri(tracking) == tracking
    get_client(tracking)
    assert mlflow.get_registry_uri() == tracking
    assert "MLFLOW_REGISTRY_URI" not in os.environ  # nothing stale for child processes
    shared = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", shared)
    assert registry_uri(tracking) == shared
    client = get_client(tracking)
    assert client._registry_uri == shared and mlflow.get_registry_uri() == shared
    assert mlflow.get_tracking_uri() == tracking


# ---------------------------------------------------------------------------------------------
# The command lines

COMMANDS = ("simulate", "validate", "train", "score", "monitor", "promote", "serve")


def _run(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_version_config_and_help_without_machine_paths(name, tmp_path):
    help_ = _run(f"pipelines.{name}", "--help", cwd=tmp_path)
    assert help_.returncode == 0, help_.stderr
    assert "--config" in help_.stdout and "--version" in help_.stdout
    for path in (str(REPO), str(tmp_path), os.path.expanduser("~")):
        assert path not in help_.stdout.replace("\n", "")
    version = _run(f"pipelines.{name}", "--version", cwd=tmp_path)
    assert version.returncode == 0 and "alliance-risk 0.1.0" in version.stdout


def test_input_and_output_flags_read_alike_with_the_old_spellings_kept(tmp_path, monkeypatch):
    from pipelines import monitor, score, simulate, train, validate

    monkeypatch.chdir(tmp_path)
    d, o = tmp_path / "d", tmp_path / "o"
    assert train.parse_args(["--input", "d"]).input == d
    assert train.parse_args(["--data", "d"]).input == d
    assert simulate._parser().parse_args(["--output", "o"]).output == o
    assert simulate._parser().parse_args(["--out", "o"]).output == o
    assert validate._parser().parse_args(["d", "--output", "o"]).output == o
    assert validate._parser().parse_args(["--input", "d", "--report-dir", "o"]).input == d
    assert score._parser().parse_args(["--input", "d", "--output", "o"]).output == o
    for flags in (["--input", "d", "--output", "o"], ["--current", "d", "--out", "o"]):
        args = monitor._parser().parse_args(["--reference", "r", *flags])
        assert (args.input, args.output, args.reference) == (d, o, tmp_path / "r")


def test_config_that_does_not_exist_is_a_clear_error_in_every_data_command(tmp_path):
    missing = str(tmp_path / "nowhere.toml")
    (tmp_path / "d").mkdir()
    (tmp_path / "r").mkdir()
    cases = {
        "validate": ["d", "--config", missing],
        "train": ["--config", missing],
        "score": ["--input", "d", "--output", "o", "--config", missing],
        "monitor": ["--reference", "r", "--input", "d", "--config", missing],
        "simulate": ["--n", "10", "--config", missing],
    }
    for name, args in cases.items():
        proc = _run(f"pipelines.{name}", *args, cwd=tmp_path)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert "nowhere.toml does not exist" in proc.stdout + proc.stderr, name
        assert "Traceback" not in proc.stderr, name
