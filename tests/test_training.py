"""Training pipeline: real runs of `python -m pipelines.train` against throw-away tracking stores."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from features.build import scoring_frame, typed_records
from features.labels import build_labels
from features.settings import TrainConfig, load_settings
from models.card import SECTIONS
from models.predict import frame_to_matrix
from models.registry import gate
from models.training import holdout_split, split_groups, train_models
from simulator.generator import generate
from tests.conftest import REPO, make_store

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained")]
NAME = "alliance-risk"


def _client(uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(uri: str) -> list[str]:
    return sorted(v.version for v in _client(uri).search_model_versions(f"name='{NAME}'"))


def test_first_model_becomes_champion_with_its_artifacts(trained_store):
    client = _client(trained_store.uri)
    champ = client.get_model_version_by_alias(NAME, "champion")
    run = client.get_run(champ.run_id)
    for key in (
        "test_auroc",
        "test_auroc_lo",
        "test_auroc_hi",
        "test_cal_slope",
        "test_ece",
        "oracle_auroc",
        "gap_auroc",
        "driver_rank_spearman",
    ):
        assert key in run.data.metrics, key
    assert run.data.params["label.threshold"] == "5.0"
    assert run.data.params["label_definition.rater"] == "client"
    assert run.inputs.dataset_inputs, "the training dataset is logged with mlflow.data"
    assert run.inputs.dataset_inputs[0].dataset.digest
    paths = {
        a.path
        for folder in ("plots", "model_card", "validation", "evaluation")
        for a in client.list_artifacts(champ.run_id, folder)
    }
    for needed in (
        "plots/calibration.png",
        "plots/roc.png",
        "plots/decision_curve.png",
        "plots/shap_groups.png",
        "model_card/model_card.md",
        "model_card/model_card.html",
        "validation/validation_report.html",
        "evaluation/subgroups.csv",
        "evaluation/fairness.csv",
        "evaluation/holdout.csv",
        "plots/fairness_oe_ratio.png",
        "plots/fairness_ppv_high.png",
    ):
        assert needed in paths, needed


def test_model_card_holds_every_tripod_section(trained_store, tmp_path):
    client = _client(trained_store.uri)
    champ = client.get_model_version_by_alias(NAME, "champion")
    md = tmp_path / "card.md"
    local = mlflow.artifacts.download_artifacts(
        run_id=champ.run_id, artifact_path="model_card/model_card.md", dst_path=str(tmp_path)
    )
    md = open(local).read()
    for heading in ("Synthetic data warning", *SECTIONS):
        assert heading in md, heading
    html = open(
        mlflow.artifacts.download_artifacts(
            run_id=champ.run_id, artifact_path="model_card/model_card.html", dst_path=str(tmp_path)
        )
    ).read()
    assert "http://" not in html and "https://" not in html


def test_pyfunc_scores_items_and_scales_alike(trained_store):
    _client(trained_store.uri)
    mlflow.set_registry_uri(trained_store.uri)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    intake = pd.read_csv(
        trained_store.data / "intake.csv",
        dtype={"admission_id": "str", "counsellor_id": "str", "service_id": "str"},
    )
    counsellors = pd.read_csv(
        trained_store.data / "counsellors.csv", dtype={"counsellor_id": "str", "service_id": "str"}
    )
    frame = typed_records(scoring_frame(intake, counsellors))
    item_clients = (
        frame[frame["tcu_ss_01"].notna() & frame["social_support"].isna()]
        .head(20)
        .reset_index(drop=True)
    )
    assert len(item_clients) > 0
    _, scored, errors = frame_to_matrix(item_clients)
    assert not errors
    item_cols = [c for c in frame.columns if c.startswith(("tcu_", "ghq_", "cope_"))]
    as_scales = scored.drop(columns=item_cols + ["items_used"], errors="ignore")
    with_items = model.predict(item_clients)
    with_scales = model.predict(as_scales)
    np.testing.assert_allclose(with_items["risk"], with_scales["risk"], atol=1e-12)
    assert list(with_items.columns[:3]) == ["admission_id", "risk", "band"]
    assert {c for c in with_items.columns if c.startswith("contrib_")} >= {
        "contrib_motivation",
        "contrib_counsellor",
    }


def test_worse_model_does_not_replace_champion(trained_store, tmp_path):
    before = _client(trained_store.uri).get_model_version_by_alias(NAME, "champion").version
    # Predictors shuffled across clients: the labels no longer follow from the intake.
    data = tmp_path / "shuffled"
    shutil.copytree(trained_store.data, data)
    intake = pd.read_csv(data / "intake.csv", dtype=str, keep_default_na=False)
    # 800 admissions are enough for the gate to see there is no signal, and train faster.
    intake = intake.iloc[:800].reset_index(drop=True)
    for table in ("alliance", "episodes"):
        t = pd.read_csv(data / f"{table}.csv", dtype=str, keep_default_na=False)
        t[t["admission_id"].isin(intake["admission_id"])].to_csv(data / f"{table}.csv", index=False)
    keep = ["admission_id", "service_id", "counsellor_id", "admission_date"]
    rest = [c for c in intake.columns if c not in keep]
    rng = np.random.default_rng(0)
    intake[rest] = intake[rest].iloc[rng.permutation(len(intake))].to_numpy()
    intake.to_csv(data / "intake.csv", index=False)
    (data / "ground_truth.json").unlink()
    proc = trained_store.train(data=data)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "registered as challenger" in proc.stdout
    client = _client(trained_store.uri)
    assert client.get_model_version_by_alias(NAME, "champion").version == before
    challenger = client.get_model_version_by_alias(NAME, "challenger")
    assert challenger.tags["challenger_reason"]


def test_gate_refuses_a_model_worse_than_the_champion_beyond_noise():
    cfg = TrainConfig()
    good = {"auroc": 0.75, "cal_slope": 1.0, "log_loss": 0.47}
    assert gate(good, cfg, champion_log_loss=None).promote
    assert gate(good, cfg, champion_log_loss=0.47 + cfg.log_loss_margin / 2).promote
    worse = gate({**good, "log_loss": 0.47 + 2 * cfg.log_loss_margin}, cfg, champion_log_loss=0.47)
    assert not worse.promote and "worse than the champion" in worse.reason
    assert not gate({**good, "auroc": 0.55}, cfg, None).promote
    assert "slope" in gate({**good, "cal_slope": 1.6}, cfg, None).reason


def test_dataset_failing_validation_registers_nothing(trained_store, tmp_path):
    before = _versions(trained_store.uri)
    data = tmp_path / "bad"
    shutil.copytree(trained_store.data, data)
    intake = pd.read_csv(data / "intake.csv", dtype=str, keep_default_na=False)
    victim = intake.loc[3, "admission_id"]
    intake.loc[3, "sex"] = "martian"
    intake.to_csv(data / "intake.csv", index=False)
    proc = trained_store.train(data=data)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "nothing was registered" in out
    assert "sex" in out and victim in out
    assert _versions(trained_store.uri) == before


def test_training_killed_mid_run_leaves_the_champion(trained_store):
    before_versions = _versions(trained_store.uri)
    before = _client(trained_store.uri).get_model_version_by_alias(NAME, "champion").version
    cmd = [
        sys.executable,
        "-m",
        "pipelines.train",
        "--data",
        str(trained_store.data),
        "--config",
        str(trained_store.config),
    ]
    proc = subprocess.Popen(
        cmd,
        env=trained_store.env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    for line in proc.stdout:
        if "fold 1/" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _client(trained_store.uri).get_model_version_by_alias(NAME, "champion").version == before
    assert _versions(trained_store.uri) == before_versions


def _small_problem(seed: int = 5):
    c = generate(900, seed=seed)
    labels = build_labels(c.alliance, load_settings().label, c.intake, c.episodes)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    frame = frame[frame["admission_id"].isin(labels.labels.index)].reset_index(drop=True)
    X, scored, _ = frame_to_matrix(frame)
    y = labels.labels.reindex(frame["admission_id"]).to_numpy().astype(int)
    return scored, X, y


def test_same_seed_gives_same_metrics():
    scored, X, y = _small_problem()
    settings = load_settings(train__n_splits=3, train__tune_iterations=2, train__n_bootstrap=30)
    a = train_models(settings, scored, X, y)
    b = train_models(settings, scored, X, y)
    assert a.test_metrics == b.test_metrics
    pd.testing.assert_frame_equal(a.cv, b.cv)


def test_no_counsellor_in_both_train_and_test():
    scored, X, y = _small_problem()
    groups = split_groups(scored, "counsellor")
    tr, te = holdout_split(y, groups, 0.2, seed=7)
    assert set(groups[tr]).isdisjoint(groups[te])
    known_test = set(scored["counsellor_id"].iloc[te].dropna())
    known_train = set(scored["counsellor_id"].iloc[tr].dropna())
    assert known_test and known_test.isdisjoint(known_train)
    by_service = split_groups(scored, "service")
    tr, te = holdout_split(y, by_service, 0.3, seed=7)
    assert set(by_service[tr]).isdisjoint(by_service[te])


def test_fresh_store_without_champion_trains_with_if_no_champion_and_then_skips(tmp_path):
    store = make_store(tmp_path, n=1200, seed=21)
    first = store.train("--if-no-champion")
    assert first.returncode == 0 and "is the new champion" in first.stdout, (
        first.stdout[-2000:] + first.stderr[-2000:]
    )
    second = store.train("--if-no-champion")
    assert second.returncode == 0 and "already exists" in second.stdout


def test_one_configured_candidate_is_the_champion_candidate():
    from models.training import choose_champion

    cv = pd.DataFrame(
        {
            "candidate": ["lightgbm"] * 3,
            "log_loss": [0.5, 0.51, 0.49],
            "auroc": [0.7] * 3,
            "brier": [0.2] * 3,
            "cal_slope": [1.0] * 3,
        }
    )
    kind, reason, summary = choose_champion(cv, 0.005)
    assert kind == "lightgbm" and "only candidate" in reason
    assert load_settings(train__candidates=("lightgbm",)).train.candidates == ("lightgbm",)
    with pytest.raises(ValueError):
        load_settings(train__candidates=("forest",))
