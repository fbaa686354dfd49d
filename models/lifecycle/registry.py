"""The MLflow model registry: versions, the champion alias, and the promotion gate.

Every trained model becomes a version of ``alliance-risk``. The ``champion`` alias moves only when
the gate (``gate``: figures read with their CIs) finds the version better than chance, plausibly
calibrated and not worse than the current champion on the same admissions; otherwise the version
is tagged ``challenger`` with the reason. A human
can override either way with ``python -m pipelines.promote``; each move records the previous
champion so that ``--rollback`` can restore it. The alias is the last thing a training run touches,
so a crash earlier leaves the registry's champion as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from features.settings import TrainConfig
from models.lifecycle.resolve import CHALLENGER, CHAMPION, find_version


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


def champion_version(client: MlflowClient, name: str):
    """The champion's ModelVersion, or None (``models.lifecycle.resolve.find_version``)."""
    return find_version(client, name, alias=CHAMPION)


Interval = tuple[float, float, float]  # (point, lo, hi): a 95% cluster-bootstrap CI


@dataclass
class GateDecision:
    promote: bool
    reason: str


@dataclass
class GateEvidence:
    """What the gate weighs, each figure with its CI, all on the same evaluation rows.

    metrics: the candidate's (point, lo, hi) for at least auroc, cal_slope and log_loss (its
    out-of-fold or held-out figures); null_log_loss: the intercept-only model (the prevalence) on the
    same rows; vs_champion: candidate minus champion log loss, paired on the same rows (None when
    there is no champion); n_compared: how many rows that comparison used."""

    metrics: dict[str, Interval]
    null_log_loss: float
    vs_champion: Interval | None = None
    n_compared: int = 0


def _ci(name: str, v: Interval, digits: int = 3) -> str:
    return f"{name} {v[0]:.{digits}f} [95% CI {v[1]:.{digits}f} to {v[2]:.{digits}f}]"


def gate(ev: GateEvidence, cfg: TrainConfig) -> GateDecision:
    """Promote only what is better than chance, plausibly calibrated and not worse than the champion.

    Read against CIs, not points, so that the verdict does not flip with the luck of a couple of
    hundred clients (issue 10: a point slope of 1.45 on 38 held-out clients refused a good model).
    In order, refuse when:
    1. the AUROC CI includes 0.5 (lo <= 0.5: not shown to beat chance) or the AUROC is NaN;
    2. the log loss is not below the intercept-only model's (point: the model adds nothing to the
       prevalence);
    3. the AUROC CI lies wholly below ``min_auroc`` (hi < min_auroc);
    4. the calibration-slope CI lies wholly outside ``slope_range`` (hi < low end or lo > high end;
       touching the range counts as inside);
    5. the paired log-loss difference to the champion has its whole CI above ``log_loss_margin``
       (lo > margin: worse beyond the margin with 95% confidence).
    Otherwise promote. A champion's predictions on admissions it was trained on are optimistic, so
    on retraining with overlapping data rule 5 leans towards keeping the champion (the safe side)."""
    m = ev.metrics
    auroc, slope, ll = m["auroc"], m["cal_slope"], m["log_loss"]
    if not np.isfinite(auroc).all() or auroc[1] <= 0.5:
        return GateDecision(False, f"{_ci('AUROC', auroc)} includes 0.5: no better than chance")
    if not ll[0] < ev.null_log_loss:
        return GateDecision(
            False,
            f"{_ci('log loss', ll, 4)} is not below the intercept-only model's "
            f"{ev.null_log_loss:.4f}: no better than the prevalence alone",
        )
    if auroc[2] < cfg.min_auroc:
        return GateDecision(
            False, f"{_ci('AUROC', auroc)} lies wholly below the floor {cfg.min_auroc:.3f}"
        )
    lo, hi = cfg.slope_range
    if not np.isfinite(slope).all():
        return GateDecision(False, f"{_ci('calibration slope', slope, 2)} could not be estimated")
    if slope[2] < lo or slope[1] > hi:
        side = "below" if slope[2] < lo else "above"
        return GateDecision(
            False,
            f"{_ci('calibration slope', slope, 2)} lies wholly {side} the acceptable [{lo}, {hi}]",
        )
    floors = f"{_ci('AUROC', auroc)}, {_ci('calibration slope', slope, 2)}"
    if ev.vs_champion is None:
        return GateDecision(True, f"no champion yet; {floors}")
    d = ev.vs_champion
    diff = _ci("log loss difference (candidate - champion)", d, 4)
    where = f"paired on {ev.n_compared:,} admissions"
    if d[1] > cfg.log_loss_margin:
        return GateDecision(
            False,
            f"worse than the champion: {diff} {where}, whole CI above the margin {cfg.log_loss_margin}",
        )
    return GateDecision(
        True,
        f"not worse than the champion: {diff} {where} (margin {cfg.log_loss_margin}); {floors}",
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
