"""Which per-client interval covers the true risk? (issue 17 item 4)

    .venv/bin/python -m experiments.interval_coverage --sizes 190,500 --seeds 1,2,3

Trains the anchored candidate (as training does below the minimum sample size) on a SYNTHETIC
cohort of n admissions and scores a 5,000-admission independent test cohort whose true risk
(``p_low_alliance_client_no_ids``) is known. For each way of making the 95% interval, prints the
share of test clients whose true risk lies inside it and the median width:

- ``bootstrap``: cluster bootstrap over counsellors, penalty held at the tuned value (B = 200);
- ``posterior``: the Laplace approximation of the penalised fit read as an empirical-Bayes
  posterior, N(theta, H^-1) with H the penalised Hessian (B = 200 draws);
- ``both``: the posterior's draws around each bootstrap refit (the bootstrap's spread from the
  data plus the posterior's spread from the shrinkage).
Nothing here asserts.
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="190,500")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--kind", default="anchored")
    ap.add_argument("--world", default="default")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import LabelConfig
    from models.building import uncertainty as U
    from models.building.estimators import fit_candidate
    from models.building.priors import load
    from models.building.training import split_groups
    from models.scoring.predict import frame_to_matrix
    from simulator.generator import generate

    prior = load("literature").vector()

    def matrix(n, seed, labelled=True):
        c = generate(n, seed=seed, world=args.world)
        frame = typed_records(scoring_frame(c.intake, c.counsellors))
        gt = c.ground_truth.set_index("admission_id")["p_low_alliance_client_no_ids"]
        if labelled:
            labels = build_labels(c.alliance, LabelConfig(), c.intake, c.episodes)
            frame = frame[frame["admission_id"].isin(labels.labels.index)].reset_index(drop=True)
            y = labels.labels.reindex(frame["admission_id"]).to_numpy().astype(int)
        else:
            y = None
        X, scored, _ = frame_to_matrix(frame)
        truth = gt.reindex(frame["admission_id"]).to_numpy(dtype=float)
        return X, y, split_groups(scored, "counsellor"), truth

    Xt, _, _, truth = matrix(5000, 900_001, labelled=False)
    print(f"{'n':>5} {'seed':>4} {'method':<10} {'coverage':>8} {'width':>6} {'MAE':>5}")
    with threadpool_limits(1, user_api="blas"):
        for n in [int(s) for s in args.sizes.split(",")]:
            for seed in [int(s) for s in args.seeds.split(",")]:
                X, y, g, _ = matrix(n, seed)
                m = fit_candidate(args.kind, X, y, g, 6, seed, prior=prior)
                p = m.proba(Xt)
                mae = np.mean(np.abs(p - truth))
                pb = (
                    U.linear_problem(m, X, y, prior)
                    if m.linear is not None
                    else U.spline_problem(m, X, y)
                )
                boot = U.bootstrap(pb, y, g, 200, seed)
                post = U.normal_draws(pb, 200, seed)
                both = boot + (post - pb.theta)
                for name, thetas in (("bootstrap", boot), ("posterior", post), ("both", both)):
                    W, c = pb.to_raw(thetas)
                    m.uncertainty = {"method": name, "B": 200, "W": W, "c": c}
                    lo, hi = m.interval(Xt, p)
                    cov = np.mean((lo <= truth) & (truth <= hi))
                    print(
                        f"{n:>5} {seed:>4} {name:<10} {cov:>8.3f} {np.median(hi - lo):>6.3f} {mae:>5.3f}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
