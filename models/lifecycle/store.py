"""The MLflow tracking store and registry this process talks to: which URIs, the client, the
experiment. ``resolve`` (finding a model) and ``registry`` (moving aliases) both use it, so neither
imports the other's module to reach the store.
"""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient


def registry_uri(tracking_uri: str) -> str:
    """The model registry's URI as MLflow itself picks it: ``MLFLOW_REGISTRY_URI`` when set (a
    team's shared registry beside a local tracking store), else the tracking store."""
    from mlflow.environment_variables import MLFLOW_REGISTRY_URI

    return MLFLOW_REGISTRY_URI.get() or tracking_uri


def use_store(tracking_uri: str) -> str:
    """Point MLflow's fluent API (register_model, ``models:/`` URIs) at the store; returns the
    registry URI. ``mlflow.set_registry_uri`` also writes MLFLOW_REGISTRY_URI into the
    environment, so it is called with a URI only when one was configured; "" makes the registry
    follow the tracking store without leaving a stale value for child processes."""
    registry = registry_uri(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry if registry != tracking_uri else "")
    return registry


def get_client(tracking_uri: str) -> MlflowClient:
    registry = use_store(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry)


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Create the experiment with its artifacts beside a SQLite store (not under the cwd)."""
    from pathlib import Path

    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        location = None
        if tracking_uri.startswith("sqlite:///"):
            location = (
                Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "artifacts"
            ).as_uri()
        exp_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id
