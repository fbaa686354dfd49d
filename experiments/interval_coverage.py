"""Which per-client interval covers the true risk? (issue 17 item 4; the tuned penalty's luck)

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m experiments.interval_coverage \\
        --sizes 190,500 --seeds 1,2,3 --world default        # or --world few_counsellors

Trains the anchored candidate (as training does below the minimum sample size) on a SYNTHETIC
cohort of n admissions and scores a 5,000-admission independent test cohort whose true risk
(``p_low_alliance_client_no_ids``) is known. ``--world`` is a cohort name of
``simulator.worlds.cohort_spec``: a world, a design (``few_counsellors``) or both joined by ``+``.
For each way of making the 95% interval, prints the share of test clients whose true risk lies
inside it (coverage) and the median width, then a summary per n over the seeds.

The ways, all with B = 200 and the same cluster-bootstrap replicates (counsellors):

- ``bootstrap``: refits with the penalty held at the tuned value;
- ``posterior``: the Laplace approximation of the penalised fit read as an empirical-Bayes
  posterior, N(theta, H^-1) with H the penalised Hessian;
- ``both`` (shipped in ``models/building/uncertainty.py``): the posterior's draws around each
  bootstrap refit.

The tuned penalty (C and the prior weight t of the anchored candidate, lam and rho of the spline)
is itself luck at a few hundred rows (Riley et al. 2021, J Clin Epidemiol 132:88), and every way
above holds it fixed. Ways that let it vary, each over the candidate's own tuning grid:

- ``retuned``: the whole-process bootstrap, cheaply. In each replicate the penalty is chosen again
  by approximate leave-one-out log loss (ALO: one Newton step of influence per left-out client,
  Rad & Maleki 2020, JRSS-B 82:965), leaving out every copy of a client the replicate holds.
  Screening: the whole grid by chord-Newton refits from the full-data fit at each grid point
  (three steps with the full-data Hessian, all replicates in one matrix product; a fit whose
  Newton decrement stays above 0.01 did not converge and is dropped, which are the weakest
  penalties). Then the tuned configuration and the two best screened ones are refitted exactly
  on the replicate (the shipped four projected Newton steps, warm from the full-data fit at that
  penalty, with the replicate's own Hessian) and the exact ALO picks among them. That refit is
  moved by one posterior draw at the replicate's penalty.
- ``retuned+post``: the same refits, moved by the posterior draw at the tuned penalty (the
  posterior of the shipped fit, as ``both``).
- ``evidence``: the penalty drawn per replicate from its approximate posterior over the grid
  (uniform prior over the grid points, Laplace approximation of the marginal likelihood at each:
  log lik - lam/2 |beta - mu|_Q^2 + 1/2 log det(lam Q) - 1/2 log det H), the replicate refitted at
  it and moved by the posterior draw at it.

Why the screening and not ALO alone: on a replicate the one-step ALO from the full-data fit is
right to about 0.001-0.002 in log loss near the tuned penalty (a throw-away check against exact
refits on 12 replicates, SYNTHETIC n = 190) but wrong by 0.2 or more at weak penalties, where a
replicate's fit is far from the full-data one; taken as it is, it picked C = 100 for many
replicates and gave intervals about twice as wide at n = 190. Leaving out a counsellor's clients
together (the grouped CV of tuning) was tried and cost 1.3-20 s at n = 190-500: not pursued.

Nothing here asserts; nothing here is shipped.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import replace

import numpy as np

from models.building import uncertainty as U
from models.scoring.scorer import sigmoid

B = 200
SCREEN_STEPS = 3
SCREEN_TOL = 1e-2  # Newton decrement (log-likelihood units) above which a screened fit is dropped
EXACT_TOP = 2  # screened configurations refitted exactly, besides the tuned one
EXACT_TOL = 1e-3


# ------------------------------------------------------------------ the grid of penalties
def replicate_rows(y: np.ndarray, groups: np.ndarray, n_rep: int, seed: int) -> list[np.ndarray]:
    """The rows of each cluster-bootstrap replicate: the same draws as ``U.bootstrap`` (same
    seed, same order, the same replicates without both outcomes skipped)."""
    rng = np.random.default_rng(seed)
    members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    keys = list(members)
    out: list[np.ndarray] = []
    while len(out) < n_rep:
        pick = rng.integers(len(keys), size=len(keys))
        rows = np.concatenate([members[keys[i]] for i in pick])
        if y[rows].min() == y[rows].max():
            continue
        out.append(rows)
    return out


def penalty_grid(model, X, y, prior) -> list[tuple[dict, U.Problem]]:
    """The kind's tuning grid, each configuration fitted on all rows (warm-started along it)."""
    from models.building.estimators import (
        ANCHORED_GRID,
        ANCHORED_WEIGHTS,
        LOGISTIC_GRID,
        RAW_COLUMNS,
        RIDGE_GRID,
        SPLINE_LAMBDAS,
        SPLINE_RHOS,
        Design,
        fit_penalised,
        newton_ridge,
    )

    out = []
    if model.kind in ("ridge", "logistic", "anchored"):
        base = U.linear_problem(model, X, y, prior)
        q = base.Z.shape[1]
        pm = prior[RAW_COLUMNS] if model.kind == "anchored" and prior is not None else None
        if model.kind == "anchored":
            weights = ANCHORED_WEIGHTS if pm is not None else (0.0,)
            configs = [(c, t) for t in weights for c in ANCHORED_GRID]
        else:
            configs = [(c, 0.0) for c in (RIDGE_GRID if model.kind == "ridge" else LOGISTIC_GRID)]
        start, last_t = None, None
        for C, t in configs:
            mu = np.zeros(q) if pm is None else t * pm
            theta = newton_ridge(base.Z, y, 1.0 / C, mu, start if t == last_t else None)
            start, last_t = theta, t
            cfg = {"C": C, "t": t} if model.kind == "anchored" else {"C": C}
            out.append(
                (cfg, replace(base, lam=1.0 / C, mu=None if pm is None else mu, theta=theta))
            )
        return out
    base = U.spline_problem(model, X, y)
    design = Design(X)
    for rho in SPLINE_RHOS:
        Q = design.penalty(rho)
        start = None
        for lam in sorted(SPLINE_LAMBDAS, reverse=True):
            theta = fit_penalised(base.Z, y, Q, lam, base.bounds, start)
            start = theta
            out.append(({"lam": lam, "rho": rho}, replace(base, Q=Q, lam=lam, theta=theta)))
    return out


def _penalty(pb: U.Problem) -> tuple[np.ndarray, np.ndarray]:
    q = pb.Z.shape[1]
    P = np.zeros((q + 1, q + 1))
    P[1:, 1:] = pb.lam * pb.Q
    centre = np.zeros(q + 1)
    if pb.mu is not None:
        centre[1:] = pb.mu
    return P, centre


def summaries(grid, y) -> list[dict]:
    """Per configuration: the full-data penalised Hessian's inverse over the coefficients not
    fixed by their bounds, the leverages, the Laplace log marginal likelihood."""
    out = []
    for _, pb in grid:
        n = len(y)
        Z1 = np.hstack([np.ones((n, 1)), pb.Z])
        P, centre = _penalty(pb)
        eta = Z1 @ pb.theta
        p = sigmoid(eta)
        H = (Z1 * (p * (1 - p))[:, None]).T @ Z1 + P
        free = pb.lo < pb.hi
        Hinv = np.zeros_like(H)
        Hinv[np.ix_(free, free)] = np.linalg.inv(H[np.ix_(free, free)])
        d = pb.theta - centre
        _, ld_prior = np.linalg.slogdet(pb.lam * pb.Q[np.ix_(free[1:], free[1:])])
        _, ld_post = np.linalg.slogdet(H[np.ix_(free, free)])
        loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
        out.append(
            {
                "Z1": Z1,
                "P": P,
                "centre": centre,
                "Hinv": Hinv,
                "lev": np.einsum("ij,jk,ik->i", Z1, Hinv, Z1),
                "logml": loglik - 0.5 * float(d @ P @ d) + 0.5 * ld_prior - 0.5 * ld_post,
            }
        )
    return out


# ------------------------------------------------------------------ retuned: ALO per replicate
def screen(grid, summ, y, reps) -> np.ndarray:
    """Approximate ALO log loss (replicates x grid); inf where the chord refit did not converge.

    A replicate is a weighted fit (c copies of each client). Leaving out all c copies of client
    i, the rest of the replicate standing in for the rest of the data:
    eta_out = eta + c a (p - y) / (1 - w a), a = z' H^-1 z from the full-data Hessian."""
    n = len(y)
    K = np.stack([np.bincount(r, minlength=n) for r in reps]).astype(float)
    out = np.empty((len(reps), len(grid)))
    for k, ((_, pb), s) in enumerate(zip(grid, summ, strict=True)):
        Z1, P, centre, Hinv = s["Z1"], s["P"], s["centre"], s["Hinv"]
        th = np.tile(pb.theta, (len(K), 1))
        for _ in range(SCREEN_STEPS):
            g = (K * (sigmoid(th @ Z1.T) - y)) @ Z1 + (th - centre) @ P
            th = np.clip(th - g @ Hinv, pb.lo, pb.hi)
        eta = th @ Z1.T
        p = sigmoid(eta)
        g = (K * (p - y)) @ Z1 + (th - centre) @ P
        decrement = np.einsum("bi,ij,bj->b", g, Hinv, g)
        a = s["lev"][None, :]
        eta_out = eta + K * a * (p - y) / np.maximum(1.0 - p * (1 - p) * a, 1e-3)
        loss = (K * (np.logaddexp(0.0, eta_out) - y * eta_out)).sum(axis=1) / K.sum(axis=1)
        out[:, k] = np.where(decrement > SCREEN_TOL, np.inf, loss)
    return out


def exact_refit(pb: U.Problem, Z1: np.ndarray, y: np.ndarray, c: np.ndarray):
    """The replicate's fit (``U.newton_refit``'s projected Newton steps, with c copies of each
    row as weights), its exact ALO log loss and the Newton decrement left after the steps."""
    P, centre = _penalty(pb)
    theta = pb.theta.copy()
    for step in range(U.NEWTON_STEPS + 1):
        p = sigmoid(Z1 @ theta)
        grad = Z1.T @ (c * (p - y)) + P @ (theta - centre)
        held = (np.isclose(theta, pb.lo) & (grad > 0)) | (np.isclose(theta, pb.hi) & (grad < 0))
        free = ~held
        Zf = Z1[:, free]
        H = (Zf * (c * p * (1 - p))[:, None]).T @ Zf + P[np.ix_(free, free)]
        H += 1e-9 * np.eye(int(free.sum()))
        move = np.linalg.solve(H, grad[free])
        if step == U.NEWTON_STEPS:
            break
        theta[free] -= move
        theta = np.clip(theta, pb.lo, pb.hi)
    eta = Z1 @ theta
    a = np.einsum("ij,ij->i", Zf, np.linalg.solve(H, Zf.T).T)
    eta_out = eta + c * a * (p - y) / (1.0 - c * p * (1 - p) * a)
    loss = float((c * (np.logaddexp(0.0, eta_out) - y * eta_out)).sum() / c.sum())
    return theta, loss, float(grad[free] @ move)


def retune(grid, summ, y, reps, tuned: int) -> tuple[np.ndarray, np.ndarray]:
    """Each replicate's chosen configuration and its refit there."""
    approx = screen(grid, summ, y, reps)
    n = len(y)
    ks, thetas = [], []
    for b, rows in enumerate(reps):
        c = np.bincount(rows, minlength=n).astype(float)
        best = [k for k in np.argsort(approx[b])[:EXACT_TOP] if np.isfinite(approx[b, k])]
        chosen = None
        for k in dict.fromkeys([tuned, *best]):
            theta, loss, decrement = exact_refit(grid[k][1], summ[k]["Z1"], y, c)
            if k != tuned and decrement > EXACT_TOL:
                continue
            if chosen is None or loss < chosen[0]:
                chosen = (loss, k, theta)
        ks.append(chosen[1])
        thetas.append(chosen[2])
    return np.array(ks), np.array(thetas)


# ------------------------------------------------------------------ evidence: drawn penalty
def evidence_draws(summ, n_rep: int, seed: int) -> np.ndarray:
    lml = np.array([s["logml"] for s in summ])
    w = np.exp(lml - lml.max())
    return np.random.default_rng(seed + 7).choice(len(summ), size=n_rep, p=w / w.sum())


def refits_at(grid, y, reps, ks) -> np.ndarray:
    return np.array(
        [U.newton_refit(grid[k][1], grid[k][1].Z[r], y[r]) for r, k in zip(reps, ks, strict=True)]
    )


def posterior_moves(grid, summ, ks, seed: int) -> np.ndarray:
    """Each replicate's posterior draw minus the centre, at its own configuration (the same
    standard normals as ``U.normal_draws``)."""
    eps = np.random.default_rng(seed).standard_normal((len(ks), len(grid[0][1].theta)))
    roots: dict[int, np.ndarray] = {}
    out = np.empty_like(eps)
    for b, k in enumerate(ks):
        pb = grid[k][1]
        if k not in roots:
            roots[k] = np.linalg.cholesky(summ[k]["Hinv"] + 1e-12 * np.eye(len(pb.theta)))
        out[b] = np.clip(pb.theta + roots[k] @ eps[b], pb.lo, pb.hi) - pb.theta
    return out


# ------------------------------------------------------------------ the experiment
def _top(ks: np.ndarray, cfgs: list[dict]) -> str:
    """The four configurations chosen most often, with their counts."""
    top = Counter(ks.tolist()).most_common(4)
    return ", ".join(f"{'/'.join(f'{v:g}' for v in cfgs[k].values())} x{c}" for k, c in top)


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
    from models.building.candidates import fit_candidate
    from models.building.priors import load
    from models.building.training import split_groups
    from models.scoring.predict import frame_to_matrix
    from simulator.generator import generate
    from simulator.worlds import cohort_spec

    prior = load("literature").vector()
    world, design = cohort_spec(args.world)

    def matrix(n, seed, labelled=True):
        c = generate(n, seed=seed, world=world.name, **design.generate_args())
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

    print(f"SYNTHETIC data; cohort {args.world!r}, kind {args.kind}, B = {B}")
    Xt, _, _, truth = matrix(5000, 900_001, labelled=False)
    print(f"{'n':>5} {'seed':>4} {'way':<13} {'coverage':>8} {'width':>6} {'MAE':>5}")
    results: dict[tuple[int, str], list[tuple[float, float]]] = {}
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
                t = time.perf_counter()
                boot = U.bootstrap(pb, y, g, B, seed)
                post = U.normal_draws(pb, B, seed)
                t_old = time.perf_counter() - t

                t = time.perf_counter()
                reps = replicate_rows(y, g, B, seed)
                grid = penalty_grid(m, X, y, prior)
                summ = summaries(grid, y)
                cfgs = [c for c, _ in grid]
                tuned = next(
                    i
                    for i, c in enumerate(cfgs)
                    if all(np.isclose(v, m.params[key]) for key, v in c.items())
                )
                ks_rt, th_rt = retune(grid, summ, y, reps, tuned)
                retuned = th_rt + posterior_moves(grid, summ, ks_rt, seed)
                t_new = time.perf_counter() - t
                ks_ev = evidence_draws(summ, B, seed)
                evidence = refits_at(grid, y, reps, ks_ev) + posterior_moves(
                    grid, summ, ks_ev, seed
                )

                tuned_cfg = "/".join(f"{v:g}" for v in cfgs[tuned].values())
                print(
                    f"# n {n} seed {seed}: {len(y)} labelled, tuned {tuned_cfg}; "
                    f"retuned: {len(set(ks_rt.tolist()))} configurations, "
                    f"{np.mean(ks_rt == tuned):.0%} the tuned one ({_top(ks_rt, cfgs)}); "
                    f"evidence: {len(set(ks_ev.tolist()))} ({_top(ks_ev, cfgs)}); "
                    f"seconds: shipped {t_old:.2f}, retuned {t_new:.2f}"
                )
                ways = {
                    "bootstrap": boot,
                    "posterior": post,
                    "both": boot + (post - pb.theta),
                    "retuned": retuned,
                    "retuned+post": th_rt + (post - pb.theta),
                    "evidence": evidence,
                }
                for name, thetas in ways.items():
                    W, c = pb.to_raw(thetas)
                    m.uncertainty = {"method": name, "B": B, "W": W, "c": c}
                    lo, hi = m.interval(Xt, p)
                    cov = float(np.mean((lo <= truth) & (truth <= hi)))
                    width = float(np.median(hi - lo))
                    results.setdefault((n, name), []).append((cov, width))
                    print(
                        f"{n:>5} {seed:>4} {name:<13} {cov:>8.3f} {width:>6.3f} {mae:>5.3f}",
                        flush=True,
                    )
    print("\nmean over seeds: coverage [min-max], median width (x the shipped 'both')")
    for (n, name), rows in results.items():
        cov = np.array([r[0] for r in rows])
        width = np.mean([r[1] for r in rows])
        ref = np.mean([r[1] for r in results[(n, "both")]])
        print(
            f"{n:>5} {name:<13} {cov.mean():.3f} [{cov.min():.3f}-{cov.max():.3f}] "
            f"{width:.3f} (x{width / ref:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
