"""Faults and security at the edges: a corrupt tracking store, a corrupted model artifact, API-key
comparison in constant time, and request body limits on a live server.

Training killed mid-run is in test_training; an unwritable audit store is in test_serving.
"""

from __future__ import annotations

import hmac
import re
import shutil
from pathlib import Path

import httpx
import pytest

from harness.commands import SERVE_KEY, export_champion, launch_service, service_env
from models.lifecycle.resolve import ModelNotFound
from models.lifecycle.resolve import load as _load
from serving.auth import KeyRing, key_digest

NAME = "alliance-risk"


def load_champion(uri: str, name: str = NAME):
    """The champion as a serving process loads it (lean: no pandas or scikit-learn)."""
    return _load(uri, name, lean=True)


# ---- keys: constant-time comparison --------------------------------------------------------


def test_every_key_digest_is_compared_whatever_the_key(monkeypatch):
    """No early exit: a key matching the first digest, the last one, or none costs the same
    number of constant-time comparisons, each on equal-length digests."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    ring = KeyRing([key_digest("first"), key_digest("second")], plain="third")
    for key, ok in [("first", True), ("third", True), ("nope", False), ("x" * 500, False)]:
        calls.clear()
        assert ring.check_key(key) is ok
        assert len(calls) == 3, (key, calls)
        assert all(a == b == 32 for a, b in calls)


def test_malformed_key_configuration_is_ignored_not_accepted():
    ring = KeyRing(["not-a-digest", key_digest("good").upper()])
    assert ring.invalid == 1 and len(ring) == 1
    assert ring.check_header("Bearer good") and ring.check_header(b"bearer good")
    assert not ring.check_header("Basic good") and not ring.check_header("Bearer ")
    assert not ring.check_header("not-a-digest")


# ---- the tracking store and the model artifact ---------------------------------------------


def test_corrupt_tracking_store_is_a_clear_refusal(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(ModelNotFound, match="cannot be read") as info:
        load_champion(f"sqlite:///{db}", NAME)
    assert "MLFLOW_TRACKING_URI" in str(info.value)


def test_missing_tracking_store_says_what_to_run(tmp_path):
    with pytest.raises(ModelNotFound, match="no tracking store") as info:
        load_champion(f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}", NAME)
    assert "pipelines.train" in str(info.value)
    assert not (tmp_path / "nowhere").exists(), "no empty store is created by looking"


@pytest.mark.slow
def test_service_on_a_corrupt_store_is_live_but_not_ready(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"garbage" * 1000)
    svc = launch_service(tmp_path / "srv", f"sqlite:///{db}", wait_ready=False)
    try:
        assert httpx.get(svc.base + "/livez", timeout=10).status_code == 200
        ready = httpx.get(svc.base + "/readyz", timeout=10)
        assert ready.status_code == 503 and "cannot be read" in ready.text
        r = httpx.post(
            svc.base + "/score", json={}, headers={"Authorization": f"Bearer {SERVE_KEY}"}
        )
        assert r.status_code == 503 and "cannot be read" in r.json()["error"]
    finally:
        svc.stop()


def _flip_platt_digit(f: Path) -> None:
    """Change one digit of the Platt slope: still valid JSON, a wrong value."""
    text = f.read_text()
    pos = text.index('"platt_a"') + len('"platt_a": ') + 2
    new = "7" if text[pos] != "7" else "3"
    f.write_text(text[:pos] + new + text[pos + 1 :])


@pytest.mark.slow
@pytest.mark.xdist_group("served")
def test_bentoml_serve_alone_serves_the_newest_exported_champion_and_says_so(
    trained_store, tmp_path
):
    """Without pipelines.serve (no model tag), `bentoml serve` loads the newest champion in
    BentoML's model store, says so in its log, and never reads the registry."""
    srv = tmp_path / "srv"
    export_champion(service_env(srv, trained_store.uri, SERVE_KEY))  # as a promotion leaves it
    gone = f"sqlite:///{tmp_path / 'no-registry' / 'mlflow.db'}"  # the registry is not needed
    svc = launch_service(srv, gone, export=False)
    try:
        r = httpx.get(svc.base + "/model", headers=svc.headers(), timeout=10)
        assert r.status_code == 200 and r.json()["version"] == "1"
        log = svc.log_text()
        assert "from the BentoML model store as alliance-risk:v1-" in log
        assert "the newest exported champion" in log
    finally:
        svc.stop()


@pytest.mark.slow
@pytest.mark.xdist_group("served")
def test_a_corrupted_copy_in_the_bentoml_store_is_refused_by_checksum(trained_store, tmp_path):
    """One changed byte in the scorer that BentoML's model store holds: the service starts,
    is not ready, and says why (ScoringModel.load verifies the SHA-256 checksums)."""
    srv = tmp_path / "srv"
    export_champion(service_env(srv, trained_store.uri, SERVE_KEY))
    files = _scorer_files(srv / "bentoml")
    assert len(files) == 1, files
    _flip_platt_digit(files[0])
    svc = launch_service(srv, trained_store.uri, export=False, wait_ready=False)
    try:
        ready = httpx.get(svc.base + "/readyz", timeout=10)
        assert ready.status_code == 503 and "SHA-256" in ready.text
        r = httpx.post(svc.base + "/score", json={}, headers=svc.headers(), timeout=10)
        assert r.status_code == 503 and "SHA-256" in r.json()["error"]
    finally:
        svc.stop()


def _scorer_files(root: Path) -> list[Path]:
    return sorted(root.rglob("scorer/model.json"))


@pytest.mark.slow
@pytest.mark.xdist_group("served")
def test_corrupted_model_artifact_is_refused(trained_store, tmp_path):
    """One changed byte in the champion's stored model: the loader refuses it by checksum
    (restored afterwards so the other tests in this worker see the real model)."""
    files = _scorer_files(trained_store.root)
    assert files, "the trained store holds scorer artifacts"
    backup = tmp_path / "backup"
    saved = []
    for i, f in enumerate(files):
        shutil.copy2(f, backup.with_name(f"backup{i}"))
        saved.append((f, backup.with_name(f"backup{i}")))
    try:
        assert load_champion(trained_store.uri, NAME).version  # loads before the damage
        for f in files:
            _flip_platt_digit(f)
        with pytest.raises(ModelNotFound, match="SHA-256"):
            load_champion(trained_store.uri, NAME)
    finally:
        for f, b in saved:
            shutil.copy2(b, f)
    assert load_champion(trained_store.uri, NAME).version


# ---- body limits on a live server ----------------------------------------------------------


@pytest.fixture(scope="session")
def small_body_service(trained_store, tmp_path_factory):
    svc = launch_service(
        tmp_path_factory.mktemp("limits"),
        trained_store.uri,
        max_batch=3,
        extra_env={"ALLIANCE_RISK_SERVING__MAX_BODY_BYTES": "65536"},
    )
    yield svc
    svc.stop()


def _body_error(r: httpx.Response) -> str:
    errs = r.json()["errors"]
    assert errs[0]["field"] == "body", errs
    return errs[0]["reason"]


@pytest.mark.slow
@pytest.mark.xdist_group("served")
def test_oversized_bodies_are_413_before_parsing(small_body_service):
    svc = small_body_service
    big = b'{"admission_id": "' + b"A" * 70_000 + b'"}'
    with httpx.Client(base_url=svc.base, headers=svc.headers(), timeout=30) as c:
        r = c.post("/score", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "65536 bytes" in _body_error(r)

        def chunks():  # no Content-Length: the limit holds while reading
            for _ in range(20):
                yield b" " * 8192

        r = c.post("/score_batch", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "65536 bytes" in _body_error(r)

        # Under the body limit but over max_batch: the README's 400 naming `records`, with the
        # count sent and the limit, before any record is looked at (these records are invalid).
        r = c.post("/score_batch", json={"records": [{"admission_id": str(i)} for i in range(4)]})
        assert r.status_code == 400, r.text
        errors = r.json()["errors"]
        assert [e["field"] for e in errors] == ["records"], errors
        assert re.search(r"\b4\b", errors[0]["reason"]) and re.search(r"\b3\b", errors[0]["reason"])

        assert c.get("/readyz").status_code == 200  # the server is unharmed
    assert "A" * 100 not in svc.log_text()


@pytest.mark.slow
@pytest.mark.xdist_group("served")
def test_scoring_answers_while_the_audit_store_is_unwritable(trained_store, tmp_path, caplog):
    """The real engine with the real champion: an audit folder that cannot exist (a file is in
    the way) costs the audit rows, not the answers, and is logged once without the id."""
    from serving.audit import AuditLog
    from serving.engine import Engine
    from tests.service.test_serving import record

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the audit folder should be")
    champion = load_champion(trained_store.uri, NAME)
    with caplog.at_level("ERROR", logger="alliance_risk.audit"):
        engine = Engine(champion, AuditLog(blocker / "audit.sqlite", "k"), max_batch=5)
        answers = [engine.score(record(f"PRIV_AUDIT_{i}")) for i in range(3)]
    assert [status for status, _ in answers] == [200, 200, 200]
    assert all(0.0 < body["risk"] < 1.0 for _, body in answers)
    logged = [r.getMessage() for r in caplog.records if r.name == "alliance_risk.audit"]
    assert len(logged) == 1 and "not writable" in logged[0]
    assert "PRIV_AUDIT" not in logged[0]


# ---- the audit key ----------------------------------------------------------------------


def test_workers_starting_together_share_one_private_audit_key(tmp_path):
    import os
    import stat
    from concurrent.futures import ProcessPoolExecutor

    from serving.audit import installation_key

    audit = tmp_path / "audit" / "audit.sqlite"
    with ProcessPoolExecutor(6) as pool:
        keys = list(pool.map(installation_key, [audit] * 24))
    assert len(set(keys)) == 1 and keys[0] and len(keys[0]) >= 32
    key_file = audit.with_name("audit.sqlite.key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["audit.sqlite.key"]


def test_an_unusable_audit_key_disables_the_audit_not_the_hashing(tmp_path, caplog):
    from serving.audit import AuditLog

    audit = tmp_path / "audit.sqlite"
    audit.with_name("audit.sqlite.key").write_text("")  # empty: hashing with it would be public
    with caplog.at_level("ERROR", logger="alliance_risk.audit"):
        log = AuditLog(audit)
        log.record([("PRIV_AID_K", "1", 0.3, "moderate")], "/score")
    assert not log.healthy and not audit.exists()
    assert any("no usable key" in r.getMessage() for r in caplog.records)
