"""How much room each SYNTHETIC world leaves above a linear model, at a size where estimation
noise no longer matters.

    .venv/bin/python -m experiments.linear_gap --worlds default,hinges,nonlinear

Why: the learning-curve goal "in non-linear worlds at n >= 4,000 the champion beats the ridge
baseline" only means something if a linear model cannot reach the oracle there. This trains the
learning curve's ridge baseline (bench/learning_curve.py) on a large cohort (default 20,000, seed
4242) and scores it and the oracle on the learning curve's test cohort of the same world (cached
in --workdir, so a learning-curve run with the same --workdir reuses it). Prints AUROC, Brier and
calibration slope and the gap to the oracle. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.learning_curve import ORACLE, TEST_N, _load, _test_cohort, ridge_baseline


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.linear_gap", description=__doc__)
    p.add_argument("--worlds", default="default,hinges,nonlinear")
    p.add_argument("--n", type=int, default=20_000, help="training size of the ridge baseline")
    p.add_argument("--seed", type=int, default=4242, help="training cohort seed")
    p.add_argument("--test-n", type=int, default=TEST_N)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/lc-full"))
    a = p.parse_args(argv)
    import pandas as pd

    from models.building.metrics import point_metrics
    from simulator.generator import generate, write

    a.workdir.mkdir(parents=True, exist_ok=True)
    print(f"SYNTHETIC data. Ridge baseline trained on n = {a.n} (seed {a.seed}) vs the oracle")
    for w in a.worlds.split(","):
        t = time.perf_counter()
        test = _test_cohort(w, a.test_n, a.workdir)
        tr = a.workdir / f"train_{w}_{a.n}_{a.seed}"
        if not (tr / "intake.csv").exists():
            write(generate(a.n, seed=a.seed, world=w, ground_truth=False), tr)
        f, y = _load(tr)
        tf, yt = _load(test)
        gt = pd.read_csv(test / "ground_truth.csv", dtype={"admission_id": "str"})
        po = gt.set_index("admission_id")[ORACLE].reindex(tf["admission_id"].astype(str))
        o = point_metrics(yt, po.to_numpy())
        r = point_metrics(yt, ridge_baseline(f, y)(tf))
        print(
            f"{w:14s} ridge AUROC {r['auroc']:.4f} Brier {r['brier']:.4f} slope "
            f"{r['cal_slope']:.2f} | oracle AUROC {o['auroc']:.4f} Brier {o['brier']:.4f} | "
            f"gap AUROC {o['auroc'] - r['auroc']:+.4f} Brier {r['brier'] - o['brier']:+.4f} "
            f"({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
