"""Monitoring history: every ``pipelines.monitor`` run logged to MLflow, so trends show in its UI.

Experiment ``alliance-risk-monitoring`` in the same tracking store as the model. One run per
monitor call: parameters (model version, batches compared, thresholds), metrics (score shift, PSI
per feature, performance on outcomes and fairness gaps when outcomes exist, alarm counts by kind),
tags (status, the alarms' text) and the report (HTML and JSON) as artifacts. Nothing about a
client is logged: the report holds aggregates only.

Why not fail the monitor when MLflow cannot be reached: the report and exit code are the check
itself; the history is a convenience. The failure is said in the output instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXPERIMENT = "alliance-risk-monitoring"
KINDS = ("calibration", "discrimination")


def run_metrics(result) -> dict[str, float]:
    """Numeric figures of a MonitorResult, MLflow-safe names, finite values only."""
    import math

    out: dict[str, float] = {}
    for k, v in (result.scores or {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[f"scores_{k}"] = v
        elif isinstance(v, dict):
            for b, x in v.items():
                if isinstance(x, int | float):
                    out[f"scores_{k}_{b}"] = x
    for f in result.features:
        if f.get("psi") is not None:
            out[f"psi_{f['feature']}"] = f["psi"]
    out["drifting_features"] = len(result.drifting)
    out["alarms"] = len(result.alarms)
    for kind in KINDS:
        out[f"alarms_{kind}"] = sum(a.startswith(kind) for a in result.alarms)
    if result.outcomes is not None:
        out.update(result.outcomes.metrics())
    if result.validation:
        out["contract_errors"] = result.validation.get("errors", 0)
        out["contract_blocking_errors"] = result.validation.get("blocking_errors", 0)
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def log_monitor_run(tracking_uri: str, result, html_path: Path, json_path: Path) -> str:
    """Log one monitor run; returns a line for the console (what was logged, or why not)."""
    try:
        import mlflow

        from models.lifecycle.store import ensure_experiment, get_client

        get_client(tracking_uri)  # sets tracking and registry URIs
        ensure_experiment(tracking_uri, EXPERIMENT)  # artifacts beside a SQLite store, not cwd
        params: dict[str, Any] = {
            "model_version": result.model_version,
            "reference": result.reference,
            "current": result.current,
            "outcomes": "yes" if result.outcomes is not None else "no",
            **{f"threshold_{k}": v for k, v in result.config.model_dump().items()},
        }
        with mlflow.start_run(run_name=f"monitor model v{result.model_version}") as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics(run_metrics(result))
            mlflow.set_tags(
                {
                    "status": "alarm" if result.alarms else "ok",
                    "alarms": "; ".join(result.alarms)[:5000] or "none",
                    "model_version": str(result.model_version),
                }
            )
            mlflow.log_artifact(str(html_path), "report")
            mlflow.log_artifact(str(json_path), "report")
        return f"logged to MLflow: experiment {EXPERIMENT}, run {run.info.run_id}"
    except Exception as exc:  # noqa: BLE001 - the check's result stands without its history
        return f"note: not logged to MLflow ({type(exc).__name__}: {str(exc)[:200]})"
