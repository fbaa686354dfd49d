"""The intake page, its static files, GET /model and the offline API docs, as one FastAPI app.

The app is mounted on the BentoML service at the root; BentoML adds mounted apps before its own
index route, so ``/`` serves the intake page instead of BentoML's Swagger page (which loads a
script from outside the machine). Every page is plain HTML/CSS/JS from ``serving/static`` and a
Content-Security-Policy of 'self' keeps the browser from loading anything from elsewhere.

``GET /model`` lives here because BentoML APIs are POST-only; the Guard middleware applies the
same API-key rule to it as to the scoring routes, and FastAPI puts it into the service's OpenAPI
document (BentoML merges a mounted FastAPI app's paths into /docs.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class CatalogField(BaseModel):
    name: str
    table: str
    kind: str
    required: bool
    codes: list[str] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    unit: str | None = None
    instrument: str | None = None
    description: str
    allowed: str
    driver: str | None = None
    modifiable: bool
    direction: str
    section: str | None = None
    is_item: bool
    scale: str | None = None


class ModelInfo(BaseModel):
    """What GET /model answers: the champion, its label and metrics, bands, and the catalog."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    name: str
    version: str
    trained_at: str | None = None
    registered_at: str | None = None
    synthetic_data: bool = PField(
        False, description="trained on the SYNTHETIC cohort of pipelines.simulate, not real clients"
    )
    label: dict[str, Any]
    metrics: dict[str, float]
    bands: dict[str, Any]
    sections: list[dict[str, str]]
    catalog: list[CatalogField]
    max_batch: int
    disclaimer: str


def make_app(state: Any) -> FastAPI:
    app = FastAPI(
        title="alliance-risk pages",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the service's OpenAPI document is BentoML's /docs.json
    )

    def page(name: str) -> FileResponse:
        return FileResponse(STATIC / name, media_type="text/html", headers=HEADERS)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return page("index.html")

    @app.get("/api-docs", include_in_schema=False)
    def api_docs() -> FileResponse:
        return page("api-docs.html")

    @app.get(
        "/model",
        response_model=ModelInfo,
        tags=["Service APIs"],
        summary="The serving model, its label definition, metrics, bands and field catalog",
        description="Needs `Authorization: Bearer <API key>`. The catalog lists every field of "
        "the scoring record (name, table, kind, codes, min, max, required, description, driver, "
        "modifiable, direction, section) so a client can build its own form.",
        responses={
            401: {"description": "missing or invalid API key"},
            503: {"description": "not ready"},
        },
    )
    def model() -> JSONResponse:
        return JSONResponse(state.engine.model_info(), headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
