"""The served API, end to end: a real `bentoml serve` subprocess against a trained champion.

Covers the scoring contract, items vs scale scores, batches with a bad record, GET /model, API
keys, health routes, the 4xx error contract for malformed input, agreement with the in-process
model, the OpenAPI document, concurrency, the audit trail, what the log may not contain, and a
second server with no champion and no key (starts, is not ready, says what to run).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import httpx
import pytest

from features.catalog import SCORING_RECORD
from features.instruments import SCALES_BY_FIELD
from features.scoring import score_record
from serving.audit import hash_id
from tests.conftest import AUDIT_HASH_KEY, SERVE_KEY, launch_service

pytestmark = [pytest.mark.xdist_group("served"), pytest.mark.slow]

SCORED_IDS: list[str] = []  # admission_ids the server scored (checked against the audit trail)
SECRET_VALUES = (
    "SVC_PRIVATE_91",
    "CNS_PRIVATE_42",
)  # service/counsellor ids that must not be logged


def record(aid: str = "PRIV_AID_0001", **over) -> dict:
    base = {
        "admission_id": aid,
        "service_id": SECRET_VALUES[0],
        "counsellor_id": SECRET_VALUES[1],
        "admission_date": "2024-03-01",
        "age": 34,
        "sex": "male",
        "primary_substance": "crack",
        "crack_days_28": 20,
        "age_first_use": 15,
        "mot_problem_recognition": 22,
        "mot_desire_for_help": 15,
        "mot_treatment_readiness": 18,
        "social_support": 15,
        "psych_distress": 30,
        "self_efficacy": 20,
        "coping_adaptive": 1.5,
        "coping_avoidant": 3.5,
        "counsellor_sex": "female",
        "counsellor_years_experience": 3,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="module")
def service(trained_store, tmp_path_factory):
    svc = launch_service(tmp_path_factory.mktemp("serve"), trained_store.uri)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.base, headers=service.headers(), timeout=30) as c:
        yield c


def score(client, rec: dict) -> httpx.Response:
    r = client.post("/score", json=rec)
    if r.status_code == 200:
        SCORED_IDS.append(rec["admission_id"])
    return r


# ---- scoring --------------------------------------------------------------------------------


def test_score_one_record(client):
    r = score(client, record())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["admission_id"] == "PRIV_AID_0001"
    assert 0.0 < body["risk"] < 1.0
    bands = body["bands"]
    expected = (
        "high"
        if body["risk"] >= bands["high_from"]
        else "moderate"
        if body["risk"] >= bands["moderate_from"]
        else "low"
    )
    assert body["band"] == expected
    assert body["model"] == {"name": "alliance-risk", "version": "1"}
    drivers = body["drivers"]
    assert sorted(d["driver"] for d in drivers) == sorted(body_groups(client))  # every group once
    sizes = [abs(d["points"]) for d in drivers]
    assert sizes == sorted(sizes, reverse=True)
    for d in drivers:
        assert d["effect"] in ("raises", "lowers", "none")
        if d["effect"] != "none":
            assert (d["effect"] == "raises") == (d["points"] > 0)
        if d["actions"]:
            assert d["modifiable"] and d["effect"] == "raises" and d["assessed"], d
            assert all(a["source"] for a in d["actions"])
        if d["what_if"]:
            assert round(100 * d["what_if"]["risk"], 1) < round(100 * body["risk"], 1)
        if not (d["modifiable"] and d["effect"] == "raises"):
            assert d["actions"] == [] and d["what_if"] is None
    assert any(d["actions"] for d in drivers)
    assert "attachment" in body["not_assessed"]
    attachment = next(d for d in drivers if d["driver"] == "attachment")
    assert (
        attachment["status"] == "not assessed"
        and "Relationship Questionnaire" in (attachment["suggestion"])
    )
    assert any("attachment" in w for w in body["warnings"])
    assert "not a diagnosis" in body["disclaimer"]
    assert body["monitoring"] is None or "action" in body["monitoring"]
    assert "score;dur=" in r.headers.get("server-timing", "")


def body_groups(client) -> list[str]:
    return [d["driver"] for d in client.get("/model").json()["drivers"]]


NO_QUESTIONNAIRES = {
    "admission_id": "PRIV_AID_NOQ",
    "service_id": SECRET_VALUES[0],
    "admission_date": "2024-03-01",
    "age": 29,
    "sex": "female",
    "primary_substance": "opiates",
}


@pytest.mark.parametrize(
    "rec",
    [record(), NO_QUESTIONNAIRES, record("PRIV_AID_0002", legal_pressure=True, injecting="never")],
    ids=["high-risk", "no-questionnaires", "partial"],
)
def test_served_driver_points_add_up_to_risk_minus_typical_risk(client, rec):
    """The drivers as served (not internal groups): every group once, assessed or not, and their
    points add up to risk - the typical client's risk within the served rounding (4 decimals per
    driver, so at most 9 x 0.00005)."""
    r = score(client, rec)
    assert r.status_code == 200, r.text
    body = r.json()
    drivers = body["drivers"]
    assert sorted(d["driver"] for d in drivers) == sorted(body_groups(client))
    gap = body["risk"] - body["typical_risk"]
    assert abs(sum(d["points"] for d in drivers) - gap) <= len(drivers) * 0.00005
    assert abs(sum(d["percentage_points"] for d in drivers) - 100 * gap) <= len(drivers) * 0.005
    assert body["base_risk"] == body["typical_risk"]
    for d in drivers:
        if d["driver"] in body["not_assessed"]:
            assert d["status"] == "not assessed" and d["missing_fields"] and d["suggestion"]
    assert "True" not in r.text and "False" not in r.text  # booleans read yes/no, never Python's


def test_items_score_like_the_scale_they_make(client):
    """Item responses instead of a scale score give the same risk as the scored scale value."""
    ss, ghq = SCALES_BY_FIELD["social_support"], SCALES_BY_FIELD["psych_distress"]
    items = {c: (2 + i % 3) for i, c in enumerate(ss.item_codes())}
    items |= {c: (i % 4) for i, c in enumerate(ghq.item_codes())}
    with_items = record("PRIV_AID_ITEMS", social_support=None, psych_distress=None) | items
    scored, errors = score_record(with_items)
    assert not errors
    with_scales = record(
        "PRIV_AID_SCALES",
        social_support=scored["social_support"],
        psych_distress=scored["psych_distress"],
    )
    a, b = score(client, with_items), score(client, with_scales)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json()["risk"] == pytest.approx(b.json()["risk"], abs=1e-12)
    used = a.json()["items_used"]
    assert set(used) == {"social_support", "psych_distress"}
    assert any("scored from item responses" in w for w in a.json()["warnings"])
    # The scored scales as the page shows them, against the key computed here: TCU Social
    # Support = mean of 9 items (item 6 reflected, 6 - x) x 10; GHQ-12 Likert sum, prorated
    # (mean x 12) when one item is blank.
    vals = [2 + i % 3 for i in range(9)]
    vals[5] = 6 - vals[5]
    by = {s["scale"]: s for s in a.json()["scored_scales"]}
    assert by["social_support"]["score"] == pytest.approx(10 * sum(vals) / 9)
    assert (by["social_support"]["items_answered"], by["social_support"]["prorated"]) == (9, False)
    blank = {k: v for k, v in with_items.items() if k != "ghq_12"} | {"admission_id": "PRIV_AID_PR"}
    c = score(client, blank)
    assert c.status_code == 200, c.text
    ghq_s = next(s for s in c.json()["scored_scales"] if s["scale"] == "psych_distress")
    ghq_vals = [i % 4 for i in range(11)]
    assert ghq_s["score"] == pytest.approx(12 * sum(ghq_vals) / 11)
    assert (ghq_s["items_answered"], ghq_s["items_total"], ghq_s["prorated"]) == (11, 12, True)


def test_server_score_equals_in_process_model(client, trained_store):
    from models.predict import record_to_row
    from serving.loader import load_champion

    champ = load_champion(trained_store.uri)
    for i, over in enumerate(
        [{}, {"age": 60, "sex": "female", "primary_substance": "alcohol"}, {"psych_distress": 3}]
    ):
        rec = record(f"PRIV_AID_EQ{i}", **over)
        r = score(client, rec)
        assert r.status_code == 200, r.text
        row, _, _ = record_to_row(rec)
        assert r.json()["risk"] == pytest.approx(float(champ.model.proba(row)[0]), abs=1e-12)


def test_batch_scores_good_records_and_names_fields_of_a_bad_one(client):
    recs = [record("PRIV_AID_B0"), record("PRIV_AID_B1", age=200, sex="x"), record("PRIV_AID_B2")]
    r = client.post("/score_batch", json={"records": recs})
    assert r.status_code == 200, r.text
    body = r.json()
    res = body["results"]
    assert [x["index"] for x in res] == [0, 1, 2]
    assert body["n_scored"] == 2 and body["n_errors"] == 1
    assert res[1]["admission_id"] == "PRIV_AID_B1"
    assert {e["field"] for e in res[1]["errors"]} == {"age", "sex"}
    assert all(e["reason"] for e in res[1]["errors"])
    assert "risk" not in res[1]
    single = score(client, record("PRIV_AID_B0")).json()
    assert res[0]["risk"] == pytest.approx(single["risk"], abs=1e-12)
    assert res[2]["admission_id"] == "PRIV_AID_B2" and 0 < res[2]["risk"] < 1
    SCORED_IDS.extend(["PRIV_AID_B0", "PRIV_AID_B2"])


def test_model_route_lists_every_field(client):
    r = client.get("/model")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["name"] == "alliance-risk" and m["version"] == "1"
    assert m["trained_at"] and "threshold" in m["label"] and m["label"]["definition"]
    assert 0.5 < m["metrics"]["test_auroc"] <= 1.0
    assert m["bands"]["moderate_from"] < m["bands"]["high_from"]
    names = [f["name"] for f in m["catalog"]]
    assert names == [f.name for f in SCORING_RECORD]
    keys = {"name", "table", "kind", "codes", "min", "max", "required", "description"}
    keys |= {"driver", "modifiable", "direction", "section"}
    for f in m["catalog"]:
        assert keys <= set(f), f
    sex = next(f for f in m["catalog"] if f["name"] == "sex")
    assert sex["codes"] == ["male", "female", "other", "not_stated"] and sex["required"]
    age = next(f for f in m["catalog"] if f["name"] == "age")
    assert (age["min"], age["max"]) == (16, 90)
    assert [s["id"] for s in m["sections"]][:2] == ["client", "substance"]


# ---- authentication and open routes ---------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/score", {"admission_id": "x"}),
        ("POST", "/score_batch", {"records": []}),
        ("GET", "/model", None),
    ],
)
@pytest.mark.parametrize(
    "auth", [None, "Bearer wrong-key", f"Basic {SERVE_KEY}", "Bearer", f"Bearer {SERVE_KEY}x"]
)
def test_protected_routes_need_a_valid_key(service, method, path, body, auth):
    headers = {"Authorization": auth} if auth is not None else {}
    r = httpx.request(method, service.base + path, json=body, headers=headers, timeout=10)
    assert r.status_code == 401, r.text
    assert "key" in r.json()["error"]


@pytest.mark.parametrize(
    "path", ["/livez", "/readyz", "/metrics", "/", "/static/app.js", "/api-docs", "/docs.json"]
)
def test_health_page_and_docs_are_open(service, path):
    r = httpx.get(service.base + path, timeout=10)
    assert r.status_code == 200, (path, r.text[:300])


def test_page_is_ours_and_loads_nothing_from_outside(service):
    html = httpx.get(service.base + "/", timeout=10)
    assert "Early alliance risk" in html.text
    assert "default-src 'self'" in html.headers["content-security-policy"]
    for path in ("/", "/api-docs", "/static/app.js", "/static/api-docs.js", "/static/style.css"):
        text = httpx.get(service.base + path, timeout=10).text
        assert "https://" not in text and "//cdn" not in text, path


# ---- the error contract ---------------------------------------------------------------------


def _without(rec: dict, name: str) -> dict:
    return {k: v for k, v in rec.items() if k != name}


MALFORMED = [
    ("missing required field", "/score", _without(record(), "age"), "age"),
    ("missing id", "/score", _without(record(), "admission_id"), "admission_id"),
    ("wrong code", "/score", record(sex="m"), "sex"),
    ("out of range", "/score", record(age=200), "age"),
    ("out of range scale", "/score", record(psych_distress=37), "psych_distress"),
    ("wrong type", "/score", record(age="thirty"), "age"),
    ("wrong type bool", "/score", record(age=True), "age"),
    ("bad date", "/score", record(admission_date="01/03/2024"), "admission_date"),
    ("bad id", "/score", record(admission_id="has space"), "admission_id"),
    ("unknown field", "/score", record(favourite_colour="blue"), "favourite_colour"),
    ("age_first_use above age", "/score", record(age=20, age_first_use=30), "age_first_use"),
    (
        "items contradict scale",
        "/score",
        record(social_support=50) | {c: 1 for c in SCALES_BY_FIELD["social_support"].item_codes()},
        "social_support",
    ),
    ("huge integer", "/score", record(age=10**40), "age"),
    ("non-object body", "/score", [record()], "body"),
    ("oversized batch", "/score_batch", {"records": [record()] * 6}, "records"),
    ("records not a list", "/score_batch", {"records": record()}, "records"),
    ("records missing", "/score_batch", {"recs": []}, "records"),
]


@pytest.mark.parametrize("name,path,body,field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_is_a_field_named_4xx(client, name, path, body, field):
    r = client.post(path, json=body)
    assert r.status_code in (400, 422), (r.status_code, r.text)
    errors = r.json()["errors"]
    fields = {e["field"] for e in errors}
    assert field in fields, errors
    assert all(e["reason"] for e in errors)
    if name == "oversized batch":
        assert "5" in next(e["reason"] for e in errors if e["field"] == "records")


@pytest.mark.parametrize(
    "raw,ctype",
    [
        (b"not json at all", "application/json"),
        (b'{"age": NaN}', "application/json"),
        (b"", "application/json"),
        (b'{"admission_id": "PRIV_AID_F"', "application/json"),
        (b"admission_id=PRIV_AID_FORM&age=30", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00", "application/json"),
    ],
)
@pytest.mark.parametrize("path", ["/score", "/score_batch"])
def test_non_json_body_is_a_400_naming_the_body(client, raw, ctype, path):
    r = client.post(path, content=raw, headers={"Content-Type": ctype})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "body"


def test_form_content_type_with_a_json_body_is_still_scored(client):
    import json

    rec = record("PRIV_AID_CT")
    r = client.post(
        "/score",
        content=json.dumps(rec),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    SCORED_IDS.append("PRIV_AID_CT")


# ---- the OpenAPI document -------------------------------------------------------------------


def test_openapi_lists_every_record_field_with_ranges_and_codes(service):
    spec = httpx.get(service.base + "/docs.json", timeout=10).json()
    assert {"/score", "/score_batch", "/model", "/livez", "/readyz"} <= set(spec["paths"])
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    props = body["properties"]
    assert set(props) == {f.name for f in SCORING_RECORD}
    assert set(body["required"]) == {f.name for f in SCORING_RECORD if f.required}
    assert props["sex"]["enum"] == ["male", "female", "other", "not_stated"]
    assert (props["age"]["minimum"], props["age"]["maximum"]) == (16, 90)
    record_schema = spec["components"]["schemas"]["ScoringRecord"]
    assert set(record_schema["properties"]) == set(props)
    batch = spec["paths"]["/score_batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["properties"]["records"]["maxItems"] == 5
    assert "get" in spec["paths"]["/model"]


# ---- concurrency ----------------------------------------------------------------------------


def test_sixteen_concurrent_clients_get_no_503(service):
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with httpx.Client(base_url=service.base, headers=service.headers(), timeout=60) as c:
            for j in range(8):
                st = c.post("/score", json=record(f"PRIV_AID_C{k}_{j}")).status_code
                with lock:
                    statuses.append(st)
                    if st == 200:
                        SCORED_IDS.append(f"PRIV_AID_C{k}_{j}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 128, sorted(set(statuses))


# ---- audit and privacy (run last: they check what the tests above left behind) --------------


def test_audit_has_a_hashed_row_per_score(service):
    assert SCORED_IDS
    with sqlite3.connect(service.audit_db) as db:
        rows = db.execute(
            "SELECT scored_at, model_version, admission_hash, probability, band FROM scores"
        ).fetchall()
    hashes = [r[2] for r in rows]
    for aid in SCORED_IDS:
        assert hash_id(AUDIT_HASH_KEY.encode(), aid) in hashes, aid
    assert len(rows) >= len(SCORED_IDS)
    assert all(r[1] == "1" and 0 < r[3] < 1 and r[4] in ("low", "moderate", "high") for r in rows)
    assert all(r[0].endswith("+00:00") for r in rows)
    raw = b"".join(p.read_bytes() for p in service.audit_db.parent.glob("audit.sqlite*"))
    for aid in SCORED_IDS:
        assert aid.encode() not in raw


def test_server_log_holds_no_identifier_or_intake_value(service):
    log = service.log_text()
    assert "serving alliance-risk version 1" in log  # the log is being written
    assert "/score" in log  # access lines are there, with paths only
    for token in ("PRIV_AID", *SECRET_VALUES, "favourite_colour", "thirty", "01/03/2024"):
        assert token not in log, token
    assert SERVE_KEY not in log


# ---- no champion, no key --------------------------------------------------------------------


def test_without_champion_or_key_the_service_starts_but_is_not_ready(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}"
    (tmp_path / "empty").mkdir()
    MlflowClient(tracking_uri=uri).search_experiments()  # an empty but valid tracking store
    svc = launch_service(tmp_path / "srv", uri, key=None, wait_ready=False)
    try:
        assert httpx.get(svc.base + "/livez", timeout=10).status_code == 200
        ready = httpx.get(svc.base + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert "pipelines.train" in ready.text and "champion" in ready.text
        assert "API key" in ready.text
        r = httpx.post(svc.base + "/score", json=record(), timeout=10)
        assert r.status_code == 503 and "API key" in r.json()["error"]
        assert httpx.get(svc.base + "/", timeout=10).status_code == 200  # the page still loads
        assert "pipelines.train" in svc.log_text()
    finally:
        svc.stop()
    assert svc.proc.returncode is not None


def test_with_key_but_no_champion_scoring_says_what_to_run(tmp_path):
    svc = launch_service(tmp_path / "srv", f"sqlite:///{tmp_path / 'none.db'}", wait_ready=False)
    try:
        r = httpx.post(
            svc.base + "/score",
            json=record(),
            headers={"Authorization": f"Bearer {SERVE_KEY}"},
            timeout=10,
        )
        assert r.status_code == 503
        assert "pipelines.train" in r.json()["error"] or "make train" in r.json()["error"]
        assert httpx.post(svc.base + "/score", json=record(), timeout=10).status_code == 401
    finally:
        svc.stop()


def test_an_unwritable_audit_store_never_stops_scoring(tmp_path, caplog):
    from serving.audit import AuditLog

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the audit folder should be")
    with caplog.at_level("ERROR", logger="alliance_risk.audit"):
        audit = AuditLog(blocker / "audit.sqlite", "k")
        for _ in range(3):
            audit.record([("PRIV_AID_X", "1", 0.3, "moderate")], "/score")  # must not raise
    msgs = [r.getMessage() for r in caplog.records if r.name == "alliance_risk.audit"]
    assert len(msgs) == 1 and "not writable" in msgs[0]
    assert "PRIV_AID_X" not in msgs[0]


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:  # exited meanwhile
            continue
        out.append(p)
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
            except OSError:
                pass
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_server_processes_load_no_pandas_sklearn_or_mlflow(service, client):
    """What keeps the service at ~300 MB and a ~5 s start: the request path and the processes
    serving it never import pandas, scikit-learn or MLflow (the registry is read by a child that
    exits). Checked on the live processes' mapped files."""
    assert client.post("/score", json=record("PRIV_AID_MAPS")).status_code == 200
    SCORED_IDS.append("PRIV_AID_MAPS")

    def cmd(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline") as fh:
                return fh.read()
        except OSError:  # exited meanwhile
            return ""

    deadline = time.monotonic() + 60  # the registry reader has answered; it must also exit
    while any("serving.loader" in cmd(p) for p in _tree(service.proc.pid)):
        assert time.monotonic() < deadline, "the registry reader process did not exit"
        time.sleep(0.2)
    pids = _tree(service.proc.pid)
    assert len(pids) >= 3, pids  # the parent and two workers
    for pid in pids:
        with open(f"/proc/{pid}/maps") as fh:
            maps = fh.read()
        for lib in ("/pandas/", "/sklearn/", "/mlflow/"):
            assert lib not in maps, (pid, lib)
