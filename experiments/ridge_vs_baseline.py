"""The pipeline's ridge candidate against issue 10's ten-line scikit-learn baseline, per world and n.

    .venv/bin/python -m experiments.ridge_vs_baseline [--worlds default,hinges,nonlinear]
        [--n 190,500,1100] [--seeds 3] [--n-test 5000] [--workdir /tmp/ridge_vs_baseline]

Why this exists: at n = 190 the pipeline's tuned ridge lost to the baseline by 0.03 AUROC although
both are L2 logistic regressions on the same contract fields. The difference was the scaling of
the one-hot columns (standardised in the pipeline, 0/1 in the baseline), which weakens the penalty
on rare categories. This prints, for each world and training size (means over seeds; every
training cohort is SYNTHETIC, from ``simulator.generator`` with ``--world``):

- ``baseline``: ``bench/learning_curve.py``'s ``ridge_baseline`` (LogisticRegressionCV, stratified
  5-fold, neg_log_loss, numbers median-imputed and scaled, codes one-hot);
- ``ridge``: ``models.building.candidates.fit_candidate("ridge", ...)`` exactly as training calls it
  (inner grouped CV by counsellor);
- ``ridge_std_onehot``: the same with every one-hot column standardised (the code before the fix).

All three are scored on one independent SYNTHETIC test cohort per world (seed 999, ``--n-test``
admissions, labelled by ``features.labels``): AUROC, Brier and calibration slope. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _cohort(workdir: Path, world: str, n: int, seed: int):
    from bench.learning_curve import _load
    from simulator.generator import generate, write

    d = workdir / f"{world}_{n}_{seed}"
    if not (d / "intake.csv").exists():
        write(generate(n, seed=seed, world=world), d)
    return _load(d)


def _ridge(frame, y, seed: int, standardise_onehot: bool):
    import models.building.estimators as E
    from models.building.candidates import fit_candidate
    from models.building.training import split_groups
    from models.scoring.predict import frame_to_matrix

    X, scored, _ = frame_to_matrix(frame)
    saved = E.ONEHOT
    if standardise_onehot:
        E.ONEHOT = np.zeros_like(saved)
    try:
        model = fit_candidate("ridge", X, y, split_groups(scored, "counsellor"), 0, seed)
    finally:
        E.ONEHOT = saved
    return lambda f: model.proba(frame_to_matrix(f)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", default="default,hinges,nonlinear")
    ap.add_argument("--n", default="190,500,1100", help="training sizes, comma-separated")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ridge_vs_baseline"))
    args = ap.parse_args()

    from bench.learning_curve import ridge_baseline
    from models.building.metrics import point_metrics

    print("| world | n | model | AUROC | Brier | slope | AUROC - baseline | Brier vs baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for world in args.worlds.split(","):
        test_frame, y_test = _cohort(args.workdir, world, args.n_test, 999)
        for n in (int(v) for v in args.n.split(",")):
            res: dict[str, list[dict]] = {"baseline": [], "ridge": [], "ridge_std_onehot": []}
            t = time.perf_counter()
            for seed in range(1, args.seeds + 1):
                frame, y = _cohort(args.workdir, world, n, seed)
                fits = {
                    "baseline": ridge_baseline(frame, y),
                    "ridge": _ridge(frame, y, seed, False),
                    "ridge_std_onehot": _ridge(frame, y, seed, True),
                }
                for name, predict in fits.items():
                    res[name].append(point_metrics(y_test, np.asarray(predict(test_frame))))
            mean = {
                k: {m: float(np.mean([r[m] for r in v])) for m in ("auroc", "brier", "cal_slope")}
                for k, v in res.items()
            }
            b = mean["baseline"]
            for name, m in mean.items():
                print(
                    f"| {world} | {n} | {name} | {m['auroc']:.4f} | {m['brier']:.4f} | "
                    f"{m['cal_slope']:.2f} | {m['auroc'] - b['auroc']:+.4f} | "
                    f"{100 * (m['brier'] / b['brier'] - 1):+.1f}% |",
                    flush=True,
                )
            print(f"[{world} n={n}: {time.perf_counter() - t:.0f} s]", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
