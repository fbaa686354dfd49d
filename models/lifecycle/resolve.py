"""Finding and fetching a registered model: the one place that turns (store, name, alias or
version) into a loaded model.

Training (the champion the gate compares with), batch scoring, Spark, monitoring, serving and the
benchmarks all come here, so they agree on what "the champion" is and say the same thing when
there is none:

- ``find_version``: the registry's model version for an alias (the champion by default) or a
  version number, or None;
- ``resolve``: the same from a tracking URI, raising ``ModelNotFound`` with what to run;
- ``fetch``: download that version's scorer into a folder and describe it (version, run, headline
  metrics, promotion tags) as a JSON-able dict; ``models.lifecycle.bento_store`` copies both into BentoML's
  model store, outside the serving processes, so that MLflow is never imported into a worker;
- ``from_answer``: that dict -> ``LoadedModel`` (numpy only: no MLflow, pandas or scikit-learn);
  the service builds its model with it from BentoML's model store;
- ``load``: ``fetch`` + ``from_answer`` in this process.

MLflow is imported inside the functions that need it, never at import time, so the served path can
use ``LoadedModel`` and ``from_answer`` without loading it. The registered model's name comes from
settings (``train.registered_model``); ``CHAMPION`` is the alias the promotion gate moves.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import artifact as A

if TYPE_CHECKING:  # imported where used: the served path loads neither MLflow nor pandas
    from features.settings import BandConfig
    from models.scoring.scorer import ScoringModel

CHAMPION = "champion"  # the alias the promotion gate moves and every consumer follows
CHALLENGER = "challenger"  # a version the gate refused, with the reason in its tags
TRAIN_HINT = "train one with `make train` or `python -m pipelines.train --data DIR`"


class ModelNotFound(RuntimeError):
    """No usable model (no store, no such alias or version, a corrupt store or artifact); the
    message says why and what to run."""


@dataclass
class LoadedModel:
    """A registered model version loaded for scoring, with what /model and the outputs report."""

    model: ScoringModel
    bands: BandConfig
    name: str
    version: str
    uri: str = ""  # models:/name/version, what mlflow.pyfunc.load_model / spark_udf take
    run_id: str = ""
    trained_at: str | None = None
    registered_at: str | None = None
    label: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def default_name() -> str:
    """The registered model's name from settings (``train.registered_model``)."""
    from features.settings import load_settings

    return load_settings().train.registered_model


def model_uri(name: str, version: str | int | None = None, alias: str = CHAMPION) -> str:
    """``models:/name/version`` for a version, else ``models:/name@alias``."""
    return f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias}"


def _what(version: str | int | None, alias: str) -> str:
    return f"version {version}" if version is not None else f"'{alias}' version"


def find_version(client, name: str, version: str | int | None = None, alias: str = CHAMPION):
    """The registry's ModelVersion for ``version`` (when given) or ``alias``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _check_store(tracking_uri: str) -> None:
    """A SQLite store that does not exist is reported, not created: MLflow would silently create
    an empty database at a wrong path."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise ModelNotFound(
                f"no tracking store at {db} (the file does not exist): no model has been trained "
                f"there ({TRAIN_HINT}, or set MLFLOW_TRACKING_URI to the store that holds the "
                "champion)"
            )


def _unreadable(tracking_uri: str, exc: Exception) -> ModelNotFound:
    return ModelNotFound(
        f"the tracking store {tracking_uri} cannot be read ({type(exc).__name__}): "
        f"check MLFLOW_TRACKING_URI, or {TRAIN_HINT}"
    )


def resolve(
    tracking_uri: str,
    name: str | None = None,
    version: str | int | None = None,
    alias: str = CHAMPION,
):
    """The registry's ModelVersion for ``version`` or ``alias`` in the store at ``tracking_uri``.
    Raises ModelNotFound saying what to run."""
    from models.lifecycle.store import get_client

    name = name or default_name()
    _check_store(tracking_uri)
    try:
        mv = find_version(get_client(tracking_uri), name, version, alias)
    except Exception as exc:  # a corrupt or unreachable store raises many error types
        raise _unreadable(tracking_uri, exc) from exc
    if mv is None:
        hint = (
            "`python -m pipelines.promote --list` shows the versions"
            if version is not None
            else f"{TRAIN_HINT}, or promote one with `python -m pipelines.promote`"
        )
        raise ModelNotFound(
            f"registered model {name!r} has no {_what(version, alias)} in the tracking store "
            f"{tracking_uri}: {hint}"
        )
    return mv


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    out = {}
    for name in A.HEADLINE:
        for bound in A.CI_BOUNDS:
            key = A.test_metric(name, bound)
            if key in metrics:
                out[key] = float(metrics[key])
    for key in (*A.LABEL_COUNTS, A.DRIVER_RANK_SPEARMAN):
        if key in metrics:
            out[key] = float(metrics[key])
    return out


def find_scorer(local: Path) -> Path:
    scorer = local / "artifacts" / A.SCORER
    if (scorer / A.SCORER_FILE).is_file():
        return scorer
    found = sorted(local.rglob(A.SCORER_FILE))
    if not found:
        raise ModelNotFound(
            "the model's artifacts carry no scorer (artifacts/scorer/model.json); "
            f"retrain: {TRAIN_HINT}"
        )
    return found[0].parent


def fetch(
    tracking_uri: str,
    name: str,
    dst: Path,
    version: str | int | None = None,
    alias: str = CHAMPION,
) -> dict[str, Any]:
    """Download the scorer of ``version`` (or of ``alias``) into ``dst`` and return what is known
    about it, JSON-able (``from_answer`` turns it into a LoadedModel). Raises ModelNotFound."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mv = resolve(tracking_uri, name, version, alias)
    try:
        import mlflow

        from models.lifecycle.store import get_client

        client = get_client(tracking_uri)
        run_metrics: dict[str, float] = {}
        trained_at = None
        if mv.run_id:
            run = client.get_run(mv.run_id)
            run_metrics = dict(run.data.metrics)
            trained_at = _iso(run.info.end_time or run.info.start_time)
        uri = model_uri(name, mv.version)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
        scorer = find_scorer(local)
    except ModelNotFound:
        raise
    except Exception as exc:  # a corrupt or unreachable store raises many error types
        raise _unreadable(tracking_uri, exc) from exc
    return {
        "scorer": str(scorer),
        "version": str(mv.version),
        "uri": uri,
        "run_id": str(mv.run_id or ""),
        "trained_at": trained_at,
        "registered_at": _iso(mv.creation_timestamp),
        "metrics": _headline(run_metrics),
        "tags": {
            k: v for k, v in (mv.tags or {}).items() if k in ("promotion_reason", "promoted_at")
        },
    }


def from_answer(answer: dict[str, Any], name: str, lean: bool = False) -> LoadedModel:
    """``fetch``'s answer -> LoadedModel, reading the scorer files (their checksums verified).
    ``lean``: LightGBM without its pandas / scikit-learn integrations (the served path)."""
    from features.settings import BandConfig
    from models.scoring.scorer import ScoringModel

    if "scorer" not in answer:
        raise ModelNotFound(answer.get("error") or "the registry reader gave no answer")
    try:
        model = ScoringModel.load(answer["scorer"], lean=lean)
    except ValueError as exc:
        raise ModelNotFound(f"the model's scorer cannot be loaded: {exc}") from exc
    return LoadedModel(
        model=model,
        bands=BandConfig(**model.reference.get(A.BANDS_KEY, {})),
        name=name,
        version=answer["version"],
        uri=answer.get("uri") or model_uri(name, answer["version"]),
        run_id=answer["run_id"],
        trained_at=answer["trained_at"],
        registered_at=answer["registered_at"],
        label=dict(model.reference.get(A.LABEL_KEY, {})),
        metrics=answer["metrics"],
        tags=answer["tags"],
    )


def load(
    tracking_uri: str,
    name: str | None = None,
    version: str | int | None = None,
    alias: str = CHAMPION,
    lean: bool = False,
) -> LoadedModel:
    """The model ``version`` (or the one holding ``alias``, the champion by default) of ``name``
    (settings' ``train.registered_model`` by default), loaded in this process. Raises
    ModelNotFound."""
    name = name or default_name()
    with tempfile.TemporaryDirectory(prefix="alliance-risk-model-") as tmp:
        return from_answer(fetch(tracking_uri, name, Path(tmp), version, alias), name, lean)


def version_of(tracking_uri: str, name: str | None = None, alias: str = CHAMPION) -> str | None:
    """The version holding ``alias`` (the champion by default), or None when there is none."""
    try:
        return str(resolve(tracking_uri, name, alias=alias).version)
    except ModelNotFound:
        return None
