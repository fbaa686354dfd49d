"""The MLflow model registry: versions, the champion alias, promotion and rollback.

Every trained model becomes a version of ``alliance-risk``. The ``champion`` alias moves only when
the gate (``models.lifecycle.gate``: figures read with their CIs) finds the version better than
chance, plausibly calibrated and not worse than the current champion on the same admissions;
otherwise the version is tagged ``challenger`` with the reason. A human can override either way with ``python -m pipelines.promote``; each move records the previous
champion so that ``--rollback`` can restore it. The alias is the last thing a training run touches,
so a crash earlier leaves the registry's champion as it was.
"""

from __future__ import annotations

import time

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from models.lifecycle.resolve import CHALLENGER, CHAMPION, find_version


def champion_version(client: MlflowClient, name: str):
    """The champion's ModelVersion, or None (``models.lifecycle.resolve.find_version``)."""
    return find_version(client, name, alias=CHAMPION)


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
