"""Wall time, peak memory and learning curve of the whole training pipeline.

    .venv/bin/python -m bench.train_scaling [--sizes 5000 50000 300000] [--seed 7] [--keep DIR]

For each cohort size: generate a SYNTHETIC cohort (timed apart; reused from --keep DIR when
already there), then run the real `python -m pipelines.train --oracle` in a fresh process against
a throw-away tracking store, and read back from MLflow the evaluation protocol, the champion
candidate's AUROC, calibration slope and Brier score (out-of-fold under CV, held-out above the
switch) next to the oracle's (the generator's true probabilities on the same clients), and the
wall time and peak memory of every step. Prints tables; asserts nothing. Goal (issue 10 item 8):
300,000 admissions in under 15 minutes with peak memory under 6 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """Run a command; return (exit code, wall seconds, peak RSS in MB, output)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        out.seek(0)
        text = out.read()
    return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss / 1024, text


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000, 300000])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="folder where generated cohorts are kept and reused")
    args = ap.parse_args()

    import mlflow
    from mlflow.tracking import MlflowClient

    rows = []
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"bench_train_{n}_"))
        data = (args.keep / f"n{n}_seed{args.seed}") if args.keep else root / "data"
        code, gen_s, text = 0, 0.0, ""
        if not (data / "intake.csv").exists():
            code, gen_s, _, text = run_child(
                [
                    sys.executable,
                    "-m",
                    "pipelines.simulate",
                    "--n",
                    str(n),
                    "--seed",
                    str(args.seed),
                    "--out",
                    str(data),
                ],
                dict(os.environ),
            )
        if code:
            print(text[-2000:])
            raise SystemExit(f"simulate failed for n={n}")
        uri = f"sqlite:///{root / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "GX_ANALYTICS_ENABLED": "false"}
        code, wall, peak, text = run_child(
            [sys.executable, "-m", "pipelines.train", "--data", str(data), "--oracle"], env
        )
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs(client.search_experiments()[0].experiment_id) if code == 0 else []
        m = runs[0].data.metrics if runs else {}
        cand = runs[0].data.params.get("champion_candidate", "?") if runs else "failed"
        outcome = (
            "champion"
            if "is the new champion" in text
            else ("challenger" if "challenger" in text else f"exit {code}")
        )
        rows.append((n, gen_s, wall, peak, cand, outcome, m))
        tags = runs[0].data.tags if runs else {}
        steps = sorted(k[5:-2] for k in m if k.startswith("step_") and k.endswith("_s"))
        print(
            f"n={n}: protocol {tags.get('evaluation_protocol', '?')}; per step (s / peak MB so far):"
        )
        for k in steps:
            print(
                f"    {k}: {m[f'step_{k}_s']:.1f} s / {m.get(f'step_{k}_peak_mb', float('nan')):.0f} MB"
            )
        inner = {k[5:]: v for k, v in m.items() if k.startswith("time_")}
        print("    inside training: " + ", ".join(f"{k} {v:.1f}" for k, v in inner.items()))
        print(
            f"n={n}: simulate {gen_s:.1f}s; train {wall:.1f}s, peak RSS {peak:.0f} MB; {cand} ({outcome}); "
            f"AUROC {m.get('test_auroc', float('nan')):.3f} vs oracle {m.get('oracle_auroc', float('nan')):.3f}; "
            f"slope {m.get('test_cal_slope', float('nan')):.2f}; Brier {m.get('test_brier', float('nan')):.4f} vs {m.get('oracle_brier', float('nan')):.4f}",
            flush=True,
        )
        if code:
            print(text[-3000:])

    print(
        "\n| n clients | simulate (s) | train pipeline (s) | peak RSS (MB) | champion candidate | registry | test AUROC | oracle AUROC | gap | cal. slope | Brier | oracle Brier | Brier gap |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, gen_s, wall, peak, cand, outcome, m in rows:
        a, oa = m.get("test_auroc", float("nan")), m.get("oracle_auroc", float("nan"))
        b, ob = m.get("test_brier", float("nan")), m.get("oracle_brier", float("nan"))
        print(
            f"| {n:,} | {gen_s:.1f} | {wall:.1f} | {peak:.0f} | {cand} | {outcome} | {a:.3f} | {oa:.3f} | {a - oa:+.3f} | "
            f"{m.get('test_cal_slope', float('nan')):.2f} | {b:.4f} | {ob:.4f} | {(b - ob) / ob:+.1%} |"
        )


if __name__ == "__main__":
    main()
