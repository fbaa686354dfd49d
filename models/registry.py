"""The MLflow model registry: versions, the champion alias, and the promotion gate.

Every trained model becomes a version of ``alliance-risk``. The ``champion`` alias moves only when
a version clears the configured floors and is not worse than the current champion on the same
held-out data beyond noise; otherwise the version is tagged ``challenger`` with the reason. A human
can override either way with ``python -m pipelines.promote``; each move records the previous
champion so that ``--rollback`` can restore it. The alias is the last thing a training run touches,
so a crash earlier leaves the registry's champion as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from features.settings import TrainConfig

CHAMPION = "champion"
CHALLENGER = "challenger"


def registry_uri(tracking_uri: str) -> str:
    """MLflow's own MLFLOW_REGISTRY_URI when set (a team's registry apart from its tracking
    server), else the tracking store, which holds the registry by default."""
    import os

    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri


def get_client(tracking_uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri(tracking_uri))
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri(tracking_uri))


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


def champion_version(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


@dataclass
class GateDecision:
    promote: bool
    reason: str


def gate(
    metrics: dict[str, float], cfg: TrainConfig, champion_log_loss: float | None
) -> GateDecision:
    """Floors first, then the comparison with the sitting champion on the same test rows."""
    auroc, slope, ll = metrics["auroc"], metrics["cal_slope"], metrics["log_loss"]
    lo, hi = cfg.slope_range
    if auroc < cfg.min_auroc:
        return GateDecision(False, f"AUROC {auroc:.3f} is below the floor {cfg.min_auroc:.3f}")
    if not lo <= slope <= hi:
        return GateDecision(False, f"calibration slope {slope:.2f} is outside [{lo}, {hi}]")
    if champion_log_loss is None:
        return GateDecision(True, "no champion yet and the floors are met")
    if ll > champion_log_loss + cfg.log_loss_margin:
        return GateDecision(
            False,
            f"test log loss {ll:.4f} is worse than the champion's {champion_log_loss:.4f} beyond the margin {cfg.log_loss_margin}",
        )
    return GateDecision(
        True,
        f"test log loss {ll:.4f} vs champion {champion_log_loss:.4f} (margin {cfg.log_loss_margin}); floors met",
    )


def set_champion(client: MlflowClient, name: str, version: str, reason: str) -> None:
    """Move the alias, remembering who held it for a rollback."""
    previous = champion_version(client, name)
    if previous is not None and str(previous.version) == str(version):
        return
    client.set_model_version_tag(
        name, version, "previous_champion", str(previous.version) if previous else ""
    )
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    client.set_model_version_tag(
        name, version, "promoted_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    client.set_registered_model_alias(name, CHAMPION, version)
    try:
        if client.get_model_version_by_alias(name, CHALLENGER).version == str(version):
            client.delete_registered_model_alias(name, CHALLENGER)
    except MlflowException:
        pass


def set_challenger(client: MlflowClient, name: str, version: str, reason: str) -> None:
    client.set_model_version_tag(name, version, "challenger_reason", reason)
    client.set_registered_model_alias(name, CHALLENGER, version)


def rollback(client: MlflowClient, name: str) -> str:
    """Give the champion alias back to the version that held it before the current one."""
    current = champion_version(client, name)
    if current is None:
        raise LookupError(f"{name} has no champion to roll back")
    previous = (current.tags or {}).get("previous_champion", "")
    if not previous:
        raise LookupError(
            f"{name} version {current.version} was the first champion; there is nothing to roll back to"
        )
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, previous, "restored_by_rollback_from", str(current.version))
    return previous
