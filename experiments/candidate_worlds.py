"""Candidates against the ridge baseline on several worlds and training sizes (issue 10 item 2).

    .venv/bin/python -m experiments.candidate_worlds [--n 190 500 1100 4000] [--seeds 2]
        [--worlds default hinges interactions age_u weak_effects] [--kinds ridge spline]
        [--n-test 5000]

For each seed: a SYNTHETIC training pool (``simulator.generator``, n = the largest size) and an
independent SYNTHETIC test cohort of ``--n-test`` admissions from another seed. For each world
(the label-level version of a world of ``simulator/worlds.py``, ``label_level_probability``: the
default generator's true probability with its log-odds transformed) labels are
drawn from the world's true probability in both. Each candidate is fitted with
``models.building.candidates.fit_candidate`` on the first n admissions of the pool and scored on the test
cohort: AUROC and Brier against the drawn test labels, expected log loss against the true
probabilities, calibration slope; the oracle is the world's true probability. Prints means over
seeds and each candidate's difference from the ridge baseline (AUROC points x 1000; Brier in %).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def cohort(n: int, seed: int):
    from features.build import scoring_frame, typed_records
    from models.building.training import split_groups
    from models.scoring.predict import frame_to_matrix
    from simulator.generator import generate

    c = generate(n, seed=seed)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    X, scored, _ = frame_to_matrix(frame)
    gt = c.ground_truth.set_index("admission_id").reindex(frame["admission_id"])
    return (
        X,
        scored,
        split_groups(scored, "counsellor"),
        gt["p_low_alliance_client_no_ids"].to_numpy(),
    )


def metrics(y: np.ndarray, p_true: np.ndarray, q: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from models.building.metrics import row_log_loss

    q = np.clip(q, 1e-6, 1 - 1e-6)
    lq = np.log(q / (1 - q))
    slope = LogisticRegression(C=1e6).fit(lq[:, None], y).coef_[0, 0]
    return {
        "auroc": roc_auc_score(y, q),
        "brier": float(np.mean((y - q) ** 2)),
        "exp_log_loss": float(row_log_loss(p_true, q).mean()),  # expected under the true p
        "cal_slope": float(slope),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, nargs="+", default=[190, 500, 1100, 4000])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument(
        "--worlds",
        nargs="+",
        default=["default", "hinges", "interactions", "age_u", "weak_effects"],
    )
    ap.add_argument("--kinds", nargs="+", default=["ridge", "spline"])
    ap.add_argument("--n-test", type=int, default=5000)
    args = ap.parse_args()

    import pandas as pd

    from models.building.candidates import fit_candidate
    from simulator.worlds import label_level_probability as true_probability

    rows = []
    for s in range(args.seeds):
        t = time.perf_counter()
        Xp, rp, gp, pb = cohort(max(args.n), 1000 + s)
        Xt, rt, _, pbt = cohort(args.n_test, 5000 + s)
        print(f"[seed {s}] cohorts in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        for w in args.worlds:
            rng = np.random.default_rng([s, sum(map(ord, w))])
            pp, pt = true_probability(w, rp, pb), true_probability(w, rt, pbt)
            yp = (rng.random(len(pp)) < pp).astype(int)
            yt = (rng.random(len(pt)) < pt).astype(int)
            rows.append({"seed": s, "world": w, "n": 0, "kind": "oracle", **metrics(yt, pt, pt)})
            for n in args.n:
                for kind in args.kinds:
                    t = time.perf_counter()
                    m = fit_candidate(kind, Xp[:n], yp[:n], gp[:n], 6, s)
                    sec = time.perf_counter() - t
                    rows.append(
                        {
                            "seed": s,
                            "world": w,
                            "n": n,
                            "kind": kind,
                            "fit_s": sec,
                            **metrics(yt, pt, m.proba(Xt)),
                        }
                    )
                    r = rows[-1]
                    print(
                        f"[seed {s}] {w} n={n} {kind}: AUROC {r['auroc']:.3f} Brier "
                        f"{r['brier']:.4f} fit {sec:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    df = pd.DataFrame(rows)
    mean = df.groupby(["world", "n", "kind"], sort=False).mean(numeric_only=True).reset_index()
    base = mean[mean.kind == "ridge"].set_index(["world", "n"])
    out = []
    for _, r in mean.iterrows():
        b = base.loc[(r.world, r.n)] if (r.world, r.n) in base.index else None
        out.append(
            {
                "world": r.world,
                "n": r.n or "-",
                "model": r.kind,
                "AUROC": f"{r.auroc:.3f}",
                "Brier": f"{r.brier:.4f}",
                "exp. log loss": f"{r.exp_log_loss:.4f}",
                "cal. slope": f"{r.cal_slope:.2f}",
                "dAUROC x1000 vs ridge": "-" if b is None else f"{1000 * (r.auroc - b.auroc):+.1f}",
                "dBrier % vs ridge": "-"
                if b is None
                else f"{100 * (r.brier - b.brier) / b.brier:+.2f}",
                "fit s": "-" if pd.isna(r.get("fit_s")) else f"{r.fit_s:.1f}",
            }
        )
    print(
        f"SYNTHETIC cohorts; means over {args.seeds} seeds; test cohort {args.n_test} admissions per seed\n"
    )
    t = pd.DataFrame(out)
    print("| " + " | ".join(t.columns) + " |")
    print("|" + "---|" * len(t.columns))
    for _, r in t.iterrows():
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
