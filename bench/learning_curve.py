"""Learning curves across SYNTHETIC worlds (issue 10, item 6): what a service of a given size gets.

    .venv/bin/python -m bench.learning_curve                      # the full grid (CPU-heavy)
    .venv/bin/python -m bench.learning_curve --quick              # smoke run, a few minutes
    .venv/bin/python -m bench.learning_curve --worlds default,hinges --sizes 190,4000 --seeds 1,2,3

For every world, training size n and seed, a cohort of n admissions is generated
(`simulator.generator`, world and seed given) and trained on exactly as a user would: `python -m
pipelines.train --data DIR` in a subprocess, against a fresh SQLite tracking store (the CLI is the
stable interface; the candidates and the gate behind it may change). If the gate made a champion,
it is loaded with ``mlflow.pyfunc.load_model("models:/<registered_model>@champion")`` and scored on
a large independent test cohort of the same world (another seed: new clients, counsellors and
services). Beside it, on the same training rows:

- the tuned ridge baseline of the issue: median imputation and scaling of the numeric contract
  fields, one-hot of the coded ones, ``LogisticRegressionCV(scoring="neg_log_loss")``;
- the oracle: the test cohort's true probabilities, ``p_low_alliance_client_no_ids`` (the truth
  integrated over counsellor and service effects, i.e. the best any model can do for clients of
  counsellors and services it has never seen, which is what the test cohort holds).

Printed per (world, n): champions registered (of seeds), mean AUROC, Brier and calibration slope of
the champion, the baseline and the oracle, and the issue's goals as PASS/FAIL:
- registered: a champion for every seed wherever the oracle's AUROC is clearly above 0.5 (>= 0.55);
- AUROC: the champion's mean AUROC at most 0.003 below the baseline's (same seeds);
- Brier: the champion's mean Brier at most 0.5% above the baseline's (same seeds);
- beats: in non-linear worlds (simulator/worlds.py) at n >= 4,000, AUROC above and Brier below the
  baseline's.
Metrics: models/building/metrics.py ``point_metrics`` against the realised labels of the test cohort's
labelled clients (features/labels.py, client rater, threshold 5.0). Nothing here asserts.
"""

from __future__ import annotations

import argparse
import csv
import os
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

from tests.support.harness import FAST_CONFIG, run_pipeline  # noqa: E402  (one training harness)

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
    # The version this run registered, champion or not (the "trained model" column).
    trained_auroc: float | None = None
    trained_brier: float | None = None


# ---- data ---------------------------------------------------------------------------------------
def _test_cohort(world: str, test_n: int, workdir: Path) -> Path:
    """The independent test cohort of a world (with true probabilities), cached in workdir."""
    from simulator.generator import generate, write

    d = workdir / f"test_{world}_{test_n}_{TEST_SEED}"
    if (d / "ground_truth.csv").exists():
        return d
    t = time.perf_counter()
    write(generate(test_n, seed=TEST_SEED, world=world), d)
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
def one_run(world: str, n: int, seed: int, test_dir: str, root: str, config: str | None) -> Run:
    """Generate, train with the CLI, score champion, baseline and oracle on the test cohort."""
    import mlflow
    import numpy as np
    import pandas as pd

    from features.settings import load_settings
    from models.building.metrics import point_metrics
    from models.lifecycle.resolve import find_version, model_uri
    from simulator.generator import generate, write

    base = Path(root) / f"{world}_n{n}_s{seed}"
    shutil.rmtree(base, ignore_errors=True)
    data = base / "data"
    write(generate(n, seed=seed, world=world, ground_truth=False), data)
    uri = f"sqlite:///{base / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "GX_ANALYTICS_ENABLED": "false"}
    args = ["--data", str(data)] + (["--config", config] if config else [])
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
    oracle = point_metrics(y_test, p_oracle.to_numpy())
    ridge = point_metrics(y_test, ridge_baseline(train_frame, y)(test_frame))

    model = trained = None
    name = load_settings().train.registered_model
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    champion = find_version(client, name) is not None
    if champion:
        pyfunc = mlflow.pyfunc.load_model(model_uri(name))
        p = np.asarray(pyfunc.predict(test_frame)["risk"], dtype=float)
        model = trained = point_metrics(y_test, p)
    elif proc.returncode == 0:
        versions = client.search_model_versions(f"name = '{name}'")
        if versions:
            latest = max(int(v.version) for v in versions)
            pyfunc = mlflow.pyfunc.load_model(model_uri(name, latest))
            p = np.asarray(pyfunc.predict(test_frame)["risk"], dtype=float)
            trained = point_metrics(y_test, p)
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
    )


# ---- the summary --------------------------------------------------------------------------------
def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def summarise(runs: list[Run]) -> tuple[list[str], bool]:
    """One line per (world, n) with the goals; True if every goal that applies passes."""
    from simulator.worlds import get

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


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.learning_curve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--worlds", default=",".join(WORLDS), help="comma-separated world names")
    p.add_argument("--sizes", type=_ints, default=SIZES, help="training sizes, comma-separated")
    p.add_argument("--seeds", type=_ints, default=SEEDS, help="training seeds, comma-separated")
    p.add_argument("--test-n", type=int, default=TEST_N, help="size of each world's test cohort")
    p.add_argument("--jobs", type=int, default=1, help="training runs in parallel")
    p.add_argument("--out", type=Path, help="CSV of every run")
    p.add_argument(
        "--config", type=Path, help="TOML passed to pipelines.train (default: the user defaults)"
    )
    p.add_argument("--workdir", type=Path, help="keep stores, logs and test cohorts here")
    p.add_argument(
        "--summarise", type=Path, metavar="CSV", help="print the summary of an earlier --out CSV"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: worlds default,hinges, n 190,1100, one seed, test n 3,000, the fast "
        "training settings of tests/conftest.py",
    )
    a = p.parse_args(argv)
    from simulator.worlds import get

    if a.summarise:
        runs = _read_csv(a.summarise)
        lines, ok = summarise(runs)
        print(f"SYNTHETIC data. Learning curves from {a.summarise}: {len(runs)} training runs")
        print("\n".join(lines))
        print(f"all goals: {'PASS' if ok else 'FAIL'}")
        return 0

    worlds = [w.strip() for w in a.worlds.split(",") if w.strip()]
    for w in worlds:
        get(w)  # a clear error for an unknown name
    sizes, seeds, test_n = a.sizes, a.seeds, a.test_n
    work = a.workdir or Path(tempfile.mkdtemp(prefix="learning-curve-"))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    config = str(a.config.resolve()) if a.config else None
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
        f"test n {test_n}, jobs {a.jobs}, training config {config or 'user defaults'}; work {work}"
    )
    tests = {w: str(_test_cohort(w, test_n, work)) for w in worlds}
    # Smallest n first, all worlds and seeds of one n together: a run cut short still gives
    # complete (world, n) cells, and its CSV can be summarised with --summarise.
    tasks = [(w, n, s) for n in sorted(sizes) for w in worlds for s in seeds]
    runs: list[Run] = []
    t0 = time.perf_counter()
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=mp.get_context("spawn")) as pool:
        futs = {
            pool.submit(one_run, w, n, s, tests[w], str(work / "runs"), config): (w, n, s)
            for w, n, s in tasks
        }
        for fut in as_completed(futs):
            r = fut.result()
            runs.append(r)
            log(
                f"{r.world} n={r.n} seed={r.seed}: train {r.train_s:.0f} s, champion "
                f"{'yes' if r.champion else 'no'} ({r.outcome[:90]}); AUROC model "
                f"{_f(r.model_auroc)} ridge {_f(r.ridge_auroc)} oracle {_f(r.oracle_auroc)}"
            )
            if a.out:
                _write_csv(a.out, runs)
    lines, ok = summarise(runs)
    print(
        f"SYNTHETIC data. Learning curves: {len(runs)} training runs in "
        f"{time.perf_counter() - t0:.0f} s; test cohorts of {test_n} (seed {TEST_SEED}); "
        f"training config {'fast (tests/conftest.py)' if a.quick and not a.config else config or 'user defaults'}"
    )
    print("\n".join(lines))
    print(f"all goals: {'PASS' if ok else 'FAIL'}")
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
                    kw[k] = None
                elif t == "bool":
                    kw[k] = v == "True"
                elif t == "int":
                    kw[k] = int(v)
                elif t.startswith("float"):
                    kw[k] = float(v)
                else:
                    kw[k] = v
            out.append(Run(**kw))
    return out


def _write_csv(path: Path, runs: list[Run]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) for r in sorted(runs, key=lambda r: (r.world, r.n, r.seed))]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    raise SystemExit(main())
