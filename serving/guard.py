"""The ASGI middleware in front of every route: readiness message, API keys, body shape.

Why a middleware rather than checks inside the API functions: BentoML parses the body before it
calls an API, and a body it cannot parse becomes a generic 400 whose traceback is logged (with a
snippet of the body: intake values in the log). Checking here first means that (1) a request
without a valid key is refused before its body is read, (2) a body that is not a JSON object gets
the field-named error contract, and (3) BentoML only ever sees bodies it can parse.

Routes:
- ``/score``, ``/score_batch``, ``/model``: need ``Authorization: Bearer <key>`` (401 otherwise);
  503 with the reason while the service is not ready (no key configured, no champion).
- ``POST /score`` with a body that is a JSON object: answered here, with ``state.answer``
  (``serving.service.score_response``, the same answer the ``score`` API gives), instead of being
  replayed to BentoML's route, which would parse the body a second time and go through BentoML's
  API dispatch (about 160 µs of CPU per request; the figures are in ``score_response``'s
  docstring). BentoML's middleware outside this one (Prometheus counts, timeout, access log)
  still applies. ``/score_batch`` goes on to BentoML (a sync API on its thread pool).
- ``/readyz``: while not ready, answered here with 503 and the reason as plain text (BentoML's own
  ``/readyz`` says only that ``__is_ready__`` returned False); when ready, BentoML answers.
- everything else (page, static files, ``/livez``, ``/metrics``, ``/docs.json``): passed through.
"""

from __future__ import annotations

import json
from typing import Any

from serving.engine import BODY, error, errors_body

PROTECTED = frozenset({"/score", "/score_batch", "/model"})
BODY_ROUTES = frozenset({"/score", "/score_batch"})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> tuple[Any, str | None]:
    """(value, None) or (None, reason). Strict JSON: no NaN/Infinity, UTF-8."""
    if not raw.strip():
        return None, "the body is empty: send a JSON object"
    try:
        return json.loads(raw, parse_constant=_reject_constant), None
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None, "the body is not valid JSON"


async def _send(send, status: int, data: bytes, ctype: bytes, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", ctype),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    await _send(send, status, json.dumps(body).encode("utf-8"), b"application/json", headers)


async def _send_text(send, status: int, text: str) -> None:
    await _send(send, status, text.encode("utf-8"), b"text/plain; charset=utf-8")


class Guard:
    """Pure ASGI middleware. ``state`` is the service's shared ``ServingState``."""

    def __init__(self, app, state: Any):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        state = self.state
        if path == "/readyz" and not state.ready:
            return await _send_text(send, 503, f"not ready: {state.reason}\n")
        if path not in PROTECTED:
            return await self.app(scope, receive, send)

        if not state.keyring.configured:
            return await _send_json(send, 503, {"error": state.key_reason})
        auth = None
        for k, v in scope.get("headers", ()):
            if k == b"authorization":
                auth = v
                break
        if not state.keyring.check_header(auth):
            return await _send_json(
                send,
                401,
                {
                    "error": "missing or invalid API key: send 'Authorization: Bearer <key>'",
                    "errors": [error("authorization", "missing or invalid API key")],
                },
                [(b"www-authenticate", b'Bearer realm="alliance-risk"')],
            )
        if not state.ready:
            return await _send_json(send, 503, {"error": f"not ready: {state.reason}"})
        if path not in BODY_ROUTES or scope.get("method") != "POST":
            return await self.app(scope, receive, send)

        # Read the whole body (bounded), check its shape, then replay it to BentoML.
        limit = state.max_body_bytes
        too_big = errors_body([error(BODY, f"the body is larger than {limit} bytes")])
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                if v.isdigit() and int(v) > limit:  # refuse before reading anything
                    return await _send_json(send, 413, too_big)
                break
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _send_json(send, 413, too_big)
            chunks.append(chunk)
            more = msg.get("more_body", False)
        raw = b"".join(chunks)
        value, why = parse_json(raw)
        if why is not None:
            return await _send_json(send, 400, errors_body([error(BODY, why)]))
        if path == "/score":
            if not isinstance(value, dict):
                return await _send_json(
                    send,
                    400,
                    errors_body([error(BODY, "the body must be a JSON object (one record)")]),
                )
            if state.answer is not None:  # answered here: see the module docstring
                return await state.answer(value)(scope, receive, send)
        else:
            errs = state.engine.check_batch_shape(value)
            if errs:
                return await _send_json(send, 400, errors_body(errs))

        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        # The body is JSON whatever the client's Content-Type said (curl -d sends a form type):
        # tell BentoML so, or it would pick its form or multipart parser.
        headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
        headers.append((b"content-type", b"application/json"))
        return await self.app({**scope, "headers": headers}, replay, send)
