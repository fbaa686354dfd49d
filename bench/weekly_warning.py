"""The weekly early warning on independent cohorts (issue 19's "done when"): prints, asserts nothing.

For each weekly-dynamics preset, n and seed: a SYNTHETIC training cohort (simulator.generator,
``dynamics=``) is trained as ``pipelines.train`` trains it (``harness.cohort.weekly_fit``: the
admission model by ``train_models``, the ridge alone to keep the grid affordable, then
``models.building.weekly.fit_weekly``), and an independent cohort of the same preset (seed + 100,
``--n-test`` admissions) is scored through ``models.scoring.weekly.update_matrix`` as of week 1.
On the test clients with a valid week-1 rating:

- ``auroc_remaining`` / ``auroc_admission``: AUROC of ``risk_remaining`` and of the admission risk
  for low alliance in weeks 2-3 (``build_labels(..., weeks=(2, 3))``), same clients; ``gain``;
- ``slope_remaining``: calibration slope of ``risk_remaining`` for that outcome;
- ``ll_risk`` / ``ll_admission``: log loss of the updated ``risk`` and of ``risk_at_admission`` for
  the label (weeks 1-3);
- ``sens`` / ``false_alarm``: the not-on-track signal's sensitivity and false-alarm rate for low
  alliance in weeks 2-3 (clients with a week-1 rating by the label's rater);
- ``oof_auroc_remaining`` / ``oof_sens`` / ``oof_false_alarm``: the training run's out-of-fold
  figures (what the model card states), for comparison.

Run: python -m bench.weekly_warning [--n 1100 4000] [--seeds 1 2 3] [--dynamics realistic volatile]
     [--candidates anchored spline]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def one(n: int, seed: int, dynamics: str, n_test: int, candidates=None) -> dict:
    from features.labels import RATERS
    from features.settings import load_settings
    from harness.cohort import weekly_fit
    from harness.weekly import week_one
    from models.building.metrics import point_metrics
    from simulator.generator import generate

    t0 = time.perf_counter()
    settings = None
    if candidates:  # the admission model's families (default: the ridge alone)
        settings = load_settings(
            train__candidates=tuple(candidates), train__n_repeats=1, train__n_bootstrap=200
        )
    _, result, weekly = weekly_fit(n, seed, settings, dynamics=dynamics, ground_truth=False)
    model = result.model
    c = generate(n_test, seed=seed + 100, dynamics=dynamics, ground_truth=False)
    w = week_one(model, c)
    s, R, rem, ok = w.scores, w.R, w.remaining, w.ok_remaining
    y = rem.to_numpy()[ok].astype(int)
    upd, adm = point_metrics(y, s.risk_remaining[ok]), point_metrics(y, s.risk_at_admission[ok])
    ok2 = w.ok_label
    y2 = w.label.to_numpy()[ok2].astype(int)
    ll_u = point_metrics(y2, s.risk[ok2])["log_loss"]
    ll_a = point_metrics(y2, s.risk_at_admission[ok2])["log_loss"]
    use = [RATERS.index(r) for r in model.weekly["band"]["raters"]]
    has = ok & ~np.isnan(R[:, 0, use]).all(axis=1)
    ys, flag = rem.to_numpy()[has].astype(int), s.signal[has]
    oof = weekly.figures[1]
    return {
        "dynamics": dynamics,
        "n": n,
        "seed": seed,
        "test_clients": int(ok.sum()),
        "prev_w23": round(float(y.mean()), 3),
        "auroc_remaining": round(upd["auroc"], 3),
        "auroc_admission": round(adm["auroc"], 3),
        "gain": round(upd["auroc"] - adm["auroc"], 3),
        "slope_remaining": round(upd["cal_slope"], 4),  # the bar is 1.25: 2 digits hid 1.2548
        "ll_risk": round(ll_u, 4),
        "ll_admission": round(ll_a, 4),
        "sens": round(float(flag[ys == 1].mean()), 3),
        "false_alarm": round(float(flag[ys == 0].mean()), 3),
        "oof_auroc_remaining": round(oof["remaining"]["auroc"][0], 3),
        "oof_sens": round(oof["signal"]["sensitivity"], 3),
        "oof_false_alarm": round(oof["signal"]["false_alarm_rate"], 3),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[1100, 4000])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--dynamics", nargs="+", default=["realistic", "volatile"])
    p.add_argument("--n-test", type=int, default=4000)
    p.add_argument(
        "--candidates",
        nargs="+",
        help="the admission model's families (default: ridge alone, to keep the grid quick; "
        "'anchored spline' is what pipelines.train fits below the minimum sample size)",
    )
    a = p.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    rows = []
    for d in a.dynamics:
        for n in a.n:
            for s in a.seeds:
                rows.append(one(n, s, d, a.n_test, a.candidates))
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1))
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print()
        print(df.to_string(index=False))
        cols = [
            "auroc_remaining",
            "auroc_admission",
            "gain",
            "slope_remaining",
            "ll_risk",
            "ll_admission",
            "sens",
            "false_alarm",
        ]
        print("\nmean over seeds")
        print(df.groupby(["dynamics", "n"], sort=False)[cols].mean().round(3).to_string())
        print(
            f"\nmin gain {df['gain'].min():.3f}; slope range {df['slope_remaining'].min():.2f}-"
            f"{df['slope_remaining'].max():.2f}; risk beats admission on log loss in "
            f"{int((df['ll_risk'] < df['ll_admission']).sum())} of {len(df)} runs"
        )


if __name__ == "__main__":
    main()
