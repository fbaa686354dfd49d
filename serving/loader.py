"""Load the registry's champion for serving: the numpy ScoringModel plus what /model reports.

Why not ``mlflow.pyfunc.load_model``: the pyfunc scores through a one-row DataFrame (milliseconds
per request); the service needs the ``ScoringModel`` inside it (microseconds). So the loader
downloads the champion version's artifacts once, at start, builds ``ScoringModel`` from the
pyfunc's ``artifacts/scorer`` folder, and reads the version, the training run's headline metrics
and the label definition recorded with the model. The registry is read by ``models.resolve`` (the
one resolver batch, monitoring and training use too), in a short-lived child process, so MLflow is
never imported into a serving worker.

Every way this can fail (no tracking store, a store without a champion, a corrupt store or
artifact) raises ``ModelUnavailable`` with a message that says what to run; the service then
starts but is not ready, and its scoring routes answer 503 with that message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# models.resolve imports MLflow only inside fetch(), which runs in the child process.
from models.resolve import TRAIN_HINT, default_name, fetch, from_answer
from models.resolve import LoadedModel as LoadedChampion
from models.resolve import ModelNotFound as ModelUnavailable

__all__ = ["TRAIN_HINT", "LoadedChampion", "ModelUnavailable", "load_champion"]


def load_champion(
    tracking_uri: str, name: str | None = None, prefetched: Path | None = None
) -> LoadedChampion:
    """The champion of ``name`` in the store at ``tracking_uri``. Raises ModelUnavailable.

    The registry is read by a child process (``python -m serving.loader``), so MLflow (about
    100 MB and 2-3 s of imports) is never loaded into a serving worker; the worker only reads
    the downloaded scorer files, whose checksums ``ScoringModel.load`` verifies. ``prefetched``:
    a folder where that child already ran (serving.prefetch starts it early to cut cold start).
    """
    name = name or default_name()
    if prefetched is not None:
        return from_answer(_read_answer(prefetched), name, lean=True)
    with tempfile.TemporaryDirectory(prefix="alliance-risk-serve-") as tmp:
        try:
            proc = subprocess.run(
                fetch_command(tracking_uri, name, Path(tmp)),
                capture_output=True,
                text=True,
                timeout=READ_TIMEOUT_S,
                env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
            )
        except subprocess.TimeoutExpired as exc:
            raise ModelUnavailable(
                f"the tracking store {tracking_uri} did not answer within {READ_TIMEOUT_S} s"
            ) from exc
        except OSError as exc:
            raise ModelUnavailable(f"the registry reader could not start: {exc}") from exc
        answer = _read_answer(Path(tmp))
        if "error" not in answer and "scorer" not in answer:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
            answer = {"error": f"the registry reader exited with {proc.returncode} ({last})"}
        return from_answer(answer, name, lean=True)


def fetch_command(tracking_uri: str, name: str, dst: Path) -> list[str]:
    return [sys.executable, "-m", "serving.loader", tracking_uri, name, str(dst)]


ANSWER = "answer.json"
READ_TIMEOUT_S = 240  # a registry read that takes longer is reported as unavailable


def _read_answer(d: Path) -> dict[str, Any]:
    try:
        return json.loads((d / ANSWER).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def main(argv: list[str] | None = None) -> int:
    """Child-process entry: fetch into DIR and write DIR/answer.json (the answer or the error),
    atomically, so a reader polling for the file never sees half of it."""
    uri, name, dst = (argv or sys.argv[1:])[:3]
    d = Path(dst)
    try:
        answer, code = fetch(uri, name, d), 0
    except ModelUnavailable as exc:
        answer, code = {"error": str(exc)}, 3
    except Exception as exc:  # never leave a reader waiting for an answer
        answer, code = {"error": f"the registry reader failed ({type(exc).__name__})"}, 4
    part = d / (ANSWER + ".part")
    part.write_text(json.dumps(answer))
    part.replace(d / ANSWER)
    return code


if __name__ == "__main__":
    sys.exit(main())
