"""The service's own Engine behind a bare FastAPI route: ``bench/serve_latency.py``'s reference
for issue 19's speed goal (POST /score with ratings within 1.2x the same engine behind a bare
FastAPI route). Same validation, scoring, explanation, weekly update and audit insert as the
BentoML service; no BentoML, no API-key guard, no metrics.

    MLFLOW_TRACKING_URI=... BARE_AUDIT_DB=... python -m uvicorn bench.bare_app:app --port P
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI, Request
from fastapi.responses import Response

from models.lifecycle.resolve import load
from serving.audit import AuditLog
from serving.engine import Engine

_audit = AuditLog(os.environ.get("BARE_AUDIT_DB", "bare-audit.sqlite"), "bench-audit-key")
ENGINE = Engine(load(os.environ["MLFLOW_TRACKING_URI"], lean=True), _audit, 1000)
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/score")
async def score(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return Response(b'{"errors":[{"field":"body","reason":"not JSON"}]}', status_code=400)
    status, out = ENGINE.score(body)
    return Response(
        json.dumps(out, separators=(",", ":"), default=str),
        status_code=status,
        media_type="application/json",
    )
