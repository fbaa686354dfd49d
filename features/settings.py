"""All configuration in one typed place.

Why here: every stage (simulate, validate, train, serve) reads the same settings, and features/ is
the bottom of the one-way data flow, so nothing has to reach up to find its configuration.
Values come from defaults below, then an optional TOML file (``--config FILE``), then environment
variables ``ALLIANCE_RISK_<SECTION>__<KEY>`` (and ``MLFLOW_TRACKING_URI`` for the tracking store).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class LabelConfig(BaseModel):
    """The label definition; recorded with every model (data contract, "The label")."""

    rater: Literal["client", "counsellor", "either"] = "client"
    # WAI-S item mean (1-7) below which the early alliance counts as low. No published cut-off
    # exists (domain brief); 5.0 puts roughly the lowest quarter of synthetic clients below it.
    threshold: float = Field(5.0, ge=1.0, le=7.0)
    min_valid_weeks: int = Field(1, ge=1, le=3)


class ValidationConfig(BaseModel):
    min_labelled: int = Field(
        100, ge=1, description="fewest labelled clients a training set may have"
    )
    min_class_count: int = Field(10, ge=1, description="fewest clients in the smaller class")
    # Rows failing a row-level rule may be dropped (and reported) up to this fraction; 0 = refuse.
    max_drop_fraction: float = Field(0.0, ge=0.0, le=0.2)


class BandConfig(BaseModel):
    """Risk bands shown to intake workers: low < moderate_from <= moderate < high_from <= high."""

    moderate_from: float = Field(0.20, gt=0.0, lt=1.0)
    high_from: float = Field(0.40, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> BandConfig:
        if not self.moderate_from < self.high_from:
            raise ValueError("bands.moderate_from must be below bands.high_from")
        return self

    def band(self, p: float) -> str:
        return "high" if p >= self.high_from else "moderate" if p >= self.moderate_from else "low"


class TrainConfig(BaseModel):
    seed: int = 7
    group_by: Literal["counsellor", "service"] = "counsellor"
    n_splits: int = Field(5, ge=2, le=10)
    # Repeats of the grouped K-fold; None = chosen from n (models.training.auto_repeats: 5 at
    # n = 190, 2 at 400, 1 from 700), because fold luck moves small-n estimates most.
    n_repeats: int | None = Field(None, ge=1, le=20)
    # From this many labelled admissions on, a held-out split replaces the cross-validation: its
    # 20% (4,000+ clients) already gives AUROC to about +-0.01, and CV would cost K refits.
    holdout_from: int = Field(20_000, ge=100)
    test_fraction: float = Field(0.2, gt=0.05, lt=0.5)
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    n_bootstrap: int = Field(200, ge=20, le=5000)
    tune_iterations: int = Field(6, ge=1, le=50)
    # Model families compared by cross-validation; one entry forces that family.
    candidates: tuple[Literal["logistic", "lightgbm"], ...] = Field(
        ("logistic", "lightgbm"), min_length=1
    )
    # Promotion gate (models.registry.gate), read against 95% CIs: refused when the AUROC CI
    # includes 0.5 or lies wholly below min_auroc, when the calibration-slope CI lies wholly outside
    # slope_range, or when the paired log-loss difference to the champion has its whole CI above
    # log_loss_margin.
    min_auroc: float = Field(0.60, ge=0.5, le=1.0)
    slope_range: tuple[float, float] = (0.7, 1.3)
    log_loss_margin: float = Field(0.005, ge=0.0)
    registered_model: str = "alliance-risk"
    experiment: str = "alliance-risk"


class ServingConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = 3000
    max_batch: int = Field(1000, ge=1, le=100_000)
    # Bodies above this are refused with 413 before they are parsed (a full batch of 1,000
    # records with every item code is about 3 MB).
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # SHA-256 hex digests of accepted API keys; ALLIANCE_RISK_SERVING__API_KEY_HASHES='["..."]'.
    api_key_hashes: list[str] = []
    # A plain key may be given for local use (make run); it is hashed at start and never logged.
    api_key: str | None = None
    audit_db: Path = ROOT / "mlruns" / "audit.sqlite"
    # Key of the HMAC that replaces admission_id in the audit store. Unset: a random key is made
    # once and kept beside the audit file (<audit_db>.key, mode 0600).
    audit_hash_key: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALLIANCE_RISK_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = ROOT / "data" / "synthetic"
    tracking_uri: str = Field(
        default_factory=lambda: (
            os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}"
        )
    )
    label: LabelConfig = LabelConfig()
    validation: ValidationConfig = ValidationConfig()
    bands: BandConfig = BandConfig()
    train: TrainConfig = TrainConfig()
    serving: ServingConfig = ServingConfig()


def load_settings(config_file: str | Path | None = None, **overrides) -> Settings:
    """Defaults < TOML file < environment < explicit overrides (CLI flags)."""
    data: dict = {}
    if config_file:
        path = Path(config_file)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    settings = Settings(**data)
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition("__")
        if key:
            sub = getattr(settings, section).model_copy(update={key: value})
            settings = settings.model_copy(
                update={section: type(sub).model_validate(sub.model_dump())}
            )
        else:
            settings = settings.model_copy(update={section: value})
    return settings
