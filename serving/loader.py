"""Load the registry's champion for serving: the numpy ScoringModel plus what /model reports.

Why not ``mlflow.pyfunc.load_model``: the pyfunc scores through a one-row DataFrame (milliseconds
per request); the service needs the ``ScoringModel`` inside it (microseconds). So the loader
downloads the champion version's artifacts once, at start, builds ``ScoringModel`` from the
pyfunc's ``artifacts/scorer`` folder, and reads the version, the training run's headline metrics
and the label definition recorded with the model. MLflow is imported only in a short-lived child
process that reads the registry, never in a serving worker.

Every way this can fail (no tracking store, a store without a champion, a corrupt store or
artifact) raises ``ModelUnavailable`` with a message that says what to run; the service then
starts but is not ready, and its scoring routes answer 503 with that message.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the registry-reader child needs neither (cold start)
    from features.settings import BandConfig
    from models.scorer import ScoringModel

CHAMPION = "champion"
TRAIN_HINT = "train one with `make train` or `python -m pipelines.train --data DIR`"
# Run metrics shown as the model's headline figures (point estimates and 95% CI bounds).
HEADLINE = ("auroc", "auprc", "log_loss", "brier", "cal_slope", "cal_intercept", "ece")


class ModelUnavailable(RuntimeError):
    """No usable champion; the message says why and what to run."""


@dataclass
class LoadedChampion:
    model: ScoringModel
    bands: BandConfig
    name: str
    version: str
    run_id: str
    trained_at: str | None
    registered_at: str | None
    label: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    out = {}
    for name in HEADLINE:
        for suffix in ("", "_lo", "_hi"):
            key = f"test_{name}{suffix}"
            if key in metrics:
                out[key] = float(metrics[key])
    for key in ("label_labelled", "label_positive", "driver_rank_spearman"):
        if key in metrics:
            out[key] = float(metrics[key])
    return out


def _find_scorer(local: Path) -> Path:
    scorer = local / "artifacts" / "scorer"
    if (scorer / "model.json").is_file():
        return scorer
    found = sorted(local.rglob("model.json"))
    if not found:
        raise ModelUnavailable(
            "the champion's artifacts carry no scorer (artifacts/scorer/model.json); "
            f"retrain: {TRAIN_HINT}"
        )
    return found[0].parent


def _fetch(tracking_uri: str, name: str, dst: Path) -> dict[str, Any]:
    """Download the champion's scorer into ``dst`` and return what /model reports about it.
    Runs in a short-lived child process (see ``load_champion``). Raises ModelUnavailable."""
    if tracking_uri.startswith("sqlite:///"):
        # Check first: MLflow would silently create an empty database at a wrong path.
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise ModelUnavailable(
                f"no tracking store at {db}: no model has been trained there ({TRAIN_HINT}, "
                "or set MLFLOW_TRACKING_URI to the store that holds the champion)"
            )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError as exc:  # pragma: no cover - mlflow is a dependency
        raise ModelUnavailable(f"mlflow cannot be imported: {exc}") from exc

    try:
        mlflow.set_tracking_uri(tracking_uri)
        from models.registry import registry_uri

        mlflow.set_registry_uri(registry_uri(tracking_uri))
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri(tracking_uri))
        try:
            mv = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException as exc:
            raise ModelUnavailable(
                f"registered model {name!r} has no '{CHAMPION}' version in the tracking store "
                f"{tracking_uri}: {TRAIN_HINT} (or promote one with `python -m pipelines.promote`)"
            ) from exc
        run_metrics: dict[str, float] = {}
        trained_at = None
        if mv.run_id:
            run = client.get_run(mv.run_id)
            run_metrics = dict(run.data.metrics)
            trained_at = _iso(run.info.end_time or run.info.start_time)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}@{CHAMPION}", dst_path=str(dst)
            )
        )
        scorer = _find_scorer(local)
    except ModelUnavailable:
        raise
    except Exception as exc:  # a corrupt or unreachable store raises many error types
        raise ModelUnavailable(
            f"the tracking store {tracking_uri} cannot be read ({type(exc).__name__}): "
            f"check MLFLOW_TRACKING_URI, or {TRAIN_HINT}"
        ) from exc
    return {
        "scorer": str(scorer),
        "version": str(mv.version),
        "run_id": str(mv.run_id or ""),
        "trained_at": trained_at,
        "registered_at": _iso(mv.creation_timestamp),
        "metrics": _headline(run_metrics),
        "tags": {
            k: v for k, v in (mv.tags or {}).items() if k in ("promotion_reason", "promoted_at")
        },
    }


def load_champion(
    tracking_uri: str, name: str = "alliance-risk", prefetched: Path | None = None
) -> LoadedChampion:
    """The champion of ``name`` in the store at ``tracking_uri``. Raises ModelUnavailable.

    The registry is read by a child process (``python -m serving.loader``), so MLflow (about
    100 MB and 2-3 s of imports) is never loaded into a serving worker; the worker only reads
    the downloaded scorer files, whose checksums ``ScoringModel.load`` verifies. ``prefetched``:
    a folder where that child already ran (serving.prefetch starts it early to cut cold start).
    """
    if prefetched is not None:
        return _from_answer(_read_answer(prefetched), name)
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
        return _from_answer(answer, name)


def fetch_command(tracking_uri: str, name: str, dst: Path) -> list[str]:
    return [sys.executable, "-m", "serving.loader", tracking_uri, name, str(dst)]


ANSWER = "answer.json"
READ_TIMEOUT_S = 240  # a registry read that takes longer is reported as unavailable


def _read_answer(d: Path) -> dict[str, Any]:
    try:
        return json.loads((d / ANSWER).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _from_answer(answer: dict[str, Any], name: str) -> LoadedChampion:
    from features.settings import BandConfig
    from models.scorer import ScoringModel

    if "scorer" not in answer:
        raise ModelUnavailable(answer.get("error") or "the registry reader gave no answer")
    try:
        model = ScoringModel.load(answer["scorer"], lean=True)
    except ValueError as exc:
        raise ModelUnavailable(f"the champion's scorer cannot be loaded: {exc}") from exc
    bands = BandConfig(**model.reference.get("bands", {}))
    return LoadedChampion(
        model=model,
        bands=bands,
        name=name,
        version=answer["version"],
        run_id=answer["run_id"],
        trained_at=answer["trained_at"],
        registered_at=answer["registered_at"],
        label=dict(model.reference.get("label", {})),
        metrics=answer["metrics"],
        tags=answer["tags"],
    )


def main(argv: list[str] | None = None) -> int:
    """Child-process entry: fetch into DIR and write DIR/answer.json (the answer or the error),
    atomically, so a reader polling for the file never sees half of it."""
    uri, name, dst = (argv or sys.argv[1:])[:3]
    d = Path(dst)
    try:
        answer, code = _fetch(uri, name, d), 0
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
