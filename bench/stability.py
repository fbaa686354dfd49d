"""Smooth risk (issue 10 item 4, issue 17 item 5): how far one step within measurement error
moves the risk, against its bound.

    .venv/bin/python -m bench.stability [--n 2000] [--seed 7] [--kinds ridge anchored spline]
    .venv/bin/python -m bench.stability --model-uri models:/alliance-risk@champion [--n 2000]
    .venv/bin/python -m bench.stability --truth [--n 6000]

Without ``--model-uri``: generates a SYNTHETIC cohort of ``--n`` admissions, fits each candidate
kind in-process (``models.building.candidates.fit_candidate``, as training does; ``anchored`` with
the literature prior, ``models.building.priors.load("literature")``) on the labelled clients
and measures it on an independent SYNTHETIC cohort of the same size (another seed). With
``--model-uri``: loads that registered model's scorer (the tracking store is
``MLFLOW_TRACKING_URI`` or the project default) and measures it on the SYNTHETIC cohort.

For each scale score (``models.building.stability.MEASUREMENT_STEP``: 1 point on a TCU scale or the
GHQ-12, 0.1 on a Brief COPE mean, 1 on a 1-7 attachment rating) prints the 99th percentile and
the maximum over clients of the risk change, in percentage points, and PASS or FAIL against the
scale's bound (``models.building.stability.bounds``: 2 for 99% of clients and 4 for any on a
questionnaire scale, 1.25x the truth's own move on a 1-7 rating). Asserts nothing.

``--truth``: what the generator's own truth implies instead. The true log-odds of a low alliance
(``p_low_alliance_client_no_ids``) of ``--n`` SYNTHETIC admissions with every scale recorded are
regressed (least squares) on the 13 scale scores; per scale: the slope per step and, per client,
the change of that client's true risk when the slope moves its log-odds by one step up or down
(kept within the scale's range), 99th percentile and maximum over clients. The 1-7 ratings'
figures of the default world at n = 6,000, seed 7 are ``models.building.stability.TRUTH_MOVE``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def records(n: int, seed: int, world: str = "default"):
    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import LabelConfig
    from models.building.training import split_groups
    from models.scoring.predict import frame_to_matrix
    from simulator.generator import generate

    c = generate(n, seed=seed, world=world, ground_truth=False)
    labels = build_labels(c.alliance, LabelConfig(), c.intake, c.episodes)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    X, scored, _ = frame_to_matrix(frame)
    lab = labels.labels.reindex(frame["admission_id"])
    keep = lab.notna().to_numpy()
    return X, scored, split_groups(scored, "counsellor"), lab.to_numpy(), keep


def load_scorer(uri: str):
    import mlflow

    from features.settings import load_settings
    from models.scoring.scorer import ScoringModel

    mlflow.set_tracking_uri(load_settings().tracking_uri)
    dst = Path(tempfile.mkdtemp(prefix="stability-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    return ScoringModel.load(local / "artifacts" / "scorer")


def truth_moves(n: int, seed: int, world: str = "default") -> tuple[pd.DataFrame, int]:
    """Per scale: the true log-odds per step and the per-client true risk change for one step
    (percentage points, p99 and max); and how many admissions had every scale recorded."""
    from sklearn.linear_model import LinearRegression

    from features.build import scoring_frame, typed_records
    from models.building.stability import scale_steps
    from simulator.generator import generate

    c = generate(n, seed=seed, world=world)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    p = c.ground_truth.set_index("admission_id")["p_low_alliance_client_no_ids"]
    p = np.clip(p.reindex(frame["admission_id"]).to_numpy(), 1e-4, 1 - 1e-4)
    steps = scale_steps()
    A = frame[list(steps)].apply(pd.to_numeric, errors="coerce")
    ok = A.notna().all(axis=1).to_numpy()
    p = p[ok]
    z = np.log(p / (1 - p))
    fit = LinearRegression().fit(A[ok], z)
    rows = []
    for (name, (step, lo, hi)), b in zip(steps.items(), fit.coef_, strict=True):
        x = A[name].to_numpy(dtype=float)[ok]
        move = np.zeros(len(x))
        for sign in (1.0, -1.0):
            dx = np.clip(x + sign * step, lo, hi) - x
            move = np.maximum(move, np.abs(1 / (1 + np.exp(-(z + b * dx))) - p))
        pts = 100.0 * move
        rows.append(
            {
                "scale": name,
                "step": step,
                "log_odds_per_step": float(b * step),
                "p99_points": float(np.percentile(pts, 99)),
                "max_points": float(pts.max()),
            }
        )
    return pd.DataFrame(rows), int(ok.sum())


def truth(n: int, seed: int, world: str = "default") -> None:
    table, n_ok = truth_moves(n, seed, world)
    print(
        f"SYNTHETIC truth, world {world}: {n_ok} of {n} admissions with every scale (seed {seed})\n"
    )
    print("| scale | step | true log-odds per step | true risk change p99 / max (points) |")
    print("|---|---|---|---|")
    for r in table.itertuples():
        print(
            f"| {r.scale} | {r.step:g} | {r.log_odds_per_step:+.4f} | "
            f"{r.p99_points:.2f} / {r.max_points:.2f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kinds", nargs="+", default=["ridge", "anchored", "spline"])
    ap.add_argument("--model-uri", help="a registered model, e.g. models:/alliance-risk@champion")
    ap.add_argument("--truth", action="store_true", help="the generator's true slopes instead")
    ap.add_argument(
        "--world",
        default="default",
        help="SYNTHETIC world (simulator/worlds.py; default %(default)s)",
    )
    args = ap.parse_args()
    if args.truth:
        truth(args.n, args.seed, args.world)
        return

    from models.building import priors
    from models.building.candidates import fit_candidate
    from models.building.stability import bounds, risk_steps
    from models.scoring.reference import reference_cohort

    _, test, _, _, _ = records(args.n, args.seed + 1000, args.world)
    if args.model_uri:
        models = {args.model_uri: load_scorer(args.model_uri)}
    else:
        X, scored, groups, y, keep = records(args.n, args.seed, args.world)
        prior = priors.load("literature").vector()
        models = {}
        for kind in args.kinds:
            m = fit_candidate(
                kind,
                X[keep],
                y[keep].astype(int),
                groups[keep],
                6,
                args.seed,
                prior=prior if kind == "anchored" else None,
            )
            m.reference = reference_cohort(scored[keep], {}, {})
            models[kind] = m
        print(f"fitted on {int(keep.sum())} labelled of {args.n} admissions (seed {args.seed})")
    print(
        f"SYNTHETIC cohort of {args.n} admissions (seed {args.seed + 1000}); bound per scale: "
        "p99 / max percentage points (models.building.stability.bounds)\n"
    )
    limits = bounds()
    tables = {name: risk_steps(m, test) for name, m in models.items()}
    names = list(tables)
    print(
        "| scale | step | bound p99 / max | "
        + " | ".join(f"{k} p99 / max (points)" for k in names)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(names))
    first = tables[names[0]]
    for i, r in first.iterrows():
        cells = []
        for k in names:
            t = tables[k].iloc[i]
            cells.append(f"{t.p99_points:.3f} / {t.max_points:.3f} {t.verdict}")
        b99, bmax, _ = limits[r.scale]
        print(f"| {r.scale} | {r.step:g} | {b99:.3f} / {bmax:.3f} | " + " | ".join(cells) + " |")
    for k in names:
        t = tables[k]
        fail = t.verdict != "PASS"
        print(
            f"\n{k}: {int((~fail).sum())}/{len(t)} scales PASS"
            + ("" if not fail.any() else f" (FAIL: {', '.join(t.scale[fail])})")
        )


if __name__ == "__main__":
    main()
