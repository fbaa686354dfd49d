"""All configuration in one typed place.

Why here: every stage (simulate, validate, train, score, monitor, serve) reads the same settings,
and features/ is the bottom of the one-way data flow, so nothing has to reach up to find its
configuration.

Precedence, lowest first, built with pydantic-settings' own sources (``settings_customise_sources``)
rather than by merging dicts by hand:

1. the defaults below;
2. a TOML file given with ``--config FILE`` (or named by ``ALLIANCE_RISK_CONFIG``), read by
   pydantic-settings' ``TomlConfigSettingsSource``; sections as below: ``[label]``,
   ``[validation]``, ``[bands]``, ``[train]``, ``[monitor]``, ``[serving]``;
3. environment variables ``ALLIANCE_RISK_<SECTION>__<KEY>`` (``ALLIANCE_RISK_LABEL__THRESHOLD=4.5``),
   and MLflow's own ``MLFLOW_TRACKING_URI`` for the tracking store;
4. command-line flags (passed to ``load_settings`` as ``section__key=value`` overrides).

Unknown keys are refused (``extra="forbid"``), so a misspelt or retired option in a TOML file is an
error that names it rather than a setting silently ignored.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "ALLIANCE_RISK_"
# The TOML file when no --config is given: how `python -m pipelines.serve --config FILE` hands its
# file to the BentoML workers, which build their settings in another process.
CONFIG_ENV = ENV_PREFIX + "CONFIG"


class _Section(BaseModel):
    """A settings section: unknown keys are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class LabelConfig(_Section):
    """The label definition; recorded with every model (data contract, "The label")."""

    rater: Literal["client", "counsellor", "either"] = "client"
    # WAI-S item mean (1-7) below which the early alliance counts as low. No published cut-off
    # exists (domain brief); 5.0 puts roughly the lowest quarter of synthetic clients below it.
    threshold: float = Field(5.0, ge=1.0, le=7.0)
    min_valid_weeks: int = Field(1, ge=1, le=3)


class ValidationConfig(_Section):
    min_labelled: int = Field(
        100, ge=1, description="fewest labelled clients a training set may have"
    )
    min_class_count: int = Field(10, ge=1, description="fewest clients in the smaller class")
    # Rows failing a row-level rule may be dropped (and reported) up to this fraction; 0 = refuse.
    max_drop_fraction: float = Field(0.0, ge=0.0, le=0.2)


BAND_NAMES = ("low", "moderate", "high")  # lowest first: BandConfig.level is an index into it


class BandConfig(_Section):
    """Risk bands shown to intake workers: low < moderate_from <= moderate < high_from <= high."""

    moderate_from: float = Field(0.20, gt=0.0, lt=1.0)
    high_from: float = Field(0.40, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> BandConfig:
        if not self.moderate_from < self.high_from:
            raise ValueError("bands.moderate_from must be below bands.high_from")
        return self

    def level(self, p):
        """The band rule, written once: 0 low, 1 moderate, 2 high for a risk or an array of risks
        (a risk at a cut-off belongs to the band above it)."""
        return (p >= self.moderate_from) * 1 + (p >= self.high_from) * 1

    def band(self, p: float) -> str:
        return BAND_NAMES[self.level(p)]

    def cut_offs(self) -> dict[str, float]:
        """Each band above the lowest by name, with the risk from which it starts."""
        return dict(zip(BAND_NAMES[1:], (self.moderate_from, self.high_from), strict=True))

    def edges(self) -> list[tuple[str, float, float]]:
        """(name, lower, upper) of every band on [0, 1], lowest first (``level`` decides the
        band of a risk at a bound: the one above)."""
        lows = (0.0, self.moderate_from, self.high_from)
        return list(zip(BAND_NAMES, lows, (*lows[1:], 1.0), strict=True))

    def bands(self, risk):
        """``band`` for every risk of an array: an array of band names."""
        import numpy as np

        return np.asarray(BAND_NAMES)[self.level(np.asarray(risk, dtype=float))]


class TrainConfig(_Section):
    seed: int = 7
    group_by: Literal["counsellor", "service"] = "counsellor"
    n_splits: int = Field(5, ge=2, le=10)
    # Repeats of the grouped K-fold; None = chosen from n (models.building.estimators.auto_repeats: 5 at
    # n = 190, 2 at 400, 1 from 700), because fold luck moves small-n estimates most.
    n_repeats: int | None = Field(None, ge=1, le=20)
    # From this many labelled admissions on, a held-out split replaces the cross-validation: its
    # 20% (4,000+ clients) already gives AUROC to about +-0.01, and CV would cost K refits.
    holdout_from: int = Field(20_000, ge=100)
    test_fraction: float = Field(0.2, gt=0.05, lt=0.5)
    n_bootstrap: int = Field(200, ge=20, le=5000)
    tune_iterations: int = Field(6, ge=1, le=50)
    # Model families compared by cross-validation; one entry forces that family. "ridge" is the
    # baseline, "spline" a monotone GAM (models.building.estimators); "lightgbm" and the older "logistic"
    # can be selected but are not compared by default.
    candidates: tuple[
        Literal["updated", "ridge", "anchored", "spline", "lightgbm", "logistic"], ...
    ] = Field(("ridge", "spline"), min_length=1)
    # The published effects the "anchored" candidate shrinks towards (models/building/priors.py):
    # "literature" (models/priors/literature-v1.toml), "none", or a TOML file of the same shape.
    prior: str = "literature"
    # Below the minimum sample size of Riley et al. 2020 (models/building/sample_size.py) a new
    # model shrunk towards zero is not the default: unless train.candidates is set, the ridge is
    # replaced by the anchored candidate. False keeps the candidates whatever n is.
    steer_by_sample_size: bool = True
    # An existing model to adapt instead of fitting a new one (--update-from): a scorer or
    # exported model folder; pipelines.train resolves a models:/ URI to such a folder. Set, the
    # candidates default to "updated" (models/building/update.py: as-is, recalibration in the
    # large, logistic recalibration or revision, chosen by closed testing).
    update_from: str | None = None
    # The tracking store that holds update_from's models:/ URI when it is not this run's own (a
    # network's or another service's tracking server); None: this run's tracking_uri.
    update_tracking_uri: str | None = None
    # Promotion gate (models.lifecycle.gate.gate), read against 95% CIs: refused when the AUROC CI
    # includes 0.5 or lies wholly below min_auroc, when the calibration-slope CI lies wholly outside
    # slope_range, or when the paired log-loss difference to the champion has its whole CI above
    # log_loss_margin.
    min_auroc: float = Field(0.60, ge=0.5, le=1.0)
    slope_range: tuple[float, float] = (0.7, 1.3)
    log_loss_margin: float = Field(0.005, ge=0.0)
    registered_model: str = "alliance-risk"
    experiment: str = "alliance-risk"


class ServingConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 3000
    # BentoML worker processes. One per core: this machine has 2, and each worker scores on its
    # event loop (docs/benchmarks.md: 452-533 req/s with 2 workers at concurrency 16).
    workers: int = Field(2, ge=1, le=64)
    max_batch: int = Field(1000, ge=1, le=100_000)
    # BentoML's access log (method, path, status, latency per request; never bodies). Off by
    # default: each line goes through BentoML's arbiter process, and on this 2-core machine it
    # was about 0.8 ms of a 5.2 ms /score (bench.overhead_ratio, paired rounds: BentoML / bare
    # FastAPI 1.53x with it, 1.31x without). The audit store records every score and /metrics
    # counts requests by status; a reverse proxy's own access log is the usual place for the rest.
    access_log: bool = False
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
    # The BentoML model store tag to serve (models/lifecycle/bento_store.py); `python -m pipelines.serve`
    # sets it to the registry's champion, exported. Empty: the newest exported champion.
    model_tag: str = ""


class MonitorConfig(_Section):
    """Thresholds of ``python -m pipelines.monitor`` (monitoring/drift.py reads them)."""

    # Common reading of the Population Stability Index: < 0.1 stable, 0.1-0.2 moderate, > 0.2 shift.
    psi_threshold: float = Field(0.2, gt=0.0, description="feature / score / band-mix PSI alarm")
    score_shift_threshold: float = Field(
        0.1, gt=0.0, lt=1.0, description="alarm when |mean current risk - mean reference| exceeds"
    )
    bins: int = Field(10, ge=2, le=50, description="quantile bins of numeric predictors and risk")
    fail_on_blocking: bool = Field(
        True, description="a blocking data-contract problem in the current batch is an alarm"
    )
    min_rows: int = Field(50, ge=1, description="fewer current rows than this: a note, no PSI")


def _default_tracking_uri() -> str:
    return f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}"


class SimulateConfig(_Section):
    """``python -m pipelines.simulate`` defaults that a TOML file may set (``[simulate]``)."""

    # A structural variant of the SYNTHETIC population (simulator/worlds.py; the name is checked
    # there, since features/ sits below the simulator in the data flow).
    world: str = "default"
    # How the weekly WAI-S ratings move (simulator/weekly.py: steady, realistic, volatile).
    dynamics: str = "steady"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
        validate_by_name=True,  # tracking_uri by name in TOML and flags, by alias in the environment
    )

    data_dir: Path = ROOT / "data" / "synthetic"
    # MLflow's own variable is honoured as MLflow would; ours wins when both are set.
    tracking_uri: str = Field(
        default_factory=_default_tracking_uri,
        validation_alias=AliasChoices(ENV_PREFIX + "TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    label: LabelConfig = LabelConfig()
    validation: ValidationConfig = ValidationConfig()
    bands: BandConfig = BandConfig()
    train: TrainConfig = TrainConfig()
    monitor: MonitorConfig = MonitorConfig()
    serving: ServingConfig = ServingConfig()
    simulate: SimulateConfig = SimulateConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first: CLI flags (init), environment, TOML file; then defaults."""
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, deep_merge=True),
        )


@cache
def _with_toml(path: str) -> type[Settings]:
    """Settings reading one TOML file: the file is class configuration in pydantic-settings."""
    return type(
        "Settings",
        (Settings,),
        {"model_config": {**Settings.model_config, "toml_file": path}, "__module__": __name__},
    )


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    """``label__threshold=4.0`` -> ``{"label": {"threshold": 4.0}}``; None means "not given"."""
    out: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition("__")
        if key:
            out.setdefault(section, {})[key] = value
        else:
            out[section] = value
    return out


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Defaults < TOML file < environment < explicit overrides (CLI flags; None = not given).

    Raises FileNotFoundError for a config file that does not exist, and pydantic's
    ValidationError (a ValueError) naming the section and key for a bad or unknown value.
    """
    cls = Settings
    if config_file is None:
        config_file = os.environ.get(CONFIG_ENV) or None
    if config_file is not None:
        path = Path(config_file).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        cls = _with_toml(str(path))
    return cls(**_nest(overrides))
