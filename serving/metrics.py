"""The service's own Prometheus metrics, next to BentoML's on ``/metrics``.

What an operator watches between monitor runs: the band mix and risk distribution of what is being
scored (a drift seen within the hour instead of at the next batch check), validation errors by field
(an intake form or an upstream export that broke), and which model version answers.

No identifiers and no raw values: labels are only the band (low / moderate / high), a field name
from the data contract (anything else is counted as "other", so a client cannot create label values
at will), and the model version. The risk histogram has fixed buckets at tenths (plus the default
band cut-offs 0.2 and 0.4 are among them), so a single score cannot be read back from it.

``prometheus_client`` directly (BentoML 1.4 deprecates its ``bentoml.metrics`` wrapper), with the
metrics made on first use rather than at import: BentoML's workers run in Prometheus multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``), which prometheus_client must see when the metric is created,
so the two workers' counts add up on ``/metrics``. Recording costs a few microseconds per score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from types import SimpleNamespace
from typing import Any

from features.catalog import SCORING_BY_NAME
from features.settings import BAND_NAMES

BANDS = BAND_NAMES
RISK_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
KNOWN_FIELDS = frozenset(SCORING_BY_NAME) | {"body", "records"}


@cache
def _m() -> SimpleNamespace:
    """The service's metrics, made once per worker process on first use."""
    from prometheus_client import Counter, Gauge, Histogram

    return SimpleNamespace(
        scores=Counter("alliance_risk_scores", "Records scored, by risk band", ["band"]),
        risk=Histogram(
            "alliance_risk_risk",
            "Predicted risk of a low early alliance (probability)",
            buckets=RISK_BUCKETS,
        ),
        errors=Counter(
            "alliance_risk_validation_errors",
            "Field-level validation errors in refused records, by data-contract field",
            ["field"],
        ),
        model=Gauge(
            "alliance_risk_model_version",
            "1 for the registered model version this service answers with",
            ["version"],
            multiprocess_mode="max",
        ),
    )


def field_label(name: Any) -> str:
    """A scoring-record field name of the contract (items included), else "other". Error fields
    may be "table.field" or carry an index ("records[3].age")."""
    base = str(name or "").rsplit(".", 1)[-1].split("[", 1)[0]
    return base if base in KNOWN_FIELDS else "other"


def record_model(version: str) -> None:
    _m().model.labels(version=str(version)).set(1)


def _errors(items: Iterable[Mapping[str, Any]]) -> None:
    for e in items:
        if isinstance(e, Mapping):
            _m().errors.labels(field=field_label(e.get("field"))).inc()


def _scored(item: Mapping[str, Any]) -> None:
    band = item.get("band")
    risk = item.get("risk")
    if band in BANDS and isinstance(risk, float | int):
        m = _m()
        m.scores.labels(band=band).inc()
        m.risk.observe(float(risk))


def record_response(status: int, body: Mapping[str, Any]) -> None:
    """Count one /score or /score_batch response. Never raises (metrics must not stop scoring)."""
    try:
        if "results" in body:
            for item in body.get("results") or ():
                if isinstance(item, Mapping):
                    if "errors" in item:
                        _errors(item["errors"])
                    else:
                        _scored(item)
            _errors(body.get("errors") or ())
        elif status == 200:
            _scored(body)
        else:
            _errors(body.get("errors") or ())
    except Exception:  # noqa: BLE001 - a metrics failure is never the client's problem
        pass
