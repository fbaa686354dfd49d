"""Batch scoring throughput: scoring with explanations vs the model's own contribution call.

    .venv/bin/python -m bench.batch_throughput [--n 50000] [--chunk-size 10000] [--repeat 3]

On a SYNTHETIC cohort of --n admissions written as a flat CSV, for each model:
- end to end: ``batch.scoring.score_file`` (read CSV chunks, validate every row, score items,
  build the matrix, contributions, top drivers, write CSV + rejects) in a fresh child process,
  whose peak RSS (/proc/self/status VmHWM; getrusage ru_maxrss elsewhere) is the batch's memory,
  imports included;
- in process: ``ScoringModel.contributions`` on the already prepared matrix, in chunks of the
  same size (best of --repeat), i.e. the floor that any explained scoring pays;
- the ratio (goal from the issue: >= 0.80) and a per-stage breakdown of one pass in process.
Models: the registry champion (MLFLOW_TRACKING_URI, if one exists), and two LightGBM models
fitted here (the compact tuned one the pipeline builds, and a 300-tree depth-6 reference).
Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import BIG_LIGHTGBM, best_of
from harness.cohort import labelled_matrix

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _child(model_dir: str, bands: dict, csv: str, out: str, chunk: int, q) -> None:
    from batch.scoring import score_file
    from features.settings import BandConfig
    from models.lifecycle.resolve import LoadedModel
    from models.scoring.scorer import ScoringModel

    m = ScoringModel.load(model_dir)
    lm = LoadedModel(m, BandConfig(**bands), "bench", "0", "")
    t = time.perf_counter()
    s = score_file(csv, out, lm, chunk_size=chunk, top_n=3)
    secs = time.perf_counter() - t
    q.put((secs, s.rows, s.scored, peak_rss_kb()))


def peak_rss_kb() -> float:
    """This process's peak RSS. /proc VmHWM, because Linux carries ru_maxrss across fork+exec
    (a spawned child would report its parent's peak); getrusage where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def end_to_end(model, csv: Path, tmp: Path, chunk: int) -> tuple[float, int, int, float]:
    d = tmp / f"model-{model.kind}-{id(model)}"
    model.save(d)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    bands = model.reference.get("bands", {"moderate_from": 0.2, "high_from": 0.4})
    p = ctx.Process(target=_child, args=(str(d), bands, str(csv), str(tmp / "out.csv"), chunk, q))
    p.start()
    secs, rows, scored, rss_kb = q.get()
    p.join()
    return secs, rows, scored, rss_kb / 1024


def stages(model, csv: Path, chunk: int) -> dict[str, float]:
    """Seconds per stage of one in-process pass (same code as ChunkScorer.run)."""
    import pandas as pd

    from batch.scoring import (
        RowValidator,
        explanation_frame,
        iter_chunks,
        open_source,
    )
    from features.build import typed_records
    from features.settings import BandConfig
    from models.lifecycle.resolve import LoadedModel
    from models.scoring.explain import assessed_matrix, explain_contributions, group_log_odds
    from models.scoring.predict import frame_to_matrix

    lm = LoadedModel(model, BandConfig(**model.reference.get("bands", {})), "b", "0", "")
    v = RowValidator()
    t: dict[str, float] = dict.fromkeys(
        ["read", "validate", "features", "contributions", "explain", "write"], 0.0
    )
    src = open_source(csv)
    it = iter_chunks(src, chunk)
    with tempfile.TemporaryDirectory() as d:
        while True:
            a = time.perf_counter()
            try:
                frame, _ = next(it)
            except StopIteration:
                break
            b = time.perf_counter()
            v.screen(frame)
            c = time.perf_counter()
            X, scored, _ = frame_to_matrix(typed_records(frame))
            e = time.perf_counter()
            contrib = model.contributions(X)
            f = time.perf_counter()
            ex = explain_contributions(
                group_log_odds(model, contrib), contrib[:, -1], assessed_matrix(X)
            )
            out = explanation_frame(lm, frame["admission_id"].to_numpy(object), ex, None, 3)
            g = time.perf_counter()
            out.to_csv(Path(d) / "o.csv", mode="a", header=False, index=False)
            h = time.perf_counter()
            for k, x in zip(t, (b - a, c - b, e - c, f - e, g - f, h - g), strict=True):
                t[k] += x
    _ = pd
    return t


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--chunk-size", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--no-lightgbm", action="store_true", help="only the registry champion")
    args = ap.parse_args()

    import lightgbm as lgb

    from features.build import MONOTONE, scoring_frame, typed_records
    from features.settings import load_settings
    from models.building.candidates import fit_candidate
    from models.scoring.predict import frame_to_matrix
    from models.scoring.reference import reference_cohort
    from models.scoring.scorer import ScoringModel
    from simulator.generator import generate

    settings = load_settings()
    models: list[tuple[str, ScoringModel]] = []
    try:
        from models.lifecycle.resolve import load as load_model

        lm = load_model(settings.tracking_uri)
        models.append((f"registry champion v{lm.version} ({lm.model.kind})", lm.model))
    except Exception as exc:  # no store / no champion: say so and go on
        print(f"(no registry champion: {exc})")
    if not args.no_lightgbm:
        scored, X, y, groups = labelled_matrix(3000, seed=7, label_cfg=settings.label)
        ref = reference_cohort(scored, settings.bands.model_dump(), settings.label.model_dump())
        compact = fit_candidate("lightgbm", X, y, groups, 2, 7)
        big = ScoringModel(
            "lightgbm",
            {"trees": 300, "max_depth": 6},
            booster=lgb.train(
                {**BIG_LIGHTGBM, "monotone_constraints": list(MONOTONE)},
                lgb.Dataset(X, label=y),
                num_boost_round=300,
            ),
        )
        for m in (compact, big):
            m.reference = ref
        trees = compact.booster.num_trees()
        models += [
            (f"compact monotone LightGBM ({trees} trees)", compact),
            ("reference LightGBM (300 trees, depth 6)", big),
        ]

    t = time.perf_counter()
    cohort = generate(args.n, seed=args.seed, ground_truth=False)
    flat = scoring_frame(cohort.intake, cohort.counsellors)
    gen_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        csv = tmp / "records.csv"
        flat.to_csv(csv, index=False)
        Xall, _, _ = frame_to_matrix(typed_records(flat))
        mb = csv.stat().st_size / 2**20
        print(
            f"SYNTHETIC cohort n={args.n} (generated in {gen_s:.1f} s), flat CSV {mb:.1f} MB, "
            f"{flat.shape[1]} columns; chunk size {args.chunk_size}; one core for the model "
            f"(num_threads=1); cpus on this machine: {os.cpu_count()}\n"
        )
        print(
            "| model | batch scoring with top-3 drivers, end to end (rows/s) | "
            "contributions on the prepared matrix (rows/s) | ratio | batch peak RSS (MB) |"
        )
        print("|---|---|---|---|---|")
        breakdowns = []
        for name, m in models:
            chunks = [Xall[i : i + args.chunk_size] for i in range(0, len(Xall), args.chunk_size)]
            contrib_s = best_of(
                lambda m=m, chunks=chunks: [m.contributions(x) for x in chunks], args.repeat
            )
            secs, rows, scored, rss = end_to_end(m, csv, tmp, args.chunk_size)
            e2e, native = rows / secs, len(Xall) / contrib_s
            print(f"| {name} | {e2e:,.0f} | {native:,.0f} | {e2e / native:.2f} | {rss:,.0f} |")
            breakdowns.append((name, stages(m, csv, args.chunk_size)))
        print("\nPer-stage seconds of one in-process pass (same code path):\n")
        keys = list(breakdowns[0][1])
        print("| model | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for name, st in breakdowns:
            print(f"| {name} | " + " | ".join(f"{st[k]:.2f}" for k in keys) + " |")
    _ = np


if __name__ == "__main__":
    main()
