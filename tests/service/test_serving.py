"""The served API, end to end: a real `bentoml serve` subprocess against a trained champion.

Covers the scoring contract, items vs scale scores, batches with a bad record, GET /model, API
keys, health routes, the 4xx error contract for malformed input (400 for the body or the batch
envelope, 422 for a record that breaks the contract, as the README's Serving "Errors" paragraph
states), agreement with the in-process model, the OpenAPI document, concurrency, the audit trail
(expected hashes computed here with ``hmac``), what the log may not contain, and a second server
with no champion and no key (starts, is not ready, says what to run).

Every test sends the requests it checks: none depends on what an earlier test sent, so the order
does not matter (the suite is run shuffled with pytest-randomly).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import sqlite3
import threading
import time

import httpx
import pytest

from features.catalog import SCORING_RECORD
from features.instruments import SCALES_BY_FIELD
from features.scoring import score_record
from harness.commands import AUDIT_HASH_KEY, SERVE_KEY, launch_service
from harness.prereqs import need
from harness.records import CRACK_INTAKE, FAVOURABLE_SCALES

pytestmark = [pytest.mark.xdist_group("served"), pytest.mark.slow]

SECRET_VALUES = (
    "SVC_PRIVATE_91",
    "CNS_PRIVATE_42",
)  # service/counsellor ids that must not be logged


def record(aid: str = "PRIV_AID_0001", **over) -> dict:
    base = {
        "admission_id": aid,
        "service_id": SECRET_VALUES[0],
        "counsellor_id": SECRET_VALUES[1],
        **CRACK_INTAKE,
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


@pytest.fixture(scope="session")
def client(service):
    with httpx.Client(base_url=service.base, headers=service.headers(), timeout=30) as c:
        yield c


def score(client, rec: dict) -> httpx.Response:
    return client.post("/score", json=rec)


# What the response's `monitoring` holds for each band: the domain brief's action for a predicted
# low alliance (docs/domain.md, "Modifiable drivers and what to suggest": monitor the alliance
# weekly with the WAI-S or SRS, rupture-repair skills, consider the counsellor match; Safran et al.
# 2011, Meier et al. 2006). High risk gets all of it, moderate the monitoring and repair, low none.
MONITORING_BY_BAND = {
    "high": ("weekly", "rupture-repair", "counsellor match"),
    "moderate": ("weekly", "rupture-repair"),
    "low": None,
}


def assert_monitoring_for_band(body: dict) -> None:
    want = MONITORING_BY_BAND[body["band"]]
    got = body["monitoring"]
    if want is None:
        assert got is None, body["band"]
        return
    assert got is not None, f"a {body['band']}-risk record must carry a monitoring action"
    for words in want:
        assert words in got["action"], (body["band"], got)
    if body["band"] == "moderate":
        assert "counsellor match" not in got["action"], got
    # the finding in words for the worker, the full references apart (docs/domain.md's two studies)
    assert "alliance" in got["evidence"].lower(), got
    assert "Safran" in got["source"] and "(2011)" in got["source"], got
    assert "Meier" in got["source"] and "(2006)" in got["source"], got


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
    iv = body["risk_interval"]  # the 95% uncertainty interval, containing the risk
    assert (
        iv["level"] == 0.95 and iv["low"] <= body["risk"] <= iv["high"] and iv["low"] < iv["high"]
    )
    assert body["band"] in iv["bands_possible"]
    assert iv["band_certain"] == (iv["bands_possible"] == [body["band"]])
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
    # This record (low motivation, support and coping, high distress) is far into the high band.
    assert body["band"] == "high" and body["risk"] >= bands["high_from"]
    assert_monitoring_for_band(body)
    assert "score;dur=" in r.headers.get("server-timing", "")
    # No request is traced (serving/service.py, tracing.excluded_urls): BentoML sets this header
    # from the request's span, so its absence shows that no span was started
    assert "x-bentoml-request-id" not in r.headers
    # answered by the guard (serving.service.score_response) with the headers BentoML's route gave
    assert r.headers["server"] == "BentoML Service/alliance_risk"
    assert r.headers["content-type"] == "application/json"


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


# A client at the favourable end of every scale (the browser test's low-risk client).
FAVOURABLE = {**FAVOURABLE_SCALES, "crack_days_28": 0}


def _blend(t: float) -> dict:
    """record() with each scale moved a fraction t of the way to its favourable value."""
    base = record(f"PRIV_AID_BLEND{int(t * 1000)}")
    out = dict(base)
    for k, good in FAVOURABLE.items():
        v = base[k] + t * (good - base[k])
        out[k] = round(v) if isinstance(base[k], int) else round(v, 2)
    return out


def test_monitoring_action_follows_the_band(client):
    """Low, moderate and high records each carry their band's monitoring action (low: none).
    The moderate record is found by bisecting between the high-risk and the favourable one."""
    seen = {}
    lo_t, hi_t = 0.0, 1.0  # risk falls as t rises
    for t in (0.0, 1.0):
        body = score(client, _blend(t)).json()
        seen[body["band"]] = body
    assert set(seen) == {"high", "low"}, {b: v["risk"] for b, v in seen.items()}
    for _ in range(20):
        mid = (lo_t + hi_t) / 2
        body = score(client, _blend(mid)).json()
        if body["band"] == "moderate":
            seen["moderate"] = body
            break
        lo_t, hi_t = (mid, hi_t) if body["band"] == "high" else (lo_t, mid)
    assert "moderate" in seen, "no record between the high and the favourable one is moderate"
    for band, body in seen.items():
        b = body["bands"]
        assert (band == "high") == (body["risk"] >= b["high_from"])
        assert (band == "low") == (body["risk"] < b["moderate_from"])
        assert_monitoring_for_band(body)
    listed = client.get("/model").json()["monitoring"]
    assert listed == {
        "high": seen["high"]["monitoring"],
        "moderate": seen["moderate"]["monitoring"],
    }


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
    from features.build import FeatureBuilder
    from features.scoring import score_record
    from models.lifecycle.resolve import load

    champ = load(trained_store.uri, lean=True)
    for i, over in enumerate(
        [{}, {"age": 60, "sex": "female", "primary_substance": "alcohol"}, {"psych_distress": 3}]
    ):
        rec = record(f"PRIV_AID_EQ{i}", **over)
        r = score(client, rec)
        assert r.status_code == 200, r.text
        row = FeatureBuilder.transform_record(score_record(rec)[0])
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
    assert res[0]["risk_interval"] == single["risk_interval"]
    assert res[2]["admission_id"] == "PRIV_AID_B2" and 0 < res[2]["risk"] < 1


def test_model_route_lists_every_field(client):
    r = client.get("/model")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["name"] == "alliance-risk" and m["version"] == "1"
    assert m["trained_at"] and "threshold" in m["label"] and m["label"]["definition"]
    assert m["synthetic_data"] is True  # the store's champion was trained on pipelines.simulate
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


# (name, path, body, expected status, field the error must name). The status is the README's
# Serving "Errors" paragraph: a body that is not a JSON object, or a bad batch envelope (missing
# or unknown keys, over max_batch), is 400; a record that breaks the contract (missing required
# field, unknown code, out of range, wrong type, unknown field, a scale score contradicting its
# own items) is 422.
MALFORMED = [
    ("missing required field", "/score", _without(record(), "age"), 422, "age"),
    ("missing id", "/score", _without(record(), "admission_id"), 422, "admission_id"),
    ("wrong code", "/score", record(sex="m"), 422, "sex"),
    ("out of range", "/score", record(age=200), 422, "age"),
    ("out of range scale", "/score", record(psych_distress=37), 422, "psych_distress"),
    ("wrong type", "/score", record(age="thirty"), 422, "age"),
    ("wrong type bool", "/score", record(age=True), 422, "age"),
    ("bad date", "/score", record(admission_date="01/03/2024"), 422, "admission_date"),
    ("bad id", "/score", record(admission_id="has space"), 422, "admission_id"),
    ("unknown field", "/score", record(favourite_colour="blue"), 422, "favourite_colour"),
    ("age_first_use above age", "/score", record(age=20, age_first_use=30), 422, "age_first_use"),
    (
        "items contradict scale",
        "/score",
        record(social_support=50) | {c: 1 for c in SCALES_BY_FIELD["social_support"].item_codes()},
        422,
        "social_support",
    ),
    ("huge integer", "/score", record(age=10**40), 422, "age"),
    ("non-object body", "/score", [record()], 400, "body"),
    ("string body", "/score", "PRIV_AID_STR", 400, "body"),
    ("batch non-object body", "/score_batch", [record()], 400, "body"),
    ("oversized batch", "/score_batch", {"records": [record()] * 6}, 400, "records"),
    ("records not a list", "/score_batch", {"records": record()}, 400, "records"),
    ("records missing", "/score_batch", {"recs": []}, 400, "records"),
    ("unknown batch key", "/score_batch", {"records": [record()], "extra": 1}, 400, "extra"),
    ("empty batch key", "/score_batch", {"records": [record()], "": None}, 400, '""'),
    ("empty field name", "/score", record() | {"": None}, 422, '""'),
]


@pytest.mark.parametrize("name,path,body,status,field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_is_a_field_named_400_or_422(client, name, path, body, status, field):
    r = client.post(path, json=body)
    assert r.status_code == status, (r.status_code, r.text)
    errors = r.json()["errors"]
    fields = {e["field"] for e in errors}
    assert field in fields, errors
    assert all(e["reason"] for e in errors)
    if name == "oversized batch":
        reason = next(e["reason"] for e in errors if e["field"] == "records")
        assert "6" in reason and "5" in reason, reason  # how many were sent, and the limit


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
    assert r.json()["admission_id"] == "PRIV_AID_CT"


# ---- weekly ratings (issue 19 item 4) --------------------------------------------------------


def wai(value: int, **over) -> dict:
    """All twelve WAI-S items answered so that the item mean (4 and 10 reverse-scored) is value."""
    items = {f"wai_{i:02d}": (8 - value if i in (4, 10) else value) for i in range(1, 13)}
    return items | over


WEEKLY_KEYS = {
    "as_of_week",
    "model_week",
    "risk_at_admission",
    "risk_percent_at_admission",
    "band_at_admission",
    "typical_risk_at_admission",
    "risk_remaining",
    "risk_interval_at_admission",
    "risk_remaining_interval",
    "remaining_weeks",
    "ratings",
    "signal",
    "rupture",
    "discrepancy",
    "label_note",
    "risk_interval_note",
}
FALLING = [
    {"week": 1, "rater": "client", "items": wai(7)},
    {"week": 1, "rater": "counsellor", "item_mean": 5.0},
    {"week": 2, "rater": "client", "items": wai(2)},
    {"week": 2, "rater": "counsellor", "item_mean": 5.0},
]


def test_ratings_update_the_risk_and_keep_every_admission_field(client):
    plain = score(client, record("PRIV_AID_WK1"))
    rated = score(client, record("PRIV_AID_WK1", ratings=FALLING))
    assert plain.status_code == rated.status_code == 200, rated.text
    a, b = plain.json(), rated.json()
    assert not WEEKLY_KEYS & set(a)  # without ratings: today's answer, nothing added
    assert set(b) == set(a) | WEEKLY_KEYS  # every field kept, the weekly ones added
    assert b["risk_at_admission"] == a["risk"] and b["band_at_admission"] == a["band"]
    assert b["typical_risk_at_admission"] == a["typical_risk"]
    assert b["risk_interval_at_admission"] == a["risk_interval"]  # the admission model's
    # risk_interval is now the updated risk's (rounded to 4 decimals, as the admission one)
    iv, rem = b["risk_interval"], b["risk_remaining_interval"]
    assert iv["level"] == rem["level"] == 0.95 and iv != a["risk_interval"]
    assert iv["low"] - 5e-5 <= b["risk"] <= iv["high"] + 5e-5 and iv["low"] < iv["high"]
    assert b["band"] in iv["bands_possible"]
    assert iv["band_certain"] == (iv["bands_possible"] == [b["band"]])
    assert rem["low"] - 5e-5 <= b["risk_remaining"] <= rem["high"] + 5e-5
    note = b["risk_interval_note"]
    assert all(k in note for k in ("risk_interval_at_admission", "risk_remaining_interval"))
    assert b["as_of_week"] == 2 and b["model_week"] == 2 and b["remaining_weeks"] == [3]
    assert b["risk"] > b["risk_at_admission"] and 0 < b["risk_remaining"] < 1
    assert b["risk_percent"] == round(100 * b["risk"], 1)
    bands = b["bands"]
    assert (b["band"] == "high") == (b["risk"] >= bands["high_from"])
    # drivers: every intake group and the ratings group, adding up to the updated risk
    names = [d["driver"] for d in b["drivers"]]
    assert sorted(names) == sorted([*body_groups(client), "ratings"])
    gap = b["risk"] - b["typical_risk"]
    assert abs(sum(d["points"] for d in b["drivers"]) - gap) <= len(names) * 0.00005
    ratings = next(d for d in b["drivers"] if d["driver"] == "ratings")
    assert ratings["effect"] == "raises" and ratings["label"] == "Weekly alliance ratings"
    assert [v["field"] for v in ratings["values"]] == [
        "week 1 client",
        "week 1 counsellor",
        "week 2 client",
        "week 2 counsellor",
    ]
    for d in b["drivers"]:
        if d["actions"]:
            assert d["modifiable"] and d["effect"] == "raises" and d["assessed"]
        if d["what_if"]:
            assert d["what_if"]["instead_of"] == round(b["risk"], 4)
            assert round(100 * d["what_if"]["risk"], 1) < round(100 * b["risk"], 1)
    # markers with their actions and sources
    assert b["signal"]["flag"] and b["rupture"]["flag"] and b["discrepancy"]["flag"]
    assert b["rupture"]["weeks"] == [2] and b["rupture"]["raters"] == ["client"]
    for k in ("signal", "rupture", "discrepancy"):
        assert b[k]["actions"] and all(x["source"] for x in b[k]["actions"]), k
        assert b[k]["why"]


def test_empty_ratings_answer_the_admission_score_as_week_0(client):
    a = score(client, record("PRIV_AID_WK0")).json()
    b = score(client, record("PRIV_AID_WK0", ratings=[])).json()
    assert b["as_of_week"] == 0 and b["risk"] == a["risk"] == b["risk_at_admission"]
    assert b["risk_remaining"] == a["risk"] and not b["signal"]["flag"]
    # no rating yet: both intervals are the admission interval
    assert b["risk_interval"] == a["risk_interval"] == b["risk_interval_at_admission"]
    iv = a["risk_interval"]
    assert b["risk_remaining_interval"] == {"low": iv["low"], "high": iv["high"], "level": 0.95}
    assert "ratings" not in [d["driver"] for d in b["drivers"]]
    assert score(client, record("PRIV_AID_WK0", ratings=None)).json() == a


BAD_RATINGS = [
    ("week 4", {"week": 4, "rater": "client", "item_mean": 5}, "ratings[1].week"),
    ("week 0", {"week": 0, "rater": "client", "item_mean": 5}, "ratings[1].week"),
    ("therapist", {"week": 2, "rater": "therapist", "item_mean": 5}, "ratings[1].rater"),
    ("item 8", {"week": 2, "rater": "client", "items": wai(5, wai_03=8)}, "ratings[1].wai_03"),
    ("item 0", {"week": 2, "rater": "client", "items": wai(5, wai_12=0)}, "ratings[1].wai_12"),
    ("item text", {"week": 2, "rater": "client", "items": wai(5, wai_03="5")}, "ratings[1].wai_03"),
    ("mean 7.5", {"week": 2, "rater": "client", "item_mean": 7.5}, "ratings[1].item_mean"),
    ("huge mean", {"week": 2, "rater": "client", "item_mean": 10**400}, "ratings[1].item_mean"),
    ("same week and rater", {"week": 1, "rater": "client", "item_mean": 5}, "ratings[1].week"),
    (
        "3 items missing",
        {"week": 2, "rater": "client", "items": wai(5, wai_01=None, wai_02=None, wai_05=None)},
        "ratings[1].items",
    ),
    (
        "unknown item",
        {"week": 2, "rater": "client", "items": wai(5, wai_13=4)},
        "ratings[1].wai_13",
    ),
    ("no items", {"week": 2, "rater": "client"}, "ratings[1].items"),
    ("not an object", "week 2", "ratings[1]"),
]


@pytest.mark.parametrize("name,rating,field", BAD_RATINGS, ids=[b[0] for b in BAD_RATINGS])
def test_bad_ratings_are_422_naming_the_field(client, name, rating, field):
    ratings = [{"week": 1, "rater": "client", "items": wai(6)}, rating]
    r = score(client, record("PRIV_AID_WKBAD", ratings=ratings))
    assert r.status_code == 422, (r.status_code, r.text)
    errors = r.json()["errors"]
    assert field in {e["field"] for e in errors}, errors
    assert all(e["reason"] for e in errors)
    # with a broken record too, both are named in one answer
    both = score(client, record("PRIV_AID_WKBAD", age=200, ratings=ratings))
    assert both.status_code == 422 and {"age", field} <= {e["field"] for e in both.json()["errors"]}


@pytest.mark.parametrize("ratings", ["weekly", {"week": 1}, 5], ids=["text", "object", "number"])
def test_ratings_that_are_not_a_list_are_422(client, ratings):
    r = score(client, record("PRIV_AID_WKNL", ratings=ratings))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ratings", r.text


def test_batch_records_carry_their_own_ratings(client):
    recs = [
        record("PRIV_AID_WB0"),
        record("PRIV_AID_WB1", ratings=FALLING),
        record("PRIV_AID_WB2", ratings=[{"week": 5, "rater": "client", "item_mean": 5}]),
    ]
    r = client.post("/score_batch", json={"records": recs})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert not WEEKLY_KEYS & set(res[0])
    single = score(client, record("PRIV_AID_WB1", ratings=FALLING)).json()
    assert res[1]["as_of_week"] == 2 and res[1]["risk"] == pytest.approx(single["risk"], abs=1e-15)
    assert res[1]["risk_remaining"] == pytest.approx(single["risk_remaining"], abs=1e-15)
    assert res[1]["risk_interval"] == single["risk_interval"]
    assert res[1]["risk_remaining_interval"] == single["risk_remaining_interval"]
    assert [e["field"] for e in res[2]["errors"]] == ["ratings[0].week"] and "risk" not in res[2]


def test_a_model_without_weekly_models_refuses_ratings_with_409(trained_store):
    """In process (the engine the service runs): an artifact from before issue 19 has no weekly
    models; ratings are then refused with 409 naming 'ratings' (the body is valid, the service's
    model cannot use it), and the same record without ratings is scored as before."""
    import copy
    import dataclasses

    from models.lifecycle.resolve import load
    from serving.engine import Engine

    champ = load(trained_store.uri, lean=True)
    assert champ.model.weekly is not None  # the trained champion has them
    old_model = copy.copy(champ.model)
    old_model.weekly = None
    engine = Engine(dataclasses.replace(champ, model=old_model), None, 5)
    status, body = engine.score(record("PRIV_AID_OLD", ratings=FALLING), audit=False)
    assert status == 409 and [e["field"] for e in body["errors"]] == ["ratings"]
    assert "no weekly models" in body["errors"][0]["reason"]
    assert engine.score(record("PRIV_AID_OLD"), audit=False)[0] == 200
    status, body = engine.score_batch({"records": [record("PRIV_AID_OLD", ratings=[])]})
    assert status == 200 and body["results"][0]["errors"][0]["field"] == "ratings"
    # bad ratings are still a 422 first: the client can fix those
    bad = [{"week": 9, "rater": "client", "item_mean": 5}]
    assert engine.score(record("PRIV_AID_OLD", ratings=bad), audit=False)[0] == 422


def test_a_model_without_weekly_draws_answers_with_no_updated_interval(trained_store):
    """In process (the engine the service runs): a weekly spec fitted before the intervals has
    no draws; a weekly check is then answered as before, its updated risks with no interval
    (null) and the admission interval beside them."""
    import copy
    import dataclasses

    from models.lifecycle.resolve import load
    from serving.engine import Engine

    champ = load(trained_store.uri, lean=True)
    spec = copy.deepcopy(champ.model.weekly)
    for by_target in spec["models"].values():
        for fit in by_target.values():
            if fit is not None:
                fit.pop("draws")
    old_model = copy.copy(champ.model)
    old_model.weekly = spec
    new, old = Engine(champ, None, 5), Engine(dataclasses.replace(champ, model=old_model), None, 5)
    rec = record("PRIV_AID_NODRAWS", ratings=FALLING)
    (s1, a), (s2, b) = new.score(rec, audit=False), old.score(rec, audit=False)
    assert s1 == s2 == 200, b
    assert b["risk"] == a["risk"] and b["risk_remaining"] == a["risk_remaining"]
    assert a["risk_interval"] is not None and a["risk_remaining_interval"] is not None
    assert b["risk_interval"] is None and b["risk_remaining_interval"] is None
    assert b["risk_interval_at_admission"] == a["risk_interval_at_admission"] is not None


# ---- the OpenAPI document -------------------------------------------------------------------


def test_openapi_lists_every_record_field_with_ranges_and_codes(service):
    spec = httpx.get(service.base + "/docs.json", timeout=10).json()
    assert {"/score", "/score_batch", "/model", "/livez", "/readyz"} <= set(spec["paths"])
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    props = body["properties"]
    assert set(body["required"]) == {f.name for f in SCORING_RECORD if f.required}
    assert props["sex"]["enum"] == ["male", "female", "other", "not_stated"]
    assert (props["age"]["minimum"], props["age"]["maximum"]) == (16, 90)
    assert set(props) == {f.name for f in SCORING_RECORD} | {"ratings"}  # ratings: issue 19
    record_schema = spec["components"]["schemas"]["ScoringRecord"]
    assert set(record_schema["properties"]) == set(props)
    rating = props["ratings"]["items"]
    assert props["ratings"]["type"] == "array" and "ratings" not in body["required"]
    assert rating["properties"]["week"]["enum"] == [1, 2, 3]
    assert rating["properties"]["rater"]["enum"] == ["client", "counsellor"]
    items = rating["properties"]["items"]["properties"]
    assert sorted(items) == [f"wai_{i:02d}" for i in range(1, 13)]
    assert (items["wai_03"]["minimum"], items["wai_03"]["maximum"]) == (1, 7)
    assert rating["properties"]["item_mean"]["maximum"] == 7
    batch = spec["paths"]["/score_batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["properties"]["records"]["maxItems"] == 5
    assert "get" in spec["paths"]["/model"]
    # the answer's intervals: the risk's (updated with ratings), the admission and remaining ones
    ok = spec["paths"]["/score"]["post"]["responses"]["200"]["content"]["application/json"]
    out = ok["schema"]["properties"]
    for k in ("risk_interval", "risk_interval_at_admission", "risk_remaining_interval"):
        assert "interval" in out[k]["description"], k
    ivs = spec["components"]["schemas"]["RiskInterval"]["properties"]
    assert {"low", "high", "level", "band_certain", "bands_possible"} <= set(ivs)


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

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 128, sorted(set(statuses))


# ---- audit and privacy ----------------------------------------------------------------------


def expected_hash(admission_id: str) -> str:
    """The README's audit hash: HMAC-SHA256 of the admission_id keyed with serving.audit_hash_key
    (the key the test servers are given), computed here, not with serving.audit."""
    return hmac.new(AUDIT_HASH_KEY.encode(), admission_id.encode(), hashlib.sha256).hexdigest()


def _audit_rows(service) -> list[tuple]:
    with sqlite3.connect(service.audit_db) as db:
        return db.execute(
            "SELECT scored_at, model_version, admission_hash, probability, band, route FROM scores"
        ).fetchall()


def test_audit_has_a_keyed_hash_row_per_score_and_no_identifier(client, service):
    started = dt.datetime.now(dt.UTC)
    served = {}
    for i in range(3):
        r = score(client, record(f"PRIV_AID_AUD{i}", age=30 + i))
        assert r.status_code == 200, r.text
        served[f"PRIV_AID_AUD{i}"] = r.json()
    batch = [record("PRIV_AID_AUDB0"), record("PRIV_AID_AUDB1", sex="x"), record("PRIV_AID_AUDB2")]
    r = client.post("/score_batch", json={"records": batch})
    assert r.status_code == 200, r.text
    for res in r.json()["results"]:
        if "risk" in res:
            served[res["admission_id"]] = res
    weekly = score(client, record("PRIV_AID_AUDWK", ratings=FALLING))
    assert weekly.status_code == 200, weekly.text
    served["PRIV_AID_AUDWK"] = weekly.json()
    refused = score(client, record("PRIV_AID_AUDBAD", age=200))
    assert refused.status_code == 422
    assert set(served) == {f"PRIV_AID_AUD{i}" for i in range(3)} | {
        "PRIV_AID_AUDB0",
        "PRIV_AID_AUDB2",
        "PRIV_AID_AUDWK",
    }

    rows = _audit_rows(service)
    by_hash: dict[str, list[tuple]] = {}
    for row in rows:
        by_hash.setdefault(row[2], []).append(row)
    for aid, body in served.items():
        mine = by_hash.get(expected_hash(aid), [])
        assert len(mine) == 1, (aid, len(mine))
        scored_at, version, _, probability, band, route = mine[0]
        # a weekly check is audited with its ADMISSION score (outcome monitoring reads it)
        adm = body.get("risk_at_admission", body["risk"])
        assert version == "1" and band == body.get("band_at_admission", body["band"])
        assert probability == pytest.approx(adm, abs=1e-12)
        assert route == ("/score_batch" if "AUDB" in aid else "/score")
        when = dt.datetime.fromisoformat(scored_at)
        assert when.utcoffset() == dt.timedelta(0) and when >= started - dt.timedelta(seconds=1)
    # A refused record and the refused batch member leave no row; nothing unkeyed is stored.
    for aid in ("PRIV_AID_AUDBAD", "PRIV_AID_AUDB1"):
        assert expected_hash(aid) not in by_hash, aid
    unkeyed = {hashlib.sha256(aid.encode()).hexdigest() for aid in served}
    assert not unkeyed & set(by_hash)
    raw = b"".join(p.read_bytes() for p in service.audit_db.parent.glob("audit.sqlite*"))
    for aid in [*served, "PRIV_AID_AUDBAD", "PRIV_AID_AUDB1", *SECRET_VALUES]:
        assert aid.encode() not in raw, aid


def test_server_log_holds_no_identifier_or_intake_value(client, service):
    before = service.log_text().count("path=/score")
    sent = [
        client.post("/score", json=record("PRIV_AID_LOG1")),
        client.post("/score", json=record("PRIV_AID_LOG2", favourite_colour="blue")),
        client.post("/score", json=record("PRIV_AID_LOG3", age="thirty")),
        client.post("/score", json=record("PRIV_AID_LOG4", admission_date="01/03/2024")),
        client.post("/score_batch", json={"records": [record("PRIV_AID_LOG5", sex="x")]}),
        client.post("/score", content=b'{"admission_id": "PRIV_AID_LOG6"', headers={}),
        client.post("/score", json=record("PRIV_AID_LOG7", ratings=FALLING)),
        client.post("/score", json=record("PRIV_AID_LOG8", ratings=[{"week": "wk_secret"}])),
    ]
    assert [r.status_code for r in sent] == [200, 422, 422, 422, 200, 400, 200, 422]
    # Access lines are written as requests finish: wait until the last one is in the file.
    deadline = time.monotonic() + 30
    while service.log_text().count("path=/score") < before + 8 and time.monotonic() < deadline:
        time.sleep(0.2)
    log = service.log_text()
    assert "serving alliance-risk version 1" in log  # the log is being written
    assert "path=/score_batch" in log  # access lines are there, with paths only
    for token in (
        "PRIV_AID",
        *SECRET_VALUES,
        "favourite_colour",
        "thirty",
        "01/03/2024",
        "wk_secret",
        "ratings[",
        "wai_",
    ):
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


def test_server_processes_load_no_pandas_sklearn_or_mlflow(service, client):
    """What keeps the service at ~300 MB and a ~5 s start: the request path and the processes
    serving it never import pandas, scikit-learn or MLflow (the champion comes from BentoML's
    model store, exported there by whoever read the registry). Checked on the live processes'
    mapped files."""
    need(os.path.isdir("/proc/self/task"), "reading the server's mapped files needs Linux /proc")
    assert client.post("/score", json=record("PRIV_AID_MAPS")).status_code == 200

    def cmd(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline") as fh:
                return fh.read()
        except OSError:  # exited meanwhile
            return ""

    read = {}
    for pid in _tree(service.proc.pid):
        try:
            with open(f"/proc/{pid}/maps") as fh:
                read[pid] = fh.read()
        except OSError:  # a short-lived helper (not a worker) exited between listing and reading
            continue
    assert len(read) >= 3, sorted(read)  # the parent and two workers, all still alive
    for pid, maps in read.items():
        for lib in ("/pandas/", "/sklearn/", "/mlflow/"):
            assert lib not in maps, (pid, cmd(pid), lib)
