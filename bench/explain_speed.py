"""Explanation cost: native contributions vs the shap package, per record and per 10,000 records.

    .venv/bin/python bench/explain_speed.py [--n 5000] [--repeat 3]

Trains on a SYNTHETIC cohort, in-process: the compact monotone LightGBM the pipeline tunes, a
large reference LightGBM (300 trees, depth 6, the size quoted in the stack notes) and the
logistic regression. For each: held-out AUROC, TreeSHAP via the booster's ``pred_contrib`` and via
``shap.TreeExplainer`` (same numbers; checked), one record at a time and 10,000 at once, and the
whole per-record explanation the API returns (drivers, actions, what-ifs). Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import lightgbm as lgb
    import shap
    from sklearn.metrics import roc_auc_score

    from features.build import MONOTONE, scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import load_settings
    from models.estimators import fit_candidate
    from models.explain import explain_row
    from models.predict import frame_to_matrix
    from models.scorer import ScoringModel
    from models.training import holdout_split, reference_cohort, split_groups
    from simulator.generator import generate

    settings = load_settings()
    c = generate(args.n, seed=7)
    labels = build_labels(c.alliance, settings.label, c.intake, c.episodes)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    frame = frame[frame["admission_id"].isin(labels.labels.index)].reset_index(drop=True)
    X, scored, _ = frame_to_matrix(frame)
    y = labels.labels.reindex(frame["admission_id"]).to_numpy().astype(int)
    groups = split_groups(scored, "counsellor")
    tr, te = holdout_split(y, groups, 0.2, 7)
    ref = reference_cohort(
        scored.iloc[tr], settings.bands.model_dump(), settings.label.model_dump()
    )

    compact = fit_candidate("lightgbm", X[tr], y[tr], groups[tr], settings.train.tune_iterations, 7)
    big_booster = lgb.train(
        {
            "objective": "binary",
            "num_leaves": 63,
            "max_depth": 6,
            "learning_rate": 0.05,
            "verbose": -1,
            "monotone_constraints": list(MONOTONE),
            "num_threads": 2,
            "seed": 7,
        },
        lgb.Dataset(X[tr], label=y[tr]),
        num_boost_round=300,
    )
    big = ScoringModel("lightgbm", {"trees": 300, "max_depth": 6}, booster=big_booster)
    logistic = fit_candidate("logistic", X[tr], y[tr], groups[tr], 1, 7)
    for m in (compact, big, logistic):
        m.reference = ref

    rng = np.random.default_rng(0)
    X10k = X[rng.integers(0, len(X), 10_000)]
    records = [
        {
            k: (None if isinstance(v, float) and np.isnan(v) else v)
            for k, v in scored.iloc[i].to_dict().items()
        }
        for i in te[:200]
    ]

    print(
        f"SYNTHETIC cohort n={args.n}; {len(te)} held-out clients; times are the best of {args.repeat} runs on this machine\n"
    )
    print(
        "| model | trees | leaves | held-out AUROC | pred_contrib 1 row (ms) | shap.TreeExplainer 1 row (ms) | pred_contrib 10k rows (s) | shap 10k rows (s) | rows/s (pred_contrib) | full API explanation per record (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in (
        ("compact monotone LightGBM (tuned)", compact),
        ("reference LightGBM 300 trees depth 6", big),
        ("logistic regression", logistic),
    ):
        auc = roc_auc_score(y[te], m.proba(X[te]))
        row = X[te[:1]]
        one_native = best_of(lambda: [m.contributions(row) for _ in range(200)], args.repeat) / 200
        many_native = best_of(lambda: m.contributions(X10k), args.repeat)
        full = (
            best_of(
                lambda: [
                    explain_row(m, r, X[i : i + 1], "high")
                    for r, i in zip(records, te[:200], strict=True)
                ],
                args.repeat,
            )
            / 200
        )
        if m.kind == "lightgbm":
            explainer = shap.TreeExplainer(m.booster)
            sv = explainer.shap_values(X[te[:50]])
            native = m.booster.predict(X[te[:50]], pred_contrib=True)[:, :-1]
            assert np.allclose(np.asarray(sv).reshape(native.shape), native, atol=1e-6), (
                "shap and pred_contrib disagree"
            )
            one_shap = (
                best_of(lambda: [explainer.shap_values(row) for _ in range(50)], args.repeat) / 50
            )
            many_shap = best_of(lambda: explainer.shap_values(X10k), 1)
            trees = m.booster.num_trees()
            leaves = int(sum(t["num_leaves"] for t in m.booster.dump_model()["tree_info"]))
            s_one, s_many = f"{one_shap * 1e3:.2f}", f"{many_shap:.2f}"
        else:
            trees, leaves, s_one, s_many = "-", "-", "- (linear SHAP)", "-"
        print(
            f"| {name} | {trees} | {leaves} | {auc:.3f} | {one_native * 1e3:.3f} | {s_one} | {many_native:.3f} | {s_many} | "
            f"{10_000 / many_native:,.0f} | {full * 1e3:.2f} |"
        )


if __name__ == "__main__":
    main()
