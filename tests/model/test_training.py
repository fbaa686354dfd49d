"""Training: the evaluation protocol, model selection, the promotion gate and the registry.

Unit tests call the functions directly with expected values computed by hand or with
scikit-learn; the end-to-end tests run `python -m pipelines.train` against throw-away tracking
stores and read back what a user would see (the printed outcome and the registry's aliases).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import log_loss, roc_auc_score

from features.build import scoring_frame, typed_records
from features.labels import build_labels
from features.settings import TrainConfig, load_settings
from harness.commands import REPO, make_store
from models.building import metrics as M
from models.building.card import SECTIONS
from models.building.training import (
    auto_repeats,
    choose_champion,
    choose_protocol,
    holdout_split,
    split_groups,
    train_models,
)
from models.lifecycle.gate import GateEvidence, gate
from models.scoring.predict import frame_to_matrix
from simulator.generator import generate, write

NAME = "alliance-risk"
CFG = TrainConfig()  # min_auroc 0.60, slope_range (0.7, 1.3), log_loss_margin 0.005
GOOD = {
    "auroc": (0.75, 0.70, 0.80),
    "cal_slope": (1.0, 0.85, 1.15),
    "log_loss": (0.47, 0.45, 0.49),
}
NULL_LL = 0.56  # intercept-only log loss at a prevalence of about 25%


def _client(uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(uri: str) -> list[str]:
    return sorted(str(v.version) for v in _client(uri).search_model_versions(f"name='{NAME}'"))


def _champion(uri: str) -> str | None:
    try:
        return str(_client(uri).get_model_version_by_alias(NAME, "champion").version)
    except mlflow.exceptions.MlflowException:
        return None


# ------------------------------------------------------------------------------------- the gate
def _ev(vs=None, **metrics) -> GateEvidence:
    return GateEvidence({**GOOD, **metrics}, NULL_LL, vs, 1000 if vs else 0)


def test_gate_promotes_a_first_model_whose_cis_are_acceptable():
    d = gate(_ev(), CFG)
    assert d.promote and "no champion yet" in d.reason
    # The reason names the figures with their CIs.
    assert "AUROC 0.750 [95% CI 0.700 to 0.800]" in d.reason
    assert "calibration slope 1.00 [95% CI 0.85 to 1.15]" in d.reason


def test_gate_reads_the_slope_ci_not_its_point():
    # Issue 10: a point slope of 1.45 from a small sample refused a good model. The CI reaches 1.3.
    assert gate(_ev(cal_slope=(1.45, 1.05, 2.10)), CFG).promote
    # Below the range across the whole CI.
    below = gate(_ev(cal_slope=(0.55, 0.45, 0.69)), CFG)
    assert not below.promote
    assert "calibration slope 0.55 [95% CI 0.45 to 0.69] lies wholly below" in below.reason
    above = gate(_ev(cal_slope=(1.60, 1.31, 1.95)), CFG)
    assert not above.promote and "wholly above the acceptable [0.7, 1.3]" in above.reason


def test_gate_slope_boundaries_are_inside():
    # A CI that only touches the range counts as inside (the range is closed).
    assert gate(_ev(cal_slope=(0.6, 0.5, 0.7)), CFG).promote
    assert gate(_ev(cal_slope=(1.5, 1.3, 1.7)), CFG).promote
    assert not gate(_ev(cal_slope=(0.6, 0.5, 0.6999)), CFG).promote
    assert not gate(_ev(cal_slope=(1.5, 1.3001, 1.7)), CFG).promote
    assert not gate(_ev(cal_slope=(float("nan"),) * 3), CFG).promote


def test_gate_refuses_chance_discrimination():
    at_chance = gate(_ev(auroc=(0.56, 0.50, 0.62)), CFG)  # lower bound exactly 0.5: includes it
    assert not at_chance.promote
    assert "AUROC 0.560 [95% CI 0.500 to 0.620] includes 0.5" in at_chance.reason
    assert gate(_ev(auroc=(0.56, 0.501, 0.62)), CFG).promote
    assert not gate(_ev(auroc=(float("nan"),) * 3), CFG).promote


def test_gate_refuses_a_log_loss_no_better_than_the_prevalence():
    same = gate(_ev(log_loss=(NULL_LL, 0.54, 0.58)), CFG)
    assert not same.promote and "not below the intercept-only model's 0.5600" in same.reason
    assert gate(_ev(log_loss=(NULL_LL - 1e-4, 0.54, 0.58)), CFG).promote


def test_gate_auroc_floor_applies_to_the_whole_ci():
    low = gate(_ev(auroc=(0.56, 0.52, 0.5999)), CFG)
    assert not low.promote and "wholly below the floor 0.600" in low.reason
    assert gate(_ev(auroc=(0.56, 0.52, 0.60)), CFG).promote


def test_gate_compares_with_the_champion_on_its_paired_ci():
    m = CFG.log_loss_margin
    # Better, or worse by less than the margin, or worse but within noise: promote.
    assert gate(_ev(vs=(-0.02, -0.03, -0.01)), CFG).promote
    assert gate(_ev(vs=(0.004, 0.001, 0.007)), CFG).promote
    assert gate(_ev(vs=(0.02, -0.01, 0.05)), CFG).promote
    edge = gate(_ev(vs=(0.01, m, 0.02)), CFG)  # lower bound exactly the margin: not beyond it
    assert edge.promote and "not worse than the champion" in edge.reason
    worse = gate(_ev(vs=(0.02, 0.0051, 0.03)), CFG)
    assert not worse.promote
    assert (
        "log loss difference (candidate - champion) 0.0200 [95% CI 0.0051 to 0.0300]"
        in worse.reason
    )
    assert "paired on 1,000 admissions" in worse.reason


# ----------------------------------------------------------------- metrics the gate relies on
def test_paired_difference_and_row_log_loss_agree_with_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    pa, pb = rng.uniform(0.05, 0.95, 400), rng.uniform(0.05, 0.95, 400)
    groups = np.repeat(np.arange(40), 10)
    la, lb = M.row_log_loss(y, pa), M.row_log_loss(y, pb)
    assert la.mean() == pytest.approx(log_loss(y, pa), abs=1e-12)
    point, lo, hi = M.paired_difference_ci(la, lb, groups, n_boot=500, seed=1)
    assert point == pytest.approx(log_loss(y, pa) - log_loss(y, pb), abs=1e-12)
    assert lo < point < hi
    # Repeats: a row's loss is averaged over repeats, so the mean is the mean of the repeats' losses.
    P = np.vstack([pa, pb])
    assert M.row_log_loss(y, P).mean() == pytest.approx(
        (log_loss(y, pa) + log_loss(y, pb)) / 2, abs=1e-12
    )
    # The same difference on every row: no spread, a CI of width zero.
    assert M.paired_difference_ci(np.full(50, 0.3), np.full(50, 0.1), np.arange(50)) == (
        pytest.approx(0.2),
        pytest.approx(0.2),
        pytest.approx(0.2),
    )


def test_repeated_bootstrap_averages_the_repeats():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    P = np.clip(y * 0.3 + rng.uniform(0, 0.7, (3, 300)), 0.01, 0.99)
    ci = M.repeated_bootstrap_ci(y, P, n_boot=100, seed=2, groups=np.arange(300) % 30)
    expected_auroc = np.mean([roc_auc_score(y, P[r]) for r in range(3)])
    assert ci["auroc"][0] == pytest.approx(expected_auroc, abs=1e-12)
    assert ci["log_loss"][0] == pytest.approx(np.mean([log_loss(y, P[r]) for r in range(3)]))
    for k in ("auroc", "brier", "log_loss", "cal_slope", "cal_intercept"):
        pt, lo, hi = ci[k]
        assert lo <= pt <= hi, k


# ---------------------------------------------------------------- protocol and selection
def test_repeats_and_protocol_follow_n():
    assert [auto_repeats(n) for n in (190, 400, 1100, 5000)] == [5, 2, 1, 1]
    small = choose_protocol(190, 30, CFG)
    assert (small.name, small.n_splits, small.n_repeats) == ("cv", 5, 5)
    assert choose_protocol(190, 3, CFG).n_splits == 3  # never more folds than groups
    assert choose_protocol(CFG.holdout_from - 1, 500, CFG).name == "cv"
    assert choose_protocol(CFG.holdout_from, 500, CFG).name == "holdout"
    fixed = choose_protocol(190, 30, CFG.model_copy(update={"n_repeats": 3}))
    assert fixed.n_repeats == 3


def test_one_se_rule_prefers_the_simpler_candidate_within_noise():
    rng = np.random.default_rng(5)
    groups = np.arange(2000) % 100
    base = rng.exponential(0.5, 2000)
    noise = rng.normal(0, 0.2, 2000)
    # The complex one is better by exactly 0.001 on average, inside one SE of the row-wise
    # difference (SD 0.2 over 2,000 rows in 100 groups: SE about 0.2 / sqrt(2000) = 0.0045).
    close = {"simple": base + noise - noise.mean() + 0.001, "complex": base}
    kind, reason, table = choose_champion(close, groups)
    assert kind == "simple" and "one-SE rule" in reason
    se = table.set_index("candidate").loc["simple", "se"]
    assert 0.001 < se < 0.02
    # Better by 0.05 with the same noise: far beyond one SE, the complex one wins.
    far = {"simple": base + 0.05 + noise - noise.mean(), "complex": base}
    kind, reason, _ = choose_champion(far, groups)
    assert kind == "complex" and "lowest log loss" in reason
    kind, reason, _ = choose_champion({"lightgbm": base}, groups)
    assert kind == "lightgbm" and "only candidate" in reason
    assert load_settings(train__candidates=("lightgbm",)).train.candidates == ("lightgbm",)
    with pytest.raises(ValueError):
        load_settings(train__candidates=("forest",))


def _problem(n: int, seed: int, shuffle: bool = False):
    c = generate(n, seed=seed)
    labels = build_labels(c.alliance, load_settings().label, c.intake, c.episodes)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    frame = frame[frame["admission_id"].isin(labels.labels.index)].reset_index(drop=True)
    X, scored, _ = frame_to_matrix(frame)
    y = labels.labels.reindex(frame["admission_id"]).to_numpy().astype(int)
    if shuffle:
        y = np.random.default_rng(seed).permutation(y)
    return scored, X, y


FAST = {"train__n_splits": 3, "train__tune_iterations": 2, "train__n_bootstrap": 50}


def test_cv_protocol_scores_every_admission_out_of_fold():
    scored, X, y = _problem(300, seed=5)
    settings = load_settings(**FAST)
    a = train_models(settings, scored, X, y)
    assert a.protocol.name == "cv" and a.protocol.n_repeats == auto_repeats(len(y))
    assert a.eval_P.shape == (a.protocol.n_repeats, len(y))
    assert np.isfinite(a.eval_P).all()  # every admission scored in every repeat
    assert len(a.test_frame) == len(y)
    assert a.null_log_loss == pytest.approx(log_loss(y, np.full(len(y), y.mean())))
    assert a.test_metrics["auroc"][0] == pytest.approx(
        np.mean([roc_auc_score(y, p) for p in a.eval_P]), abs=1e-12
    )
    curve = a.learning_curve.set_index("fraction")
    assert curve.loc[1.0, "log_loss"] == pytest.approx(a.test_metrics["log_loss"][0])
    services = sorted(scored["service_id"].astype(str).unique())
    assert a.transport["service"].tolist() == services
    assert a.transport["n"].sum() == len(y)
    b = train_models(settings, scored, X, y, extras=False)  # the same evaluation, run again
    assert a.test_metrics == b.test_metrics
    pd.testing.assert_frame_equal(a.cv, b.cv)


def test_holdout_protocol_above_the_switch_keeps_groups_apart():
    scored, X, y = _problem(900, seed=5)
    settings = load_settings(**FAST, train__holdout_from=500)
    r = train_models(settings, scored, X, y, extras=False)
    assert r.protocol.name == "holdout" and r.eval_P.shape == (1, len(r.eval_rows))
    groups = split_groups(scored, "counsellor")
    train_rows = np.setdiff1d(np.arange(len(y)), r.eval_rows)
    assert set(groups[train_rows]).isdisjoint(groups[r.eval_rows])


def test_no_counsellor_in_both_train_and_test():
    scored, X, y = _problem(900, seed=5)
    groups = split_groups(scored, "counsellor")
    tr, te = holdout_split(y, groups, 0.2, seed=7)
    assert set(groups[tr]).isdisjoint(groups[te])
    known_test = set(scored["counsellor_id"].iloc[te].dropna())
    known_train = set(scored["counsellor_id"].iloc[tr].dropna())
    assert known_test and known_test.isdisjoint(known_train)
    by_service = split_groups(scored, "service")
    tr, te = holdout_split(y, by_service, 0.3, seed=7)
    assert set(by_service[tr]).isdisjoint(by_service[te])


@pytest.mark.slow
def test_shuffled_labels_are_refused_at_5000():
    """The labels no longer follow from the intake: the gate must see chance, at a large n too."""
    scored, X, y = _problem(5000, seed=8, shuffle=True)
    r = train_models(load_settings(**FAST), scored, X, y, extras=False)
    d = gate(GateEvidence(r.test_metrics, r.null_log_loss), load_settings().train)
    assert not d.promote
    assert "includes 0.5" in d.reason or "intercept-only" in d.reason


# ------------------------------------------------------------------- end to end, the registry
@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_first_model_becomes_champion_with_its_artifacts(trained_store):
    client = _client(trained_store.uri)
    champ = client.get_model_version_by_alias(NAME, "champion")
    run = client.get_run(champ.run_id)
    metrics = run.data.metrics
    for key in ("auroc", "brier", "log_loss", "cal_slope", "cal_intercept", "auprc"):
        pt, lo, hi = (metrics[f"test_{key}{s}"] for s in ("", "_lo", "_hi"))
        assert lo <= pt <= hi, key
    assert 0.5 < metrics["test_auroc_lo"] and metrics["null_log_loss"] > metrics["test_log_loss"]
    # No oracle unless asked for (--oracle).
    assert not any(k.startswith(("oracle_", "gap_")) for k in metrics)
    assert run.data.tags["evaluation_protocol"] == "cv"
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
        "evaluation/learning_curve.csv",
        "evaluation/leave_one_service_out.csv",
    ):
        assert needed in paths, needed


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_model_card_holds_every_tripod_section(trained_store, tmp_path):
    client = _client(trained_store.uri)
    champ = client.get_model_version_by_alias(NAME, "champion")
    local = mlflow.artifacts.download_artifacts(
        run_id=champ.run_id, artifact_path="model_card/model_card.md", dst_path=str(tmp_path)
    )
    md = open(local).read()
    assert md.startswith(f"# Model card: {NAME} version {champ.version}\n"), md[:200]
    for heading in ("Synthetic data warning", *SECTIONS):
        assert heading in md, heading
    assert "Protocol: repeated grouped cross-validation on all" in md
    assert "Learning curve of this data" in md and "leave-one-service-out" in md
    auroc = client.get_run(champ.run_id).data.metrics["test_auroc"]
    assert f"| auroc | {auroc:.3f} |" in md
    html = open(
        mlflow.artifacts.download_artifacts(
            run_id=champ.run_id, artifact_path="model_card/model_card.html", dst_path=str(tmp_path)
        )
    ).read()
    assert "http://" not in html and "https://" not in html


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
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
    assert list(with_items.columns[:5]) == ["admission_id", "risk", "risk_low", "risk_high", "band"]
    assert {c for c in with_items.columns if c.startswith("contrib_")} >= {
        "contrib_motivation",
        "contrib_counsellor",
    }


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
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


def _subset(src, dst, n: int):
    """The first n admissions of a cohort folder (all four tables), for a quicker run."""
    shutil.copytree(src, dst)
    intake = pd.read_csv(dst / "intake.csv", dtype=str, keep_default_na=False).iloc[:n]
    intake.to_csv(dst / "intake.csv", index=False)
    for table in ("alliance", "episodes"):
        t = pd.read_csv(dst / f"{table}.csv", dtype=str, keep_default_na=False)
        t[t["admission_id"].isin(intake["admission_id"])].to_csv(dst / f"{table}.csv", index=False)
    return dst


@pytest.mark.slow
@pytest.mark.xdist_group("trained")
def test_training_killed_at_registration_leaves_the_champion(trained_store, tmp_path):
    """Killed at registration time (not at the first fold): the champion alias must not move.

    One run pauses at each point in turn (``ALLIANCE_RISK_TEST_PAUSE_AT``; it waits for a line on
    its stdin to go on): while it waits, the store is exactly what a SIGKILL there would leave, as a killed
    process does nothing more. Before registration: no new version. Before the alias: a version
    registered but neither champion nor challenger. Then it is killed with SIGKILL, and the store
    is checked again."""
    trained_store = trained_store.copy(tmp_path / "store")  # this test may register a version
    client = _client(trained_store.uri)
    before_versions = _versions(trained_store.uri)
    before = _champion(trained_store.uri)
    data = _subset(trained_store.data, tmp_path / "data", 400)
    # A margin of 1.0 makes the gate promote whatever the comparison with the champion says, so
    # the alias would certainly move if the run went on.
    config = tmp_path / "promote.toml"
    config.write_text(
        "[train]\nn_splits = 3\ntune_iterations = 2\nn_bootstrap = 50\nlog_loss_margin = 1.0\n"
        'candidates = ["ridge"]\n'  # one family: what is tested is registration, not selection
    )
    cmd = [sys.executable, "-m", "pipelines.train", "--data", str(data), "--config", str(config)]
    env = {**trained_store.env(), "ALLIANCE_RISK_TEST_PAUSE_AT": "before_registration,before_alias"}
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen, deadline = [], time.time() + 600

    def wait_for(point: str) -> None:
        for line in proc.stdout:
            seen.append(line)
            if f"paused at {point}" in line or time.time() > deadline:
                break
        assert any(f"paused at {point}" in line for line in seen), "".join(seen)[-3000:]

    def registered_but_not_moved() -> None:
        assert _champion(trained_store.uri) == before
        (new,) = set(_versions(trained_store.uri)) - set(before_versions)
        assert client.get_model_version(NAME, new).aliases == []

    try:
        wait_for("before_registration")
        assert any("gate: promote" in line for line in seen), "the run would have been promoted"
        assert _champion(trained_store.uri) == before
        assert _versions(trained_store.uri) == before_versions
        proc.stdin.write("\n")  # on to the next point
        proc.stdin.flush()
        wait_for("before_alias")
        registered_but_not_moved()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    registered_but_not_moved()  # and so it stays once the run is killed


# A store that lives through a sequence of runs: a real signal at n = 190 (issue 10: no champion
# was registered at this size), then shuffled labels at n = 190 (refused), then a larger cohort of
# the same world whose model is better than the n = 190 champion (replaces it).
@pytest.fixture(scope="session")
def ladder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder")
    store = make_store(root, n=190, seed=31)
    shuffled = root / "shuffled"
    shutil.copytree(store.data, shuffled)
    # Labels shuffled: every admission gets another admission's alliance ratings.
    alliance = pd.read_csv(shuffled / "alliance.csv", dtype=str, keep_default_na=False)
    ids = alliance["admission_id"].unique()
    perm = dict(zip(ids, np.random.default_rng(1).permutation(ids), strict=True))
    alliance["admission_id"] = alliance["admission_id"].map(perm)
    alliance.to_csv(shuffled / "alliance.csv", index=False)
    # The protocol a user gets at this size (5-fold CV, automatic repeats: 5 at n = 190); fewer
    # tuning draws keep the three runs quick. (3-fold CV with 2 repeats at n = 168 trained on 112
    # clients per fold and read AUROC 0.51: too little data per fold to show the signal.)
    store.config.write_text("[train]\ntune_iterations = 2\nn_bootstrap = 100\n")
    larger = root / "larger"
    write(generate(1500, seed=32), larger)
    # The shuffled run needs no repeats to be refused (one 5-fold CV: its CI is, if anything,
    # wider): a fifth of its cross-validation, the same gate.
    one_cv = root / "one_cv.toml"
    one_cv.write_text("[train]\ntune_iterations = 2\nn_bootstrap = 100\nn_repeats = 1\n")
    steps = {}
    for step, data, config in (
        ("real_190", store.data, store.config),
        ("shuffled_190", shuffled, one_cv),
        ("larger", larger, store.config),
    ):
        proc = replace(store, config=config).train(data=data)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        steps[step] = (proc.stdout, _champion(store.uri))
    return store, steps


@pytest.mark.slow
@pytest.mark.xdist_group("ladder")  # one worker builds the three-run ladder once
def test_real_signal_at_190_gets_a_champion(ladder):
    _, steps = ladder
    out, champion = steps["real_190"]
    assert "version 1 is the new champion: no champion yet" in out
    assert champion == "1"


@pytest.mark.slow
@pytest.mark.xdist_group("ladder")  # one worker builds the three-run ladder once
def test_shuffled_labels_at_190_are_refused_and_the_champion_stays(ladder):
    _, steps = ladder
    out, champion = steps["shuffled_190"]
    assert "version 2 registered as challenger" in out
    assert "includes 0.5" in out or "intercept-only" in out
    assert champion == "1"


@pytest.mark.slow
@pytest.mark.xdist_group("ladder")  # one worker builds the three-run ladder once
def test_a_better_second_model_replaces_the_champion(ladder):
    store, steps = ladder
    out, champion = steps["larger"]
    assert "version 3 is the new champion: not worse than the champion" in out
    assert champion == "3"
    tags = _client(store.uri).get_model_version(NAME, "3").tags
    assert tags["previous_champion"] == "1"
    # The paired difference printed with its CI is negative: the larger cohort's model is better.
    diff = tags["promotion_reason"].split("(candidate - champion) ")[1].split(" ")[0]
    assert float(diff) < 0


@pytest.mark.slow
def test_fresh_store_without_champion_trains_with_if_no_champion_and_then_skips(tmp_path):
    store = make_store(tmp_path, n=400, seed=21)
    with store.config.open("a") as fh:  # one family: what is tested is the skip, not selection
        fh.write('candidates = ["ridge"]\n')
    first = store.train("--if-no-champion")
    assert first.returncode == 0 and "is the new champion" in first.stdout, (
        first.stdout[-2000:] + first.stderr[-2000:]
    )
    second = store.train("--if-no-champion")
    assert second.returncode == 0 and "already exists" in second.stdout


# ------------------------------------------------------------------------- national scale
def test_validation_in_chunks_finds_the_same_problems(monkeypatch):
    """Large tables are validated in chunks (memory); duplicates split across row ranges must still
    be found, because chunks hold whole row-id groups."""
    import validation.suites as suites
    from harness.cohort import make_valid_tables
    from validation.report import validate_tables

    tables = make_valid_tables()
    tables["intake"].loc[3, "sex"] = "martian"
    tables["intake"].loc[5, "admission_id"] = tables["intake"].loc[29, "admission_id"]
    alliance = tables["alliance"]
    tables["alliance"] = pd.concat([alliance, alliance.iloc[[4]]], ignore_index=True)

    def errors():
        report = validate_tables(tables)
        return [(e.table, e.field, e.reason, e.value) for e in report.errors]

    whole = errors()
    monkeypatch.setattr(suites, "CHUNK_ROWS", 7)
    assert len(suites._chunks("intake", tables["intake"])) == 5  # 30 rows in chunks of about 7
    assert errors() == whole
    found = {(t, f, r.split(" [row")[0]) for t, f, r, _ in whole}
    assert ("intake", "admission_id", "duplicate admission_id; must be unique") in found
    assert (
        "intake",
        "sex",
        "not an allowed code (one of male, female, other, not_stated)",
    ) in found
    dup_rows = [r for t, f, r, _ in whole if f == "rater" and "more than one row" in r]
    assert len(dup_rows) == 2  # the original row 4 and its copy at the end


def test_logged_dataset_schema_from_a_few_rows_is_the_whole_frames():
    """The dataset logged to MLflow gets its schema from ``schema_rows`` (national scale: MLflow
    reads every value of an object column otherwise); it must be the schema of every row."""
    from mlflow.types.utils import _infer_schema

    from models.building.tracking import schema_rows

    n = 3000
    rng = np.random.default_rng(0)
    flags = rng.random(n) < 0.5
    df = pd.DataFrame(
        {
            "admission_id": pd.Series([f"A{i:05d}" for i in range(n)], dtype="str"),
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "count": rng.integers(0, 5, n),
            "flag_gaps": pd.Series(np.where(flags, True, False), dtype=object).where(
                rng.random(n) > 0.2, np.nan
            ),
            "flag_full": pd.Series(flags, dtype=object),
            "empty": pd.Series([np.nan] * n, dtype=object),
            "code": pd.Series(rng.choice(["a", "b", None], n), dtype=object),
        }
    )
    rows = schema_rows(df)
    assert len(rows) < 20
    assert _infer_schema(df.iloc[rows]) == _infer_schema(df)
