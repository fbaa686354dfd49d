"""The alliance-risk service (BentoML 1.4): scoring API, model card data, intake page.

Run it with ``python -m pipelines.serve`` (or ``bentoml serve serving.service:AllianceRisk``).

Routes (all JSON; see README "Serving" and the offline docs page at /api-docs):
- ``POST /score``: one flat scoring record -> risk, band, drivers with actions and what-ifs. The
  body is the record itself: BentoML's public "root input" (a positional-only parameter, typed
  with the pydantic model ``ScoringRecord`` that carries the catalog's JSON schema). Over HTTP the
  guard parses the body and answers with ``score_response``, the answer the API itself gives.
- ``POST /score_batch``: ``{"records": [...]}`` (at most ``serving.max_batch``) -> one result per
  record in order; a bad record carries its own field-named errors and the others are scored.
- ``GET /model``: version, training time, label definition, headline metrics, bands, catalog.
- ``/livez``, ``/readyz``, ``/metrics``: BentoML's own, open; ``/metrics`` also carries the
  service's scores by band, risk histogram, validation errors by field and model version
  (serving.metrics). ``/readyz`` is 503 with the reason
  while there is no champion or no API key.
- ``/`` intake page, ``/api-docs`` offline API docs, ``/docs.json`` the OpenAPI document.

The champion is loaded once in ``__init__`` from BentoML's model store (``bentoml.models.get``,
models/lifecycle/bento_store.py: the tag in ``serving.model_tag``, which ``python -m pipelines.serve`` sets
to the registry's champion after exporting it; else the newest exported champion, and the log says
so) and scored through the numpy ``ScoringModel`` (serving.engine): no pandas, scikit-learn, GX or
MLflow in the serving processes, and no registry read at start. Started by
``python -m pipelines.serve``, a worker reports ready only once the launcher has confirmed that the
model it loaded is the registry's champion (``ServingState.ready``, serving/launcher.py); each
worker stops itself when BentoML's arbiter, its parent, is gone (``watch_parent``).

Concurrency: ``serving.workers`` worker processes (default 2: this machine has two cores), each with the event loop doing
the work. ``/score`` is scored inline on the loop (0.5-1.0 ms of CPU in process with the
explanation, docs/benchmarks.md), answered by the guard once the body is checked
(``score_response``), which avoids a thread hop per request
and the GIL contention of a thread pool; ``/score_batch`` is a sync API on BentoML's thread pool
(2 threads) so a large batch does not stall the loop. No ``max_concurrency`` is set, so load
queues rather than being shed with 503 (figures: docs/benchmarks.md).

Per-request settings, for latency (issues 17 and 19: ``/score`` within 1.2x of the same engine
behind a bare FastAPI route; docs/benchmarks.md "In paired rounds, and without BentoML's access
log"): BentoML's access log is off unless ``serving.access_log`` is set; no request is traced
(``tracing.excluded_urls`` in the decorator: BentoML's OpenTelemetry middleware started an unsampled
span per request, about 0.25 ms); and the guard answers ``POST /score`` itself once it has checked
the body (``score_response``: BentoML's API dispatch and second parse of the body were about
0.16 ms). BentoML's Prometheus middleware (``/metrics``) and its 120 s timeout stay.

Only BentoML's public API is used (``bentoml.*``; tests/service/test_bento.py checks that no
project module imports ``_bentoml_sdk``/``_bentoml_impl``), so ``bentoml`` is pinned to a minor
range, not a patch release.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from functools import cache
from typing import Any

import bentoml
from pydantic import BaseModel, ConfigDict, RootModel
from pydantic import Field as PField
from starlette.responses import Response

from features.settings import load_settings
from serving.auth import KeyRing
from serving import metrics as service_metrics
from serving.guard import Guard
from serving.launcher import CONFIRM_ENV, confirmed_tag, mark_supervisor, watch_parent
from serving.page import make_app
from serving.engine import ratings_json_schema
from validation.record import record_json_schema

logger = logging.getLogger("bentoml.alliance_risk")
SETTINGS = load_settings()  # the decorator below needs host, port and workers
mark_supervisor()  # in BentoML's arbiter: its PID, for the workers' watchdog (serving/launcher.py)

NO_KEY = (
    "no API key is configured, so scoring is refused rather than run open: set "
    "ALLIANCE_RISK_SERVING__API_KEY_HASHES='[\"<sha256 hex>\"]' (or ALLIANCE_RISK_SERVING__API_KEY "
    "for local use), or start with `python -m pipelines.serve`, which makes a local key"
)
INTERNAL = {"error": "internal error while scoring; the server log has the error type"}


class ServingState:
    """What the middleware, the page app and the API share inside one worker process.

    ``ready``: a model and a key, and, when ``python -m pipelines.serve`` started the server
    (``confirm_file`` set, serving/launcher.py), the launcher's word that the model this worker
    loaded (``tag``) is the registry's champion. Until that word the worker answers 503 and
    ``reason`` says what it waits for; once confirmed it never reads the file again."""

    def __init__(self) -> None:
        self.ready = False
        self.reason = "starting"
        self.key_reason = NO_KEY
        self.keyring = KeyRing()
        self.engine: Any = None
        self.max_body_bytes = 8 * 1024 * 1024
        self.tag = ""
        self.confirm_file: str | None = None
        # /score's answer for a checked record (score_response): the guard calls it directly
        self.answer: Any = None

    @property
    def ready(self) -> bool:
        if not self._ready:
            return False
        if self.confirm_file is None:
            return True
        champion = confirmed_tag(self.confirm_file)
        if champion == self.tag:
            self.confirm_file = None
            self.reason = "ready"
            logger.info("the launcher confirmed %s as the registry's champion", self.tag)
            return True
        self.reason = (
            f"waiting for the launcher to confirm that {self.tag} is the registry's champion"
            if champion is None
            else f"this server loaded {self.tag}, but the registry's champion is {champion}: "
            "the launcher restarts the service on it"
        )
        return False

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value


STATE = ServingState()


# ---- OpenAPI: the record schema generated from the catalog ------------------------------------
@cache
def _record_schema() -> dict[str, Any]:
    s = record_json_schema()
    s["title"] = "ScoringRecord"
    # the weekly WAI-S ratings ride on the record (issue 19): optional, checked by
    # models.scoring.weekly.validate_ratings with field-named errors (ratings[i].wai_03)
    s["properties"]["ratings"] = ratings_json_schema()
    return s


class ScoringRecord(RootModel[dict[str, Any]]):
    """One flat scoring record: the request body of ``/score`` is the record itself.

    ``score`` takes it as a positional-only parameter, BentoML's public "root input" (the body is
    not wrapped in a key). A pydantic model rather than ``Annotated[dict, WithJsonSchema(...)]``:
    for a plain annotated type BentoML's root model rebuilds the JSON schema (a ``TypeAdapter``
    of the catalog schema) on every request to decide how to parse the body, about 7.7 ms of CPU
    per request here, while a model is parsed by pydantic directly (about 6 µs). Over HTTP the
    guard now answers ``/score`` before BentoML parses the body at all (``score_response``); the
    type still gives ``/docs.json`` its schema and BentoML's clients their call. The fields are
    checked by ``validation.record.check_record`` with field-named errors; the schema only
    documents them (``/docs.json``, ``/api-docs``)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        return copy.deepcopy(_record_schema())


class BatchInput(bentoml.IODescriptor):
    """``{"records": [record, ...]}``."""

    records: list[Any]

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        ref = kwargs.get("ref_template", "#/$defs/{model}").format(model="ScoringRecord")
        return {
            "title": "BatchInput",
            "type": "object",
            "properties": {
                "records": {
                    "title": "records",
                    "type": "array",
                    "maxItems": SETTINGS.serving.max_batch,
                    "minItems": 1,
                    "items": {"$ref": ref},
                    "description": "Scoring records, at most serving.max_batch "
                    f"({SETTINGS.serving.max_batch} with the current settings).",
                }
            },
            "required": ["records"],
            "additionalProperties": False,
            "$defs": {"ScoringRecord": copy.deepcopy(_record_schema())},
        }


class FieldProblem(BaseModel):
    field: str
    reason: str


class ErrorBody(BaseModel):
    admission_id: str | None = None
    errors: list[FieldProblem]


class Driver(BaseModel):
    model_config = ConfigDict(extra="allow")
    driver: str
    label: str
    effect: str = PField(description="raises or lowers the risk")
    points: float = PField(description="share of (risk - base risk), probability units")
    percentage_points: float
    log_odds: float
    modifiable: bool
    values: list[dict[str, Any]]
    actions: list[dict[str, str]] = PField(
        description="only for modifiable drivers that raise risk"
    )
    what_if: dict[str, Any] | None = PField(
        None, description="risk with this driver's scales at the reference median"
    )


class Interval(BaseModel):
    """A 95% uncertainty interval of a risk (quantiles of the risk over the model's refits and
    draws, widened to contain the risk)."""

    low: float
    high: float
    level: float = PField(description="0.95")


class RiskInterval(Interval):
    band_certain: bool = PField(description="both ends of the interval are in the risk's band")
    bands_possible: list[str] = PField(description="the bands the interval spans, low to high")


class ScoreOutput(BaseModel):
    """A scored record (200), or ``{"errors": [{"field", "reason"}]}`` with 4xx."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    admission_id: str
    risk: float = PField(description="calibrated probability of a low early alliance")
    risk_percent: float
    risk_interval: RiskInterval | None = PField(
        None,
        description="95% uncertainty interval of risk (with ratings: of the updated risk); null "
        "when the model states none (LightGBM)",
    )
    band: str
    base_risk: float
    model: dict[str, str]
    drivers: list[Driver]
    not_assessed: list[str]
    items_used: dict[str, list[str]]
    warnings: list[str]
    monitoring: dict[str, str] | None
    disclaimer: str
    # Only when the record carried `ratings` (issue 19); without ratings the answer is unchanged.
    as_of_week: int | None = PField(
        None, description="with ratings: the latest rated week (0-3); risk is then updated"
    )
    risk_at_admission: float | None = PField(None, description="with ratings: the admission risk")
    risk_interval_at_admission: RiskInterval | None = PField(
        None, description="with ratings: the admission model's interval, around risk_at_admission"
    )
    band_at_admission: str | None = None
    risk_remaining: float | None = PField(
        None,
        description="with ratings: risk of a low alliance in the weeks still to come "
        "(as_of_week+1..3); null as of week 3",
    )
    risk_remaining_interval: Interval | None = PField(
        None, description="with ratings: 95% uncertainty interval of risk_remaining"
    )
    remaining_weeks: list[int] | None = None
    signal: dict[str, Any] | None = PField(
        None, description="not-on-track signal: flag, expected band, why, actions with sources"
    )
    rupture: dict[str, Any] | None = PField(
        None, description="a reliable week-to-week drop: flag, drops, why, actions with sources"
    )
    discrepancy: dict[str, Any] | None = PField(
        None, description="client - counsellor difference in the latest week rated by both"
    )
    risk_interval_note: str | None = None


class BatchItem(ScoreOutput):
    index: int


class BatchOutput(BaseModel):
    """One result per record, in order; a bad record is ``{"index", "admission_id", "errors"}``."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    model: dict[str, str]
    n_records: int
    n_scored: int
    n_errors: int
    results: list[BatchItem | ErrorBody]
    disclaimer: str


def _json(status: int, body: dict[str, Any], started: float | None = None) -> Response:
    headers = None
    if started is not None:  # Server-Timing: time spent validating, scoring and explaining
        headers = {"Server-Timing": f"score;dur={(time.perf_counter() - started) * 1000:.3f}"}
    return Response(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


SERVICE_NAME = "alliance_risk"
# The Server header BentoML puts on the answers of its API routes: /score's, answered by the
# guard, carries it too
SERVER_HEADER = f"BentoML Service/{SERVICE_NAME}"


def _call(fn, body: Any) -> Response:
    started = time.perf_counter()
    try:
        status, out = fn(body)
    except Exception as exc:  # never leak values: log the type and where it happened
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
        logger.error("scoring failed with %s at %s", type(exc).__name__, where)
        return _json(500, INTERNAL)
    service_metrics.record_response(status, out)
    return _json(status, out, started)


def score_response(record: dict[str, Any]) -> Response:
    """``POST /score``'s answer for one record (a JSON object, already parsed).

    The guard (serving/guard.py) calls this itself once it has checked the key, readiness and
    body, rather than handing the request on to BentoML's route for ``score``: BentoML's dispatch
    (its request context, the root-input parse of ``ScoringRecord`` a second time after the
    guard's, signature binding, response headers) was about 160 µs of CPU per request in
    process, the largest share of what BentoML added once tracing was off (bench.overhead_ratio,
    paired rounds: BentoML / bare FastAPI 1.11-1.25x with week-1 ratings and 1.17-1.20x without,
    0.95-1.02x and 0.98-1.02x answered here; docs/benchmarks.md). BentoML's own middleware (Prometheus
    counts, the 120 s timeout, the access log when on) still wraps it, and the answer is the one
    the ``score`` API below returns, headers included."""
    resp = _call(STATE.engine.score, record)
    resp.headers["server"] = SERVER_HEADER
    return resp


@bentoml.service(
    name=SERVICE_NAME,
    http={"host": SETTINGS.serving.host, "port": SETTINGS.serving.port},
    workers=SETTINGS.serving.workers,
    threads=2,
    traffic={"timeout": 120},
    # No request is traced. BentoML's OpenTelemetry middleware otherwise starts a span for every
    # request although nothing samples or exports it (no exporter, sample rate 0): in process
    # about 250 us of a /score (bench.overhead_ratio, paired rounds: BentoML / bare FastAPI
    # 1.23x with week-1 ratings and 1.38x without before, 1.11-1.25x and 1.17-1.20x after;
    # docs/benchmarks.md). Gone with it: BentoML's X-BentoML-Request-ID response header and the
    # trace/span ids BentoML appends to log lines written during a request, ids of spans that
    # were never recorded. To trace,
    # configure an exporter and override this in a BENTOML_CONFIG file
    # (services.alliance_risk.tracing.excluded_urls: "/livez,/readyz,/metrics").
    tracing={"excluded_urls": [".*"]},
    logging={
        "access": {
            "enabled": SETTINGS.serving.access_log,
            "request_content_length": False,
            "request_content_type": False,
            "response_content_length": False,
            "response_content_type": False,
        }
    },
)
class AllianceRisk:
    """Risk of a low early therapeutic alliance at admission to drug treatment: decision
    support, not a diagnosis. Scoring routes and /model need `Authorization: Bearer <API key>`."""

    def __init__(self) -> None:
        from serving import timers
        from serving.audit import AuditLog
        from serving.engine import Engine
        from models.lifecycle.bento_store import UNAVAILABLE_ENV
        from models.lifecycle.bento_store import load as load_exported
        from models.lifecycle.resolve import ModelNotFound

        # BentoML's timeout timer would hold every request for traffic.timeout: serving/timers.py
        timers.install_on_running_loop()
        # BentoML's arbiter starts this worker in a session of its own: when the arbiter is killed
        # outright (SIGKILL of the launcher's process group) the worker must not live on as an
        # orphan answering on the port (serving/launcher.py)
        watch_parent()

        settings = SETTINGS
        cfg = settings.serving
        STATE.keyring = KeyRing(cfg.api_key_hashes, cfg.api_key)
        STATE.max_body_bytes = cfg.max_body_bytes
        if STATE.keyring.invalid:
            logger.warning(
                "%d configured API key hash(es) are not 64 hex digits and are ignored",
                STATE.keyring.invalid,
            )
        problems = []
        if not STATE.keyring.configured:
            problems.append(NO_KEY)
        champion = None
        if unavailable := os.environ.get(UNAVAILABLE_ENV):  # the launcher could not export one
            problems.append(unavailable)
        else:
            try:
                champion, tag = load_exported(
                    cfg.model_tag or None, settings.train.registered_model
                )
            except ModelNotFound as exc:
                problems.append(str(exc))
        if champion is not None:
            STATE.tag = tag
            # started by pipelines.serve: not ready before it confirms this model is the champion
            STATE.confirm_file = os.environ.get(CONFIRM_ENV) or None
            audit = AuditLog(cfg.audit_db, cfg.audit_hash_key)
            STATE.engine = Engine(champion, audit, cfg.max_batch)
            service_metrics.record_model(champion.version)
            logger.info(
                "serving %s version %s (%s), trained %s, from the BentoML model store as %s%s; "
                "%d API key(s) configured",
                champion.name,
                champion.version,
                champion.model.kind,
                champion.trained_at,
                tag,
                ""
                if cfg.model_tag
                else " (the newest exported champion: no model tag was given; "
                "`python -m pipelines.serve` serves the registry's champion)",
                len(STATE.keyring),
            )
        if problems:
            STATE.reason = "; ".join(problems)
            logger.error("not ready: %s", STATE.reason)
        else:
            STATE.reason = "ready"
            STATE.ready = True  # and, under pipelines.serve, confirmed (ServingState.ready)

    def __is_ready__(self) -> bool:
        return STATE.ready

    @bentoml.api(route="/score", output_spec=ScoreOutput)
    async def score(self, record: ScoringRecord, /) -> Response:
        """Score one record: risk, band, drivers (raises/lowers, in probability points), actions
        and what-ifs for modifiable drivers, drivers not assessed, warnings. Bad input -> 400/422
        with `{"errors": [{"field", "reason"}]}`."""
        # Over HTTP the guard answers /score with score_response before this is reached; this
        # declaration gives /docs.json, /api-docs and BentoML's clients the route and its schema
        return score_response(record.root)

    @bentoml.api(route="/score_batch", input_spec=BatchInput, output_spec=BatchOutput)
    def score_batch(self, records: list[Any]) -> Response:
        """Score up to `serving.max_batch` records; one result per record, in order. A bad record
        gets `{"index", "admission_id", "errors"}` and does not fail the others."""
        return _call(STATE.engine.score_batch, {"records": records})


STATE.answer = score_response
AllianceRisk.add_asgi_middleware(Guard, state=STATE)
AllianceRisk.mount_asgi_app(make_app(STATE), path="", name="pages")
