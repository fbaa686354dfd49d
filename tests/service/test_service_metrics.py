"""The service's own Prometheus metrics on /metrics (serving/metrics.py), against a live
`bentoml serve` of a trained champion: scores by band, the risk histogram, validation errors by
field, the model version; no identifier and no raw value in the exposition."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from harness.commands import launch_service
from serving.metrics import field_label

pytestmark = [pytest.mark.xdist_group("trained"), pytest.mark.slow]

PRIVATE_ID = "PRIV_METRICS_7731"


def _record(aid: str, **over) -> dict:
    base = {
        "admission_id": aid,
        "service_id": "SVC_METRICS_55",
        "admission_date": "2024-03-01",
        "age": 34,
        "sex": "male",
        "primary_substance": "crack",
        "mot_treatment_readiness": 18,
        "social_support": 15,
    }
    return base | over


def _samples(text: str, name: str) -> dict[str, float]:
    """{label text: value} of one metric family's samples (summed over worker pids)."""
    out: dict[str, float] = {}
    for m in re.finditer(rf"^{name}(\{{[^}}]*\}})?\s+([0-9.e+-]+)$", text, re.M):
        labels = re.sub(r',?pid="\d+"', "", m.group(1) or "")
        out[labels] = out.get(labels, 0.0) + float(m.group(2))
    return out


def test_field_label_keeps_contract_names_only():
    assert field_label("age") == "age" and field_label("records[3].ghq_01") == "ghq_01"
    assert field_label("intake.sex") == "sex"
    assert field_label("patient_name") == "other" and field_label(None) == "other"


def test_metrics_count_scores_bands_errors_and_version(trained_store, tmp_path):
    svc = launch_service(tmp_path / "svc", trained_store.uri)
    try:
        with httpx.Client(base_url=svc.base, headers=svc.headers(), timeout=30) as c:
            risks = []
            for i, readiness in enumerate((10, 30, 50)):
                r = c.post(
                    "/score", json=_record(f"{PRIVATE_ID}_{i}", mot_treatment_readiness=readiness)
                )
                assert r.status_code == 200, r.text
                risks.append(r.json()["risk"])
            assert c.post("/score", json=_record("X1", age=200)).status_code == 422
            batch = {"records": [_record("B1"), _record("B2", sex="unknown_code")]}
            rb = c.post("/score_batch", json=batch)
            assert rb.status_code == 200 and rb.json()["n_scored"] == 1
            risks.append(rb.json()["results"][0]["risk"])
            bands = [c.get("/model").json()["bands"][k] for k in ("moderate_from", "high_from")]
            text = httpx.get(svc.base + "/metrics", timeout=30).text
        time.sleep(0.5)  # an access line, were one written, is written as its request finishes
        log = svc.log_text()
    finally:
        svc.stop()
    # Started with the default settings: no access log (serving.access_log), the requests are
    # counted here instead
    assert "serving alliance-risk version 1" in log and "path=/score" not in log

    want = {"low": 0, "moderate": 0, "high": 0}
    for p in risks:
        want["high" if p >= bands[1] else "moderate" if p >= bands[0] else "low"] += 1
    scores = _samples(text, "alliance_risk_scores_total")
    assert {k: scores.get(f'{{band="{k}"}}', 0.0) for k in want} == want
    assert _samples(text, "alliance_risk_risk_count") == {"": 4.0}
    assert _samples(text, "alliance_risk_risk_sum")[""] == pytest.approx(sum(risks), rel=1e-6)
    top = _samples(text, "alliance_risk_risk_bucket")
    assert top['{le="+Inf"}'] == 4.0
    assert top['{le="0.1"}'] == sum(p <= 0.1 for p in risks)
    errors = _samples(text, "alliance_risk_validation_errors_total")
    assert errors.get('{field="age"}') == 1.0 and errors.get('{field="sex"}') == 1.0
    version = _samples(text, "alliance_risk_model_version")
    assert list(version.values()) and all(v == 1.0 for v in version.values())
    assert all(re.fullmatch(r'\{version="\d+"\}', k) for k in version)
    # Nothing from a record: no id, no service id, no raw value
    for secret in (PRIVATE_ID, "SVC_METRICS_55", "unknown_code"):
        assert secret not in "\n".join(
            line for line in text.splitlines() if line.startswith("alliance_risk")
        )
