"""How much one week's rating says about the weeks to come, per weekly-dynamics preset (issue 19).

For each preset of simulator/weekly.py and each seed, a SYNTHETIC cohort (n admissions, ground
truth by Monte Carlo) is generated and, on the clients with a valid week-1 client rating and a
weeks 2-3 label (features/labels.py, weeks=(2, 3)):

- AUROC of the week-1 client rating (WAI-S item mean, lower = riskier) for "low client-rated
  alliance over weeks 2-3", beside the AUROC of the true admission risk for the same outcome
  (`p_low_alliance_client_w23`, the record with counsellor and service; and `_no_ids`);
- how often a client's rating drops from one week to the next by more than its measurement error.

Measurement error: the reliable change criterion of Jacobson & Truax (1991): a drop counts when it
exceeds 1.96 * sqrt(2) * SEM, SEM = SD * sqrt(1 - alpha), with SD the SD of the week-1 client item
means in the cohort and alpha = 0.90 for the WAI-S total (internal consistency; WAI-S alphas are
reported around .90 and above, e.g. Busseri & Tyler 2003, Psychol Assess 15:193; the exact figure
is not verified here, so .90 is taken as a conservative value); the one definition is
``features.instruments.reliable_change``, which the served rupture marker uses too. The share of true ruptures
(ground truth) whose week shows such a drop is printed too.

Prints figures, asserts nothing. Run: python -m bench.weekly_signal [--n 4000] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from features.instruments import reliable_change


def auroc(score: np.ndarray, y: np.ndarray) -> float:
    """Rank AUROC (ties half), higher score = positive."""
    from scipy.stats import rankdata

    r = rankdata(score)
    pos = y.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def one(n: int, seed: int, dynamics: str, mc_draws: int) -> dict:
    from features.scoring import score_wai
    from simulator.generator import generate

    t0 = time.perf_counter()
    c = generate(n, seed, dynamics=dynamics, mc_draws=mc_draws)
    a = c.alliance.assign(wai=score_wai(c.alliance))
    w = (
        a[a["rater"] == "client"]
        .pivot(index="admission_id", columns="week", values="wai")
        .reindex(columns=[1, 2, 3])
    )
    gt = c.ground_truth.set_index("admission_id")
    df = gt.join(w.rename(columns=lambda k: f"w{k}"))
    ev = df[df["low_alliance_client_w23"].notna() & df["w1"].notna()]
    y = ev["low_alliance_client_w23"].astype(bool).to_numpy()
    sd = float(df["w1"].std())
    thr = reliable_change(sd)
    drops, rupt_hits, rupt_n = [], 0, 0
    for k in (2, 3):
        pair = df[[f"w{k - 1}", f"w{k}", f"rupture_w{k}"]].dropna()
        d = (pair[f"w{k - 1}"] - pair[f"w{k}"]).to_numpy()
        drops.append(d > thr)
        r = pair[f"rupture_w{k}"].astype(bool).to_numpy()
        rupt_hits += int((d[r] > thr).sum())
        rupt_n += int(r.sum())
    drops_all = np.concatenate(drops)
    return {
        "dynamics": dynamics,
        "seed": seed,
        "clients": len(ev),
        "prevalence_w23": round(float(y.mean()), 3),
        "auroc_week1_rating": round(auroc(-ev["w1"].to_numpy(), y), 3),
        "auroc_true_admission": round(auroc(ev["p_low_alliance_client_w23"].to_numpy(), y), 3),
        "auroc_true_admission_no_ids": round(
            auroc(ev["p_low_alliance_client_w23_no_ids"].to_numpy(), y), 3
        ),
        "sd_week1": round(sd, 3),
        "drop_threshold": round(thr, 3),
        "drop_share_of_transitions": round(float(drops_all.mean()), 3),
        "ruptures_with_such_drop": round(rupt_hits / rupt_n, 3) if rupt_n else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> None:
    from simulator.weekly import PRESETS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--mc-draws", type=int, default=200)
    p.add_argument("--dynamics", nargs="+", default=list(PRESETS))
    a = p.parse_args(argv)
    rows = [one(a.n, s, d, a.mc_draws) for d in a.dynamics for s in a.seeds]
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(df.to_string(index=False))
        cols = [
            "prevalence_w23",
            "auroc_week1_rating",
            "auroc_true_admission",
            "auroc_true_admission_no_ids",
            "drop_threshold",
            "drop_share_of_transitions",
            "ruptures_with_such_drop",
        ]
        print("\nmean over seeds")
        print(df.groupby("dynamics", sort=False)[cols].mean().round(3).to_string())


if __name__ == "__main__":
    main()
