"""The champion in BentoML's model store: exported when it becomes champion, loaded by the service.

MLflow's registry stays the source of truth (the ``champion`` alias, ``models.lifecycle.registry``). Its
champion is copied into BentoML's local model store (``$BENTOML_HOME/models``, ``~/bentoml`` by
default), the way BentoML means models to reach a service: ``bentoml.models.create`` with the
scorer folder (numpy coefficients or a LightGBM booster, with the SHA-256 checksums that
``ScoringModel.load`` verifies) and what ``models.lifecycle.resolve.fetch`` reports about it (registry
version, URI, run, training and registration times, headline metrics, promotion tags) as
metadata. The service loads it with ``bentoml.models.get``: no MLflow, child process or
handshake in the serving processes.

- ``sync``: make the registry's champion the newest model of its name in the store (exports it
  when the store lacks that version; a champion restored by a rollback is exported again so that
  it is the newest). Called when a version becomes champion (``pipelines.train``,
  ``pipelines.promote``) and by ``pipelines.serve`` while BentoML starts, so a champion moved
  in the MLflow UI is picked up at the next ``pipelines.serve`` (or ``pipelines.promote``).
- ``load``: a tag (or the newest of the name) -> ``LoadedModel`` (numpy only).
- ``python -m models.lifecycle.bento_store TRACKING_URI [NAME]``: ``sync`` and print the environment a
  service needs (``ALLIANCE_RISK_SERVING__MODEL_TAG``, or ``UNAVAILABLE_ENV`` with the reason);
  the tests' harness and the benchmarks start servers with it.

Tags: ``<name>:v<registry version>-<run id prefix>``, the name from settings'
``train.registered_model`` made to follow BentoML's tag rules (lowercase letters, digits, ``-``,
``_``, ``.``). The run id keeps two tracking stores' "version 1" apart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from models import artifact as A
from models.lifecycle.resolve import (
    TRAIN_HINT,
    LoadedModel,
    ModelNotFound,
    default_name,
    from_answer,
)

SCORER = A.SCORER  # the scorer folder inside the BentoML model
TAG_ENV = "ALLIANCE_RISK_SERVING__MODEL_TAG"  # settings' serving.model_tag
# Set by whoever started the service (pipelines.serve) when the registry's champion could not be
# exported: the service then answers 503 with this reason instead of serving an older model.
UNAVAILABLE_ENV = "ALLIANCE_RISK_MODEL_UNAVAILABLE"
METADATA = ("version", "uri", "run_id", "trained_at", "registered_at", "metrics", "tags")
SYNC_HINT = "`python -m pipelines.serve` (or `python -m pipelines.promote VERSION`) exports it"


def bento_name(registered_model: str) -> str:
    """The registered model's name as a BentoML model name (its tag rules)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", registered_model.lower()).strip("-._")
    return name[:63] or "model"


def tag_for(registered_model: str, version: str | int, run_id: str = "") -> str:
    version_part = re.sub(r"[^a-z0-9._-]+", "-", f"v{version}-{run_id[:12]}".lower()).strip("-")
    return f"{bento_name(registered_model)}:{version_part}"


def store_path() -> str:
    return os.environ.get("BENTOML_HOME") or str(Path.home() / "bentoml")


def export(answer: dict[str, Any], name: str) -> str:
    """``fetch``'s answer (its scorer folder and description) -> a new model in the store; the tag."""
    import bentoml

    tag = tag_for(name, answer["version"], answer.get("run_id") or "")
    labels = {
        "registered_model": bento_name(name),
        "mlflow_version": str(answer["version"]),
        "source": "mlflow-registry",
    }
    metadata = {k: answer.get(k) for k in METADATA} | {"registered_model": name}
    metadata = json.loads(json.dumps(metadata, default=str))  # plain JSON types only
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        shutil.copytree(answer["scorer"], Path(model.path) / SCORER)
    return tag


def _get(tag: str):
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(tag)
    except NotFound:
        return None


def sync(tracking_uri: str, name: str | None = None) -> str:
    """Make the registry's champion the newest model of its name in the store; its tag.
    Reads MLflow (call it outside the serving processes). Raises ModelNotFound."""
    return _sync(tracking_uri, name)[0]


def _sync(tracking_uri: str, name: str | None = None) -> tuple[str, bool]:
    """``sync``, and whether it exported (the newest model of the store changed)."""
    import bentoml

    from models.lifecycle.resolve import fetch, resolve

    name = name or default_name()
    mv = resolve(tracking_uri, name)
    tag = tag_for(name, mv.version, str(mv.run_id or ""))
    have = _get(tag)
    if have is not None:
        if str(_get(f"{bento_name(name)}:latest").tag) == str(have.tag):
            return tag, False
        bentoml.models.delete(tag)  # a rollback: export it again, so that it is the newest
    with tempfile.TemporaryDirectory(prefix="alliance-risk-export-") as tmp:
        answer = fetch(tracking_uri, name, Path(tmp), version=mv.version)
        try:
            return export(answer, name), True
        except Exception:
            if _get(tag) is not None:  # another process exported it meanwhile
                return tag, True
            raise


def load(tag: str | None = None, name: str | None = None) -> tuple[LoadedModel, str]:
    """The model ``tag`` from the store (else the newest of ``name``), checksums verified, and
    its tag. Raises ModelNotFound saying what to run."""
    name = name or default_name()
    ref = tag or f"{bento_name(name)}:latest"
    try:
        model = _get(ref)
    except Exception as exc:  # a malformed tag or a damaged store entry
        raise ModelNotFound(
            f"the BentoML model {ref} cannot be read from {store_path()} ({type(exc).__name__})"
        ) from exc
    if model is None:
        what = f"model {ref} is not" if tag else f"no champion of {name!r} is"
        raise ModelNotFound(
            f"{what} in the BentoML model store {store_path()}: {SYNC_HINT}; or {TRAIN_HINT}"
        )
    answer = {k: model.info.metadata.get(k) for k in METADATA}
    answer["scorer"] = str(Path(model.path) / SCORER)
    answer["tags"] = answer["tags"] or {}
    answer["metrics"] = answer["metrics"] or {}
    return from_answer(answer, name, lean=True), str(model.tag)


def serve_env(tracking_uri: str, name: str | None = None) -> dict[str, str]:
    """``sync``, as the environment of a service that must serve the registry's champion: its tag,
    or the reason there is none (the service then starts but is not ready)."""
    return launch_env(tracking_uri, name)[0]


def launch_env(tracking_uri: str, name: str | None = None) -> tuple[dict[str, str], bool]:
    """``serve_env``, and whether a service started before this call on the newest model of the
    store (no tag) now serves something else than the registry's champion: True when the sync
    exported (the champion was missing or not the newest) or there is no champion to serve."""
    try:
        tag, exported = _sync(tracking_uri, name)
        return {TAG_ENV: tag}, exported
    except ModelNotFound as exc:
        return {UNAVAILABLE_ENV: str(exc)}, True
    except Exception as exc:  # the store's folder is not writable, a damaged store entry, ...
        return {
            UNAVAILABLE_ENV: f"the champion could not be exported to BentoML's model store "
            f"{store_path()} ({type(exc).__name__}: {exc})"
        }, True


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if not 1 <= len(args) <= 2:
        print("usage: python -m models.lifecycle.bento_store TRACKING_URI [NAME]", file=sys.stderr)
        return 2
    print(json.dumps(serve_env(*args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
