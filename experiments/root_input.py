"""What parsing the ``/score`` body costs BentoML, for two public ways to type a root input.

    .venv/bin/python -m experiments.root_input [--n 3000]

The ``/score`` body is the record itself: a positional-only parameter (BentoML's "root input").
BentoML turns its type into an input model and, per request, calls that model's
``model_validate_json`` on the body. Two public typings, same catalog schema in ``/docs.json``:
1. ``Annotated[dict[str, Any], WithJsonSchema(<catalog schema>)]``: BentoML wraps a plain type in
   its root model, whose ``model_validate_json`` builds the type's JSON schema (a pydantic
   ``TypeAdapter``) on every call, to decide whether the body is text or JSON;
2. ``serving.service.ScoringRecord``, a pydantic ``RootModel[dict[str, Any]]`` whose JSON schema
   is the catalog's: BentoML keeps a model as it is, and pydantic parses the body directly.
Both are built with ``bentoml.IODescriptor.from_input``, as ``@bentoml.api`` builds them, and
parse the same SYNTHETIC record. Prints microseconds per parse; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Annotated, Any

import bentoml
from pydantic import WithJsonSchema

from harness.records import CRACK_INTAKE, FAVOURABLE_SCALES
from serving.service import ScoringRecord, _record_schema

ANNOTATED = Annotated[dict[str, Any], WithJsonSchema(_record_schema())]


async def as_annotated(record: ANNOTATED, /) -> None:  # type: ignore[valid-type]
    """Typing 1."""


async def as_model(record: ScoringRecord, /) -> None:
    """Typing 2 (the service's)."""


def per_parse_us(spec: Any, body: bytes, n: int) -> float:
    spec.model_validate_json(body)
    t = time.perf_counter()
    for _ in range(n):
        spec.model_validate_json(body)
    return (time.perf_counter() - t) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.root_input", description=__doc__)
    ap.add_argument("--n", type=int, default=3000, help="parses per typing (default %(default)s)")
    args = ap.parse_args(argv)
    body = json.dumps({"admission_id": "SYN-1", **CRACK_INTAKE, **FAVOURABLE_SCALES}).encode()
    for label, fn in (
        ("Annotated[dict, WithJsonSchema(catalog)]", as_annotated),
        ("ScoringRecord (pydantic RootModel, the service's)", as_model),
    ):
        spec = bentoml.IODescriptor.from_input(fn)
        assert spec.model_validate_json(body).root["admission_id"] == "SYN-1"
        print(f"{label:52s} {per_parse_us(spec, body, args.n):9.1f} µs per parse", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
