"""Property-based fuzzing of the running service from its own OpenAPI document (Schemathesis):
whatever the generator sends, valid or not, the answer is never a 5xx, and a refused scoring
request names a field.

Bounded: SCHEMATHESIS_EXAMPLES examples per operation (default 60), so the test stays within a
minute or two on two cores; raise it for a longer hunt.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from harness.commands import launch_service

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("served")]
BODY_PATHS = ("/score", "/score_batch")
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "60"))


@pytest.fixture(scope="session")
def live(trained_store, tmp_path_factory):
    svc = launch_service(tmp_path_factory.mktemp("fuzz"), trained_store.uri, max_batch=5)
    yield svc
    svc.stop()


def _check(case, response) -> None:
    assert response.status_code < 500, (case.method, case.path, response.status_code)
    if case.path in ("/score", "/score_batch") and 400 <= response.status_code < 500:
        body = response.json()
        assert body.get("errors"), body
        assert all(e.get("field") and e.get("reason") for e in body["errors"]), body


def _fuzz(op, mode: GenerationMode, live, seen: dict[str, int]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call(headers=live.headers(), timeout=30)
        seen[op.path] = seen.get(op.path, 0) + 1
        _check(case, response)

    run()


# Driven by hand with Hypothesis rather than schemathesis.pytest.from_fixture, which does not
# run under pytest 9 (AttributeError: 'Function' object has no attribute '_nodeid').
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_a_server_error(live, mode):
    schema = schemathesis.openapi.from_url(live.base + "/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/score", "/score_batch", "/model"} <= paths, paths
    seen: dict[str, int] = {}
    for op in operations:
        try:
            _fuzz(op, mode, live, seen)
        except Unsatisfiable:
            # An operation with no parameters or body has nothing to make invalid.
            assert mode is GenerationMode.NEGATIVE and op.path not in BODY_PATHS, op.path
    assert all(seen.get(p, 0) > 0 for p in BODY_PATHS), seen
    assert seen.get("/score", 0) >= min(EXAMPLES, 10), seen
