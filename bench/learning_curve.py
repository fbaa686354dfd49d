"""Learning curves across SYNTHETIC worlds (issue 10, item 6): what a service of a given size gets.

    .venv/bin/python -m bench.learning_curve                      # the full grid (CPU-heavy)
    .venv/bin/python -m bench.learning_curve --quick              # smoke run, a few minutes
    .venv/bin/python -m bench.learning_curve --worlds default,hinges --sizes 190,4000 --seeds 1,2,3
    .venv/bin/python -m bench.learning_curve --issue17 --train-args "--prior literature"
    .venv/bin/python -m bench.learning_curve --issue17 --adopt-from-n 4000   # adopt a network's model
    .venv/bin/python -m bench.learning_curve --summarise runs.csv

A "world" here is a cohort name of simulator/worlds.py ``cohort_spec``: a world (``hinges``,
``prior_reversed``), a design (``few_counsellors``: 4 services of 5-9 counsellors, default world)
or both (``few_counsellors+prior_halved``). Training and test cohorts share world and design.

For every world, training size n and seed, a cohort of n admissions is generated
(`simulator.generator`, world and seed given) and trained on exactly as a user would: `python -m
pipelines.train --data DIR` in a subprocess, against a fresh SQLite tracking store (the CLI is the
stable interface; the candidates and the gate behind it may change; ``--train-args`` adds flags to
it). If the gate made a champion, it is loaded with ``mlflow.pyfunc.load_model("models:/<registered_model>@champion")`` and scored on
a large independent test cohort of the same world (another seed: new clients, counsellors and
services). Beside it, on the same training rows:

- the tuned ridge baseline of the issue: median imputation and scaling of the numeric contract
  fields, one-hot of the coded ones, ``LogisticRegressionCV(scoring="neg_log_loss")``;
- the oracle: the test cohort's true probabilities, ``p_low_alliance_client_no_ids`` (the truth
  integrated over counsellor and service effects, i.e. the best any model can do for clients of
  counsellors and services it has never seen, which is what the test cohort holds).

Against the oracle, per run (issue 17), for the champion (or, when the gate refused, the version
the run registered; ``scored`` says which):
- band agreement: share of test clients whose band (the model's own ``band`` output) is the band
  of their oracle risk, both by the trained model's band settings (features/settings.py
  ``BandConfig``, stored with the model);
- truly-high recall: share of clients with oracle risk >= 40% whom the model puts in the high band;
- mean absolute error of the risk against the oracle risk, in percentage points;
- when the pyfunc's output has ``risk_low`` and ``risk_high`` (a 95% uncertainty interval per
  client): the share of clients whose oracle risk lies inside it, and its median width in points;
  otherwise "n/a".

Adopting a network's model (``--adopt-from-n N [--adopt-world COHORT]``; issue 17, item 3): before
the grid, per service world, a "network" model is trained with the same CLI on an independent
SYNTHETIC cohort of N admissions, one network per training seed s (cohort seed ``NETWORK_SEED`` + s,
disjoint from the training seeds and the test seed, so the seeds also sample the network's own
model), each in its own tracking store under ``<workdir>/networks``, of the service's world in the
generator's standard design (6 services x 12 counsellors; so ``few_counsellors`` adopts a
``default`` network) or of the cohort COHORT for every world (a network of another world, e.g.
``default`` for a ``prior_reversed`` service). Its champion (or, if the gate refused, the version
it registered) is exported to a folder with ``mlflow.artifacts.download_artifacts`` and every
run's training passes ``--update-from <that folder>`` (a ``models:/`` URI would be resolved on the
run's own tracking store, not the network's). The method closed testing chose (as-is,
recalibration in the large, logistic recalibration, revision) is read from the scored model
(``params["update_method"]``; "new <kind>" when ``--train-args "--candidates anchored spline"``
put fresh candidates beside the update and one of them won), logged per run with the closed
test's likelihood-ratio tests, kept in the CSV (``update_method``, ``update_tests``,
``adopted_from``) and counted per (world, n) in issue 17's summary ("methods chosen"). The
network's model as it is, unchanged, is scored on each service world's test cohort too (printed
first; ``runs_networks.csv`` beside the runs' CSV). Everything else is as without it. Figures:
docs/benchmarks.md, "Adopting a network's model at n = 190 and 500".

Printed per (world, n): champions registered (of seeds), mean AUROC, Brier and calibration slope of
the champion, the baseline and the oracle, and issue 10's goals as PASS/FAIL:
- registered: a champion for every seed wherever the oracle's AUROC is clearly above 0.5 (>= 0.55);
- AUROC: the champion's mean AUROC at most 0.003 below the baseline's (same seeds);
- Brier: the champion's mean Brier at most 0.5% above the baseline's (same seeds);
- beats: in non-linear worlds (simulator/worlds.py) at n >= 4,000, AUROC above and Brier below the
  baseline's.
Then, per (world, n), issue 17's figures (means over the seeds' scored models) and its "Done
when" goals as PASS/FAIL (goals that do not apply are not printed):
- band agreement >= 0.82, truly-high recall >= 0.70, mean error <= 5 points (means over seeds);
- AUROC >= the baseline's + 0.01 (means over the same seeds);
- coverage of the 95% interval >= 0.90 (mean over seeds; n/a without intervals);
- wrong-prior worlds (simulator/worlds.py ``wrong_prior``): every run's AUROC at most 0.005 below
  its baseline's;
and per world, over its runs at n <= 500: calibration slope within 0.8-1.25 in at least 5 of 6
runs (a share >= 5/6). Metrics: models/building/metrics.py ``point_metrics`` against the realised labels of
the test cohort's labelled clients (features/labels.py, client rater, threshold 5.0); the
issue-17 figures against the oracle on the same clients. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from harness.commands import FAST_CONFIG, Store, run_pipeline  # noqa: E402  (one harness)

SIZES = (190, 500, 1100, 4000)
WORLDS = ("default", "hinges", "nonlinear")
SEEDS = (1, 2, 3)
TEST_N = 20_000
TEST_SEED = 900_001  # far from any training seed
ORACLE_CLEAR = 0.55  # "clearly above 0.5"
AUROC_TOL = 0.003
BRIER_TOL = 0.005  # relative
BEAT_N = 4000
ORACLE = "p_low_alliance_client_no_ids"
# Issue 17's "Done when" goals (sizes 190 and 500).
TRULY_HIGH = 0.40  # oracle risk of a truly high-risk client
GOAL_BAND = 0.82
GOAL_RECALL = 0.70
GOAL_MAE_PTS = 5.0
GOAL_SLOPE = (0.8, 1.25)
GOAL_SLOPE_SHARE = 5 / 6  # "in at least 5 of 6 runs per world"
GOAL_SLOPE_MAX_N = 500  # the sizes the goals name
GOAL_AUROC_GAIN = 0.01
GOAL_COVERAGE = 0.90
GOAL_PRIOR_LOSS = 0.005  # wrong-prior worlds: never more than this AUROC below the baseline
NETWORK_SEED = 800_000  # --adopt-from-n: seed s's network cohort is NETWORK_SEED + s
UPDATE_SHORT = {  # models/building/update.py's method names, short for the summary
    "as-is": "as-is",
    "recalibration in the large": "ritl",
    "logistic recalibration": "logistic",
    "revision": "revision",
}
ISSUE17 = {
    "worlds": "default,few_counsellors,hinges,prior_absent,prior_halved,prior_reversed",
    "sizes": (190, 500),
    "seeds": (1, 2, 3),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Run:
    world: str
    n: int
    seed: int
    returncode: int
    train_s: float
    champion: bool
    outcome: str
    labelled: int
    model_auroc: float | None
    model_brier: float | None
    model_slope: float | None
    ridge_auroc: float
    ridge_brier: float
    ridge_slope: float
    oracle_auroc: float
    oracle_brier: float
    oracle_slope: float
    test_labelled: int
    # The version this run registered, champion or not (the issue's "trained model" column).
    trained_auroc: float | None = None
    trained_brier: float | None = None
    # Issue 17, against the oracle, for the scored version ("champion", "refused" or "none").
    scored: str = "none"
    band_agree: float | None = None
    high_recall: float | None = None
    mae_pts: float | None = None
    coverage: float | None = None  # None: the model gives no risk_low / risk_high
    width_pts: float | None = None
    ridge_band_agree: float | None = None
    ridge_high_recall: float | None = None
    ridge_mae_pts: float | None = None
    truly_high: int | None = None  # test clients with oracle risk >= TRULY_HIGH
    train_args: str = ""
    # --adopt-from-n: the network model this run updated and the method closed testing chose
    adopted_from: str = ""  # the network's cohort, e.g. "default n=4000 seed 700001"
    update_method: str = ""  # "as-is", "recalibration in the large", ... ("" without it)
    update_tests: str = (
        ""  # the closed test's likelihood-ratio tests, e.g. "revision vs as-is: ..."
    )


# ---- data ---------------------------------------------------------------------------------------
def _generate(name: str, n: int, seed: int, ground_truth: bool = True):
    """A cohort of a benchmark world name (simulator/worlds.py ``cohort_spec``)."""
    from simulator.generator import generate
    from simulator.worlds import cohort_spec

    world, design = cohort_spec(name)
    return generate(
        n, seed=seed, world=world.name, ground_truth=ground_truth, **design.generate_args()
    )


def _test_cohort(world: str, test_n: int, workdir: Path) -> Path:
    """The independent test cohort of a world (with true probabilities), cached in workdir."""
    from simulator.generator import write

    d = workdir / f"test_{world}_{test_n}_{TEST_SEED}"
    if (d / "ground_truth.csv").exists():
        return d
    t = time.perf_counter()
    write(_generate(world, test_n, TEST_SEED), d)
    log(f"test cohort {world}: {test_n} admissions in {time.perf_counter() - t:.0f} s")
    return d


def _load(data: Path):
    """(scoring-record frame, labels aligned to it) of a cohort folder, labelled clients only."""
    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import load_settings
    from validation.io import load_tables

    tables = load_tables(data)
    labels = build_labels(
        tables["alliance"], load_settings().label, tables["intake"], tables.get("episodes")
    )
    frame = typed_records(scoring_frame(tables["intake"], tables.get("counsellors")))
    frame = frame[frame["admission_id"].astype(str).isin(labels.labels.index)]
    frame = frame.reset_index(drop=True)
    y = labels.labels.reindex(frame["admission_id"].astype(str)).to_numpy().astype(int)
    return frame, y


# ---- a network's model to adopt (--adopt-from-n) --------------------------------------------------
@dataclass
class Network:
    """A "network" model trained with the CLI on its own SYNTHETIC cohort, exported to a folder
    that the cells' training runs name in ``--update-from``."""

    cohort: str
    n: int
    seed: int
    uri: str  # its own tracking store
    version: str
    scored: str  # "champion", or "refused" (the gate refused it; its version is adopted anyway)
    kind: str  # the exported scorer's kind (ridge, anchored, spline, ...)
    folder: str  # the exported MLflow model (its artifacts/scorer is what --update-from reads)
    train_s: float
    outcome: str

    def describe(self) -> str:
        return f"{self.cohort} n={self.n} seed {self.seed} ({self.kind} v{self.version})"


@dataclass
class NetworkScore:
    """The network's model as it is on a service world's test cohort, against the oracle."""

    world: str
    network: str
    seed: int  # the training seed whose runs adopt it
    auroc: float
    brier: float
    slope: float
    band_agree: float
    high_recall: float | None
    mae_pts: float
    coverage: float | None
    width_pts: float | None


def network_cohort(world: str, adopt_world: str | None) -> str:
    """The network's cohort name for a service world: ``adopt_world`` when given, else the
    service's world in the generator's standard design (a network of 6 services x 12
    counsellors, also for a few-counsellor service)."""
    from simulator.worlds import cohort_spec

    return adopt_world or cohort_spec(world)[0].name


def _store_env(base: Path) -> tuple[str, dict[str, str]]:
    """A throw-away tracking store in ``base`` and the environment of a training run against it:
    the harness's store layout and environment (``harness.commands.Store``; training exports its
    champion to the store's own BentoML model store, not ~/bentoml)."""
    store = Store.at(base)
    return store.uri, store.env()


def train_network(cohort: str, n: int, seed: int, root: Path, config: str | None) -> Network:
    """Train the network's model with the real CLI in its own tracking store and export its
    champion (else, if the gate refused, its registered version) to a folder. Reused when
    ``root`` already holds one (network.json)."""
    import json

    import mlflow

    from features.settings import load_settings
    from models.lifecycle.resolve import find_scorer, find_version, model_uri
    from models.scoring.scorer import ScoringModel
    from simulator.generator import write

    base = root / f"{cohort}_n{n}_s{seed}"
    if (base / "network.json").is_file():
        net = Network(**json.loads((base / "network.json").read_text()))
        log(f"network {net.describe()}: reused from {base}")
        return net
    shutil.rmtree(base, ignore_errors=True)
    data = base / "data"
    t = time.perf_counter()
    write(_generate(cohort, n, seed, ground_truth=False), data)
    uri, env = _store_env(base)
    args = ["--data", str(data)] + (["--config", config] if config else [])
    log(f"network {cohort}: training on {n} SYNTHETIC admissions (seed {seed}) in {base}")
    proc = run_pipeline("train", *args, env=env, timeout=3600)
    train_s = time.perf_counter() - t
    (base / "train.log").write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"network {cohort}: training failed, see {base / 'train.log'}")
    outcome = next(
        (
            ln.split("registry:", 1)[1].strip()
            for ln in proc.stdout.splitlines()
            if "registry:" in ln
        ),
        "",
    )
    name = load_settings(config).train.registered_model
    client = mlflow.MlflowClient(uri)
    mv, scored = find_version(client, name), "champion"
    if mv is None:
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            raise SystemExit(f"network {cohort}: no model registered, see {base / 'train.log'}")
        mv, scored = max(versions, key=lambda v: int(v.version)), "refused"
    mlflow.set_tracking_uri(uri)
    folder = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri(name, mv.version), dst_path=str(base / "exported")
        )
    )
    kind = ScoringModel.load(find_scorer(folder)).kind
    shutil.rmtree(data, ignore_errors=True)
    net = Network(
        cohort, n, seed, uri, str(mv.version), scored, kind, str(folder), round(train_s, 1), outcome
    )
    (base / "network.json").write_text(json.dumps(asdict(net), indent=1))
    log(f"network {net.describe()}: {scored}, trained in {train_s:.0f} s ({outcome[:90]})")
    return net


def score_network(
    net: Network, world: str, seed: int, test_dir: str, config: str | None
) -> NetworkScore:
    """The network's exported model, unchanged, on a service world's test cohort."""
    import mlflow
    import numpy as np
    import pandas as pd

    from features.settings import BAND_NAMES
    from models.building.metrics import point_metrics

    test_frame, y_test = _load(Path(test_dir))
    gt = pd.read_csv(Path(test_dir) / "ground_truth.csv", dtype={"admission_id": "str"})
    p_oracle = gt.set_index("admission_id")[ORACLE].reindex(test_frame["admission_id"].astype(str))
    p_oracle = p_oracle.to_numpy()
    pyfunc = mlflow.pyfunc.load_model(net.folder)
    out = pyfunc.predict(test_frame)
    p = np.asarray(out["risk"], dtype=float)
    m = point_metrics(y_test, p)
    level = pd.Series(out["band"]).map({b: i for i, b in enumerate(BAND_NAMES)}).to_numpy()
    vs = versus_oracle(p, level, p_oracle, _model_bands(pyfunc, config))
    cov, width = interval_figures(out, p_oracle)
    return NetworkScore(
        world,
        net.describe(),
        seed,
        m["auroc"],
        m["brier"],
        m["cal_slope"],
        vs["band_agree"],
        vs["high_recall"],
        vs["mae_pts"],
        cov,
        width,
    )


def _update_method(pyfunc) -> tuple[str, str]:
    """The update method closed testing chose (the scorer's ``params["update_method"]``), or
    "new <kind>" when a freshly fitted candidate won instead (``--train-args "--candidates
    anchored spline"`` puts them beside the update), and the tests it ran ("revision vs as-is:
    LR 67.6 on 61 df, p = 0.263; ...")."""
    import json

    try:
        model = pyfunc.unwrap_python_model().model
        params = model.params
    except Exception:  # another pyfunc layout
        return "unknown", ""
    if not params.get("update_method"):
        return f"new {model.kind}", ""
    try:
        tests = "; ".join(
            f"{t['compared']}: LR {t['lr']:.1f} on {t['df']} df, p = {t['p']:.3g}"
            for t in json.loads(params.get("update_tests") or "[]")
        )
    except (ValueError, KeyError, TypeError):
        tests = ""
    return str(params["update_method"]), tests


def _methods(rs: list[Run]) -> str:
    """'as-is 2, ritl 1': the methods closed testing chose over runs."""
    from collections import Counter

    c = Counter(UPDATE_SHORT.get(r.update_method, r.update_method) for r in rs if r.update_method)
    return ", ".join(f"{m} {k}" for m, k in sorted(c.items(), key=lambda x: -x[1])) or "-"


# ---- the baseline ---------------------------------------------------------------------------------
def ridge_baseline(train_frame, y):
    """The issue's tuned ridge logistic regression on the contract fields (items scored first)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from features.catalog import PREDICTORS
    from features.scoring import score_intake

    codes = [f.name for f in PREDICTORS if f.kind == "code"]
    nums = [f.name for f in PREDICTORS if f.kind != "code"]

    def prep(frame):
        x = score_intake(frame).frame[codes + nums].copy()
        x[nums] = x[nums].astype("float64")
        x[codes] = x[codes].astype(object).where(x[codes].notna(), "missing")
        return x

    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
                ("cat", OneHotEncoder(handle_unknown="ignore"), codes),
            ]
        ),
        LogisticRegressionCV(
            Cs=np.logspace(-4, 2, 13),
            l1_ratios=(0.0,),  # pure L2: ridge
            scoring="neg_log_loss",
            max_iter=5000,
            use_legacy_attributes=False,
        ),
    )
    model.fit(prep(train_frame), y)
    return lambda frame: model.predict_proba(prep(frame))[:, 1]


# ---- one training run ---------------------------------------------------------------------------
def versus_oracle(risk, band_level, p_oracle, bands) -> dict[str, float | int | None]:
    """Issue 17's figures of one model against the oracle on the same clients: band agreement
    (the model's band level vs the oracle risk's, by ``bands``), recall of truly high-risk clients
    (oracle >= TRULY_HIGH) put in the high band, mean absolute error in percentage points."""
    import numpy as np

    risk, p_oracle = np.asarray(risk, dtype=float), np.asarray(p_oracle, dtype=float)
    level, truth = np.asarray(band_level), np.asarray(bands.level(p_oracle))
    high = p_oracle >= TRULY_HIGH
    return {
        "band_agree": float(np.mean(level == truth)),
        "high_recall": float(np.mean(level[high] == 2)) if high.any() else None,
        "mae_pts": float(100 * np.mean(np.abs(risk - p_oracle))),
        "truly_high": int(high.sum()),
    }


def interval_figures(out, p_oracle) -> tuple[float | None, float | None]:
    """(coverage of the oracle risk, median width in points) of the pyfunc's ``risk_low`` /
    ``risk_high`` columns; (None, None) when it has none."""
    import numpy as np

    if not {"risk_low", "risk_high"} <= set(out.columns):
        return None, None
    lo = np.asarray(out["risk_low"], dtype=float)
    hi = np.asarray(out["risk_high"], dtype=float)
    p = np.asarray(p_oracle, dtype=float)
    return float(np.mean((lo <= p) & (p <= hi))), float(100 * np.median(hi - lo))


def _model_bands(pyfunc, config: str | None):
    """The band settings the trained model scores with (stored with it), else the config's."""
    from features.settings import BandConfig, load_settings

    try:
        bands = pyfunc.unwrap_python_model().bands
        if isinstance(bands, BandConfig):
            return bands
    except Exception:  # another pyfunc layout: fall back to the settings it was trained with
        pass
    return load_settings(config).bands


def one_run(
    world: str,
    n: int,
    seed: int,
    test_dir: str,
    root: str,
    config: str | None,
    train_args: tuple[str, ...] = (),
    network: Network | None = None,
) -> Run:
    """Generate, train with the CLI, score champion, baseline and oracle on the test cohort.
    With ``network``, training passes ``--update-from`` its exported model folder."""
    import mlflow
    import numpy as np
    import pandas as pd

    from features.settings import BAND_NAMES, load_settings
    from models.building.metrics import point_metrics
    from models.lifecycle.resolve import find_version, model_uri
    from simulator.generator import write

    base = Path(root) / f"{world}_n{n}_s{seed}"
    shutil.rmtree(base, ignore_errors=True)
    data = base / "data"
    write(_generate(world, n, seed, ground_truth=False), data)
    uri, env = _store_env(base)
    args = ["--data", str(data)] + (["--config", config] if config else []) + list(train_args)
    if network is not None:
        args += ["--update-from", network.folder]
    t = time.perf_counter()
    proc = run_pipeline("train", *args, env=env, timeout=3600)
    train_s = time.perf_counter() - t
    (base / "train.log").write_text(proc.stdout + "\n" + proc.stderr)
    outcome = next(
        (
            ln.split("registry:", 1)[1].strip()
            for ln in proc.stdout.splitlines()
            if "registry:" in ln
        ),
        (proc.stdout + proc.stderr).strip().splitlines()[-1][:200] if proc.returncode else "",
    )

    train_frame, y = _load(data)
    test_frame, y_test = _load(Path(test_dir))
    gt = pd.read_csv(Path(test_dir) / "ground_truth.csv", dtype={"admission_id": "str"})
    p_oracle = gt.set_index("admission_id")[ORACLE].reindex(test_frame["admission_id"].astype(str))
    p_oracle = p_oracle.to_numpy()
    oracle = point_metrics(y_test, p_oracle)
    p_ridge = ridge_baseline(train_frame, y)(test_frame)
    ridge = point_metrics(y_test, p_ridge)

    model = trained = None
    name = load_settings(config).train.registered_model
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    champion = find_version(client, name) is not None
    pyfunc, scored = None, "none"
    if champion:
        pyfunc, scored = mlflow.pyfunc.load_model(model_uri(name)), "champion"
    elif proc.returncode == 0:
        versions = client.search_model_versions(f"name = '{name}'")
        if versions:
            latest = max(int(v.version) for v in versions)
            pyfunc, scored = mlflow.pyfunc.load_model(model_uri(name, latest)), "refused"
    vs = {}
    coverage = width = None
    update_method = update_tests = ""
    bands = load_settings(config).bands
    if pyfunc is not None:
        out = pyfunc.predict(test_frame)
        p = np.asarray(out["risk"], dtype=float)
        trained = point_metrics(y_test, p)
        model = trained if champion else None
        bands = _model_bands(pyfunc, config)
        level = pd.Series(out["band"]).map({b: i for i, b in enumerate(BAND_NAMES)}).to_numpy()
        vs = versus_oracle(p, level, p_oracle, bands)
        coverage, width = interval_figures(out, p_oracle)
        if network is not None:
            update_method, update_tests = _update_method(pyfunc)
    rv = versus_oracle(p_ridge, bands.level(np.asarray(p_ridge)), p_oracle, bands)
    shutil.rmtree(data, ignore_errors=True)  # keep the store and log, drop the copy of the data
    return Run(
        world,
        n,
        seed,
        proc.returncode,
        round(train_s, 1),
        champion,
        outcome,
        len(y),
        model["auroc"] if model else None,
        model["brier"] if model else None,
        model["cal_slope"] if model else None,
        ridge["auroc"],
        ridge["brier"],
        ridge["cal_slope"],
        oracle["auroc"],
        oracle["brier"],
        oracle["cal_slope"],
        len(y_test),
        trained["auroc"] if trained else None,
        trained["brier"] if trained else None,
        scored=scored,
        band_agree=vs.get("band_agree"),
        high_recall=vs.get("high_recall"),
        mae_pts=vs.get("mae_pts"),
        coverage=coverage,
        width_pts=width,
        ridge_band_agree=rv["band_agree"],
        ridge_high_recall=rv["high_recall"],
        ridge_mae_pts=rv["mae_pts"],
        truly_high=rv["truly_high"],
        train_args=shlex.join(train_args),
        adopted_from=network.describe() if network is not None else "",
        update_method=update_method,
        update_tests=update_tests,
    )


# ---- the summary --------------------------------------------------------------------------------
def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def summarise(runs: list[Run]) -> tuple[list[str], bool]:
    """One line per (world, n) with the goals; True if every goal that applies passes."""
    from simulator.worlds import cohort_spec

    def get(name):
        return cohort_spec(name)[0]

    lines = [
        f"{'world':<14}{'n':>6} {'champ':>6} | {'AUROC champ/ridge/oracle':^23} | "
        f"{'Brier champ/ridge/oracle':^26} | {'slope champ/ridge/oracle':^18} | goals",
    ]
    ok_all = True
    keys = sorted({(r.world, r.n) for r in runs}, key=lambda k: (k[0], k[1]))
    for world, n in keys:
        rs = [r for r in runs if r.world == world and r.n == n]
        ch = [r for r in rs if r.champion]
        o_auc = _mean([r.oracle_auroc for r in rs])
        c_auc, c_bri = _mean([r.model_auroc for r in ch]), _mean([r.model_brier for r in ch])
        r_auc, r_bri = _mean([r.ridge_auroc for r in ch]), _mean([r.ridge_brier for r in ch])
        goals = []
        if o_auc is not None and o_auc >= ORACLE_CLEAR:
            goals.append(("registered", len(ch) == len(rs)))
        if ch:
            goals.append(("AUROC", c_auc >= r_auc - AUROC_TOL))
            goals.append(("Brier", c_bri <= r_bri * (1 + BRIER_TOL)))
            if get(world).nonlinear and n >= BEAT_N:
                goals.append(("beats", c_auc > r_auc and c_bri < r_bri))
        elif get(world).nonlinear and n >= BEAT_N:
            goals.append(("beats", False))
        ok_all &= all(ok for _, ok in goals)
        lines.append(
            f"{world:<14}{n:>6} {len(ch):>3}/{len(rs):<2} | "
            f"{_f(c_auc)} / {_f(_mean([r.ridge_auroc for r in rs]))} / {_f(o_auc)} | "
            f"{_f(c_bri, 4)} / {_f(_mean([r.ridge_brier for r in rs]), 4)} / "
            f"{_f(_mean([r.oracle_brier for r in rs]), 4)} | "
            f"{_f(_mean([r.model_slope for r in ch]), 2)} / "
            f"{_f(_mean([r.ridge_slope for r in rs]), 2)} / "
            f"{_f(_mean([r.oracle_slope for r in rs]), 2)} | "
            + " ".join(f"{g} {'PASS' if ok else 'FAIL'}" for g, ok in goals)
            + (
                f" (refused models: AUROC {_f(_mean([r.trained_auroc for r in refused]))}, "
                f"Brier {_f(_mean([r.trained_brier for r in refused]), 4)})"
                if (refused := [r for r in rs if not r.champion and r.trained_auroc is not None])
                else ""
            )
        )
    return lines, ok_all


def _fmt_or_na(x, nd=3, scale=1.0):
    return "n/a" if x is None else f"{scale * x:.{nd}f}"


def _verdict(goals: list[tuple[str, bool | None]]) -> str:
    return " ".join(f"{g} {'n/a' if ok is None else 'PASS' if ok else 'FAIL'}" for g, ok in goals)


def summarise_issue17(runs: list[Run]) -> tuple[list[str], bool]:
    """Issue 17's figures and "Done when" goals: one line per (world, n), then the slope goal per
    world over its runs at n <= GOAL_SLOPE_MAX_N. True if every goal that can be judged passes
    (a goal printed n/a, such as coverage without intervals, is not counted)."""
    from simulator.worlds import cohort_spec

    lo, hi = GOAL_SLOPE
    adopted = any(r.update_method for r in runs)
    lines = [
        "Issue 17 (against the oracle; means over the seeds' scored models"
        + (
            "; each run updated a network's model, methods chosen by closed testing"
            if adopted
            else ""
        )
        + "):",
        f"{'world':<24}{'n':>6} {'scored':>6} | {'band agree':>10} | {'high recall':>11} | "
        f"{'MAE pts':>7} | {'slope in range':>14} | {'AUROC model/base':>16} | "
        f"{'coverage':>8} | {'width pts':>9} | "
        + ("methods chosen | " if adopted else "")
        + "goals",
    ]
    ok_all = True
    keys = sorted({(r.world, r.n) for r in runs})
    for world, n in keys:
        rs = [r for r in runs if r.world == world and r.n == n]
        sc = [r for r in rs if r.band_agree is not None]
        band, rec = _mean([r.band_agree for r in sc]), _mean([r.high_recall for r in sc])
        mae = _mean([r.mae_pts for r in sc])
        m_auc = _mean([r.trained_auroc for r in sc])
        b_auc = _mean([r.ridge_auroc for r in sc])
        cov = _mean([r.coverage for r in sc])
        width = _mean([r.width_pts for r in sc])
        slopes = [r.model_slope for r in rs if r.model_slope is not None]
        inside = sum(lo <= x <= hi for x in slopes)
        goals: list[tuple[str, bool | None]] = []
        if sc:
            goals += [
                (f"band>={GOAL_BAND}", band >= GOAL_BAND),
                (f"recall>={GOAL_RECALL}", rec is not None and rec >= GOAL_RECALL),
                (f"MAE<={GOAL_MAE_PTS:g}", mae <= GOAL_MAE_PTS),
                (f"AUROC>=base+{GOAL_AUROC_GAIN}", m_auc >= b_auc + GOAL_AUROC_GAIN),
                (f"coverage>={GOAL_COVERAGE}", None if cov is None else cov >= GOAL_COVERAGE),
            ]
            if cohort_spec(world)[0].wrong_prior:
                goals.append(
                    (
                        f"prior-safe(AUROC>=base-{GOAL_PRIOR_LOSS} every run)",
                        all(r.trained_auroc >= r.ridge_auroc - GOAL_PRIOR_LOSS for r in sc),
                    )
                )
        elif any(r.champion for r in rs):  # a CSV written before these figures existed
            goals.append(("figures not measured in this CSV", None))
        else:
            goals.append(("a model to score", False))
        ok_all &= all(ok for _, ok in goals if ok is not None)
        lines.append(
            f"{world:<24}{n:>6} {len(sc):>3}/{len(rs):<2} | {_fmt_or_na(band):>10} | "
            f"{_fmt_or_na(rec):>11} | {_fmt_or_na(mae, 1):>7} | "
            f"{f'{inside}/{len(slopes)}':>14} | "
            f"{f'{_f(m_auc)}/{_f(b_auc)}':>16} | {_fmt_or_na(cov):>8} | "
            f"{_fmt_or_na(width, 1):>9} | "
            + (f"{_methods(rs)} | " if adopted else "")
            + _verdict(goals)
        )
    lines.append(
        f"calibration slope within {lo}-{hi} in >= 5 of 6 runs per world (runs at n <= "
        f"{GOAL_SLOPE_MAX_N}; a run without a champion counts as outside):"
    )
    for world in sorted({r.world for r in runs}):
        rs = [r for r in runs if r.world == world and r.n <= GOAL_SLOPE_MAX_N]
        if not rs:
            continue
        inside = sum(r.model_slope is not None and lo <= r.model_slope <= hi for r in rs)
        ok = inside >= GOAL_SLOPE_SHARE * len(rs) - 1e-9
        ok_all &= ok
        lines.append(
            f"  {world:<24} {inside}/{len(rs)} runs in range: slope {'PASS' if ok else 'FAIL'}"
            + (" (fewer than 6 runs)" if len(rs) < 6 else "")
        )
    return lines, ok_all


def summarise_networks(scores: list[NetworkScore]) -> list[str]:
    """One line per service world: the network's model as it is on that world's test cohort."""
    lines = [
        "The network's model as it is (not updated), on each service world's test cohort:",
        f"{'world':<24} {'seed':>4} {'network':<44} | {'AUROC':>5} | {'slope':>5} | {'band agree':>10} | "
        f"{'high recall':>11} | {'MAE pts':>7} | {'coverage':>8} | {'width pts':>9}",
    ]
    for sc in scores:
        lines.append(
            f"{sc.world:<24} {_fmt_or_na(sc.seed, 0):>4} {sc.network:<44} | {sc.auroc:.3f} | {sc.slope:5.2f} | "
            f"{sc.band_agree:>10.3f} | {_fmt_or_na(sc.high_recall):>11} | {sc.mae_pts:>7.1f} | "
            f"{_fmt_or_na(sc.coverage):>8} | {_fmt_or_na(sc.width_pts, 1):>9}"
        )
    return lines


def _report(runs: list[Run]) -> None:
    lines, ok = summarise(runs)
    print("\n".join(lines))
    print(f"issue 10 goals: {'PASS' if ok else 'FAIL'}")
    lines17, ok17 = summarise_issue17(runs)
    print("\n".join(lines17))
    print(f"issue 17 goals: {'PASS' if ok17 else 'FAIL'} (goals printed n/a are not judged)")


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.learning_curve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--worlds",
        default=",".join(WORLDS),
        help="comma-separated cohort names: a world, a design or design+world "
        "(simulator/worlds.py; e.g. few_counsellors, prior_reversed, few_counsellors+hinges)",
    )
    p.add_argument("--sizes", type=_ints, default=SIZES, help="training sizes, comma-separated")
    p.add_argument("--seeds", type=_ints, default=SEEDS, help="training seeds, comma-separated")
    p.add_argument("--test-n", type=int, default=TEST_N, help="size of each world's test cohort")
    p.add_argument("--jobs", type=int, default=1, help="training runs in parallel")
    p.add_argument(
        "--out", type=Path, help="CSV of every run (default: runs.csv in the work folder)"
    )
    p.add_argument(
        "--train-args",
        default="",
        metavar="ARGS",
        help='extra flags for pipelines.train, one shell-quoted string (e.g. "--prior literature")',
    )
    p.add_argument(
        "--issue17",
        action="store_true",
        help=f"issue 17's grid where not given: worlds {ISSUE17['worlds']}, n 190,500, seeds 1,2,3",
    )
    p.add_argument(
        "--config", type=Path, help="TOML passed to pipelines.train (default: the user defaults)"
    )
    p.add_argument("--workdir", type=Path, help="keep stores, logs and test cohorts here")
    p.add_argument(
        "--adopt-from-n",
        type=int,
        metavar="N",
        help="first train a network's model with the CLI on an independent SYNTHETIC cohort of N "
        f"admissions per training seed s (cohort seed {NETWORK_SEED} + s; the service's world "
        "in the standard design unless --adopt-world), then every run of seed s passes "
        "--update-from that network's exported folder",
    )
    p.add_argument(
        "--adopt-world",
        metavar="COHORT",
        help="with --adopt-from-n: the network's cohort name for every service world (e.g. "
        "default for a prior_reversed service: a network of another world)",
    )
    p.add_argument(
        "--summarise", type=Path, metavar="CSV", help="print the summary of an earlier --out CSV"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: worlds default,hinges, n 190,1100, one seed, test n 3,000, the fast "
        "training settings of the tests (harness/commands.py FAST_CONFIG); given --worlds, "
        "--sizes, --seeds or --test-n are kept",
    )
    a = p.parse_args(argv)
    from simulator.worlds import cohort_spec

    if a.summarise:
        runs = _read_csv(a.summarise)
        print(f"SYNTHETIC data. Learning curves from {a.summarise}: {len(runs)} training runs")
        nets = a.summarise.with_name(a.summarise.stem + "_networks.csv")
        if nets.is_file():
            print("\n".join(summarise_networks(_read_networks(nets))))
        _report(runs)
        return 0

    if a.issue17:
        if a.worlds == ",".join(WORLDS):
            a.worlds = ISSUE17["worlds"]
        a.sizes = a.sizes if a.sizes != SIZES else ISSUE17["sizes"]
        a.seeds = a.seeds if a.seeds != SEEDS else ISSUE17["seeds"]
    train_args = tuple(shlex.split(a.train_args))
    worlds = [w.strip() for w in a.worlds.split(",") if w.strip()]
    for w in worlds:
        cohort_spec(w)  # a clear error for an unknown name
    if a.adopt_world and not a.adopt_from_n:
        p.error("--adopt-world needs --adopt-from-n")
    if a.adopt_world:
        cohort_spec(a.adopt_world)
    if a.adopt_from_n and {NETWORK_SEED + s for s in a.seeds} & {*a.seeds, TEST_SEED}:
        p.error(f"a network's cohort seed ({NETWORK_SEED} + seed) is a training or test seed")
    sizes, seeds, test_n = a.sizes, a.seeds, a.test_n
    work = a.workdir or Path(tempfile.mkdtemp(prefix="learning-curve-"))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    config = str(a.config.resolve()) if a.config else None
    out = (a.out or work / "runs.csv").resolve()
    if a.quick:
        if a.worlds == ",".join(WORLDS):
            worlds = ["default", "hinges"]
        sizes = sizes if a.sizes != SIZES else (190, 1100)
        seeds = seeds if a.seeds != SEEDS else (1,)
        test_n = test_n if a.test_n != TEST_N else 3000
        if not config:
            (work / "fast.toml").write_text(FAST_CONFIG)
            config = str(work / "fast.toml")
    log(
        f"SYNTHETIC learning curves: worlds {worlds}, n {list(sizes)}, seeds {list(seeds)}, "
        f"test n {test_n}, jobs {a.jobs}, training config {config or 'user defaults'}, extra "
        f"training flags {shlex.join(train_args) or 'none'}; work {work}; runs to {out}"
        + (
            f"; adopting a network's model trained on {a.adopt_from_n} admissions "
            f"({'cohort ' + a.adopt_world if a.adopt_world else 'the service world'}, one per "
            f"training seed s, seed {NETWORK_SEED} + s)"
            if a.adopt_from_n
            else ""
        )
    )
    tests = {w: str(_test_cohort(w, test_n, work)) for w in worlds}
    networks: dict[tuple[str, int], Network] = {}
    net_scores: list[NetworkScore] = []
    if a.adopt_from_n:
        trained: dict[tuple[str, int], Network] = {}
        for w in worlds:
            c = network_cohort(w, a.adopt_world)
            for s in seeds:
                if (c, s) not in trained:
                    trained[c, s] = train_network(
                        c, a.adopt_from_n, NETWORK_SEED + s, work / "networks", config
                    )
                networks[w, s] = trained[c, s]
                net_scores.append(score_network(trained[c, s], w, s, tests[w], config))
        _write_networks(out.with_name(out.stem + "_networks.csv"), net_scores)
    # Smallest n first, all worlds and seeds of one n together: a run cut short still gives
    # complete (world, n) cells, and its CSV can be summarised with --summarise.
    tasks = [(w, n, s) for n in sorted(sizes) for w in worlds for s in seeds]
    runs: list[Run] = []
    t0 = time.perf_counter()
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=mp.get_context("spawn")) as pool:
        futs = {
            pool.submit(
                one_run,
                w,
                n,
                s,
                tests[w],
                str(work / "runs"),
                config,
                train_args,
                networks.get((w, s)),
            ): (w, n, s)
            for w, n, s in tasks
        }
        for fut in as_completed(futs):
            r = fut.result()
            runs.append(r)
            log(
                f"{r.world} n={r.n} seed={r.seed}: train {r.train_s:.0f} s, champion "
                f"{'yes' if r.champion else 'no'} ({r.outcome[:90]}); AUROC model "
                f"{_f(r.model_auroc)} ridge {_f(r.ridge_auroc)} oracle {_f(r.oracle_auroc)}; "
                f"band {_fmt_or_na(r.band_agree)} recall {_fmt_or_na(r.high_recall)} MAE "
                f"{_fmt_or_na(r.mae_pts, 1)} pts coverage {_fmt_or_na(r.coverage)}"
                + (
                    f"; update: {r.update_method or '-'} ({r.update_tests})"
                    if r.adopted_from
                    else ""
                )
            )
            _write_csv(out, runs)
    print(
        f"SYNTHETIC data. Learning curves: {len(runs)} training runs in "
        f"{time.perf_counter() - t0:.0f} s; test cohorts of {test_n} (seed {TEST_SEED}); "
        f"training config {'fast (harness FAST_CONFIG)' if a.quick and not a.config else config or 'user defaults'}"
        f"{'; extra training flags ' + shlex.join(train_args) if train_args else ''}; runs in {out}"
    )
    if net_scores:
        print("\n".join(summarise_networks(net_scores)))
    _report(runs)
    return 0


def _read_csv(path: Path) -> list[Run]:
    types = Run.__annotations__
    out = []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            kw = {}
            for k, v in row.items():
                if k not in types:
                    continue
                t = types[k]
                if v == "":
                    kw[k] = "" if t == "str" else None
                elif t == "bool":
                    kw[k] = v == "True"
                elif t.startswith("int"):
                    kw[k] = int(v)
                elif t.startswith("float"):
                    kw[k] = float(v)
                else:
                    kw[k] = v
            out.append(Run(**kw))
    return out


def _read_networks(path: Path) -> list[NetworkScore]:
    with path.open() as fh:
        return [
            NetworkScore(
                **{
                    k: v
                    if k in ("world", "network")
                    else None
                    if v == ""
                    else int(v)
                    if k == "seed"
                    else float(v)
                    for k, v in row.items()
                }
            )
            for row in ({"seed": "", **r} for r in csv.DictReader(fh))  # seed: since per-seed
        ]


def _write_networks(path: Path, scores: list[NetworkScore]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(asdict(scores[0])))
        w.writeheader()
        w.writerows(asdict(x) for x in scores)


def _write_csv(path: Path, runs: list[Run]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) for r in sorted(runs, key=lambda r: (r.world, r.n, r.seed))]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    raise SystemExit(main())
