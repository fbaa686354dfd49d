"""Serving latency, throughput, cold start and memory of POST /score, in one run on one machine.

    .venv/bin/python -m bench.serve_latency [--n 2000] [--requests 2000] [--concurrency 16]
        [--duration 20] [--mlflow-requests 500] [--skip-mlflow] [--tracking-uri URI] [--json PATH]
        [--ratings none|week1|week2] [--skip-bare]

Against the same registered model (``alliance-risk@champion``):
1. ``bentoml serve serving.service:AllianceRisk`` (2 workers), started as the tests start it:
   cold start (Popen to the first 200 from POST /score with a valid record), resident memory of
   its process tree after warm-up, GET /livez sequentially (a floor for this server and client),
   POST /score sequentially on one keep-alive connection (p50/p90/p99/mean, and the service's own
   ``Server-Timing`` duration), then --concurrency threads (one keep-alive ``httpx.Client`` each)
   for --duration seconds (req/s, errors by status, p50/p99), and memory again after the load;
2. ``mlflow models serve -m models:/alliance-risk@champion --env-manager local`` (POST
   /invocations with ``{"dataframe_records": [record]}``): the same figures (fewer sequential
   requests, --mlflow-requests); --skip-mlflow leaves it out;
2b. the same ``serving.engine.Engine`` behind a bare FastAPI route (``bench/bare_app.py`` under
   ``uvicorn``, as many workers as the service; no BentoML, guard or metrics): the same sequential
   and concurrent figures, and the ratio BentoML / bare (issue 19's goal: /score with ratings
   within 1.2x); --skip-bare leaves it out;
3. in process: ``serving.engine.Engine.score`` on the same records (what /score runs, with and
   without the audit insert) and the bare model calls (``ScoringModel.proba`` and
   ``.contributions`` on one prepared row), in microseconds.
Each server runs alone (the previous one is stopped first); the client runs on the same machine
and shares its CPUs (its CPU use during the concurrent runs is printed).

Model: by default a throw-away tracking store in a temporary folder, with a SYNTHETIC cohort of
--n admissions and a champion trained by the real CLI (``python -m pipelines.train`` with the fast
test settings); --store-dir keeps (and reuses) it; --tracking-uri uses an existing store instead.
Records: --records distinct flat scoring records from a SYNTHETIC intake, gaps dropped.
--ratings week1 / week2 adds weekly WAI-S ratings to every record (issue 19: the client's 12 items,
varying by record, and the counsellor's item mean, for week 1, or weeks 1 and 2), so /score answers
the weekly update; default none (the admission body).

Goals (from the issue) are printed beside the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _common as C

# Goals and the reference from the issue.
FLOOR_P50_MS = 2.4  # bare-floor reference: an empty endpoint of the same stack
FLOOR_RPS = 426.0
GOAL_P50_MS = 4.0
GOAL_P99_MS = 12.0
GOAL_RPS_PER_WORKER = 200.0
GOAL_START_S = 5.0
GOAL_RSS_MB = 450.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.serve_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m = ap.add_argument_group("model")
    C.add_store_options(m)
    r = ap.add_argument_group("requests")
    C.add_options(
        r,
        *C.record_options(seed=23),
        (
            "--requests",
            int,
            2000,
            "sequential POST /score requests, and in-process Engine.score calls "
            "(the issue asks for >= 2000)",
        ),
        (
            "--warmup",
            int,
            200,
            "untimed requests sent on one connection to each server after it answers, followed "
            "by a 1 s burst on 4 connections so that every worker is warm; 0 skips both",
        ),
        (
            "--floor-requests",
            int,
            500,
            "sequential GET /livez requests to the BentoML server as this run's own "
            "client+server floor; 0 skips",
        ),
        (
            "--concurrency",
            int,
            16,
            "client threads (one connection each) in the throughput run",
        ),
        ("--duration", float, 20.0, "seconds of each throughput run"),
        ("--timeout", float, 30.0, "per-request timeout, s"),
        (
            "--starts",
            int,
            1,
            "cold starts of the BentoML server to time (the median is reported; the last "
            "start is measured further)",
        ),
    )
    r.add_argument(
        "--ratings",
        choices=["none", "week1", "week2"],
        default="none",
        help="weekly WAI-S ratings in every body (issue 19): none (default), week 1, or weeks "
        "1 and 2 (client items and counsellor item mean)",
    )
    r.add_argument(
        "--skip-bare",
        action="store_true",
        help="do not measure the same Engine behind a bare FastAPI route",
    )
    f = ap.add_argument_group("mlflow models serve")
    f.add_argument("--skip-mlflow", action="store_true", help="do not measure mlflow models serve")
    C.add_options(f, ("--mlflow-requests", int, 500, "sequential POST /invocations requests"))
    f.add_argument(
        "--mlflow-workers",
        type=int,
        default=C.SERVICE_WORKERS,
        help="uvicorn workers of mlflow models serve (-w); default %(default)s, as many as the "
        "BentoML service runs",
    )
    o = ap.add_argument_group("output")
    o.add_argument("--json", type=Path, help="also write every figure as JSON to this file")
    o.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (server logs, audit files, throw-away store)",
    )
    args = ap.parse_args(argv)
    if args.tracking_uri and args.store_dir:
        ap.error("--tracking-uri and --store-dir exclude each other")
    if min(args.requests, args.records, args.concurrency) < 1 or args.duration <= 0:
        ap.error("--requests, --records, --concurrency and --duration must be positive")
    return args


def prepare_store(args: argparse.Namespace, tmp: Path) -> C.Store:
    """The store to serve: --tracking-uri, else one trained here (in --store-dir or ``tmp``)."""
    if args.tracking_uri:
        if not C.champion_version(args.tracking_uri):
            raise SystemExit(f"{args.tracking_uri} holds no alliance-risk@champion")
        return C.Store(args.tracking_uri)
    root = args.store_dir or (tmp / "store")
    return C.build_store(root, n=args.n, kind=args.kind)


# ---- the servers -------------------------------------------------------------------------------
def measure_bentoml(
    args: argparse.Namespace, uri: str, records: list[dict], tmp: Path
) -> dict[str, Any]:
    import httpx

    items = C.payloads(records)
    first = items[0].body
    starts: list[float] = []
    server = None
    try:
        for i in range(args.starts):
            server = C.start_bentoml(tmp / f"bentoml-{i}", uri)
            starts.append(C.wait_first_good(server, "/score", first))
            C.log(f"bentoml: first 200 from /score {starts[-1]:.2f} s after Popen")
            if i < args.starts - 1:
                server.stop()
        assert server is not None
        ready = C.wait_get_200(server.base, "/readyz")
        with httpx.Client(headers=server.headers, timeout=30) as c:
            info = c.get(server.base + "/model").json()
        C.warm_up(server.base + "/score", server.headers, items, args.warmup)
        mem_warm = server.rss()
        C.log(
            f"bentoml: {info.get('kind')} version {info.get('version')}; "
            f"RSS after warm-up {C.fmt(mem_warm['rss_mb'], '.0f')} MB "
            f"in {mem_warm['processes']} processes"
        )
        floor = None
        if args.floor_requests:
            floor = livez_floor(server.base, args.floor_requests)
        C.log(f"bentoml: {args.requests} sequential POST /score")
        seq = C.run_sequential(
            server.base + "/score", server.headers, items, args.requests, args.timeout
        )
        C.log(f"bentoml: concurrency {args.concurrency} for {args.duration:g} s")
        out, wall, cpu = C.run_concurrent(
            server.base + "/score",
            server.headers,
            items,
            args.concurrency,
            args.duration,
            args.timeout,
        )
        conc = C.summarize_concurrent(out, wall, cpu)
        mem_after = server.rss()
        return {
            "cold_start_s": sorted(starts)[len(starts) // 2],
            "cold_starts_s": starts,
            "readyz_ok": ready,
            "model": {k: info.get(k) for k in ("name", "version", "kind", "trained_at")},
            "rss_after_warmup": mem_warm,
            "rss_after_load": mem_after,
            "livez_floor": floor,
            "sequential": seq,
            "concurrent": conc,
        }
    finally:
        if server is not None:
            server.stop()


def with_ratings(records: list[dict], which: str) -> list[dict]:
    """The records with weekly ratings (--ratings): client items varying with the record,
    counsellor item mean 5.0; week 2 one point lower for every third record (some ruptures)."""
    if which == "none":
        return records
    weeks = (1,) if which == "week1" else (1, 2)
    out = []
    for i, rec in enumerate(records):
        ratings = []
        for w in weeks:
            v = 3 + (i % 5) - (1 if w == 2 and i % 3 == 0 else 0)
            items = {f"wai_{k:02d}": (8 - v if k in (4, 10) else v) for k in range(1, 13)}
            items["wai_07"] = None  # one item left blank, as happens
            ratings.append({"week": w, "rater": "client", "items": items})
            ratings.append({"week": w, "rater": "counsellor", "item_mean": 5.0})
        out.append({**rec, "ratings": ratings})
    return out


def measure_bare(
    args: argparse.Namespace, uri: str, records: list[dict], tmp: Path
) -> dict[str, Any]:
    """The same Engine behind a bare FastAPI route (bench/bare_app.py under uvicorn)."""
    items = C.payloads(records)
    server = C.start_bare(tmp / "bare", uri)
    try:
        start = C.wait_first_good(server, "/score", items[0].body, timeout=300)
        C.log(f"bare FastAPI: first 200 from /score {start:.2f} s after Popen")
        C.warm_up(server.base + "/score", {}, items, args.warmup)
        C.log(f"bare FastAPI: {args.requests} sequential POST /score")
        seq = C.run_sequential(server.base + "/score", {}, items, args.requests, args.timeout)
        C.log(f"bare FastAPI: concurrency {args.concurrency} for {args.duration:g} s")
        out, wall, cpu = C.run_concurrent(
            server.base + "/score", {}, items, args.concurrency, args.duration, args.timeout
        )
        return {
            "cold_start_s": start,
            "rss_after_warmup": server.rss(),
            "rss_after_load": server.rss(),
            "sequential": seq,
            "concurrent": C.summarize_concurrent(out, wall, cpu),
        }
    finally:
        server.stop()


def livez_floor(base: str, n: int) -> dict[str, Any]:
    """GET /livez sequentially: what this client and server cost without the scoring route."""
    import httpx

    lat = []
    with httpx.Client(timeout=30) as c:
        for _ in range(50):
            c.get(base + "/livez")
        for _ in range(n):
            t = time.perf_counter()
            c.get(base + "/livez")
            lat.append(time.perf_counter() - t)
    return C.ms_summary(lat)


def measure_mlflow(
    args: argparse.Namespace, uri: str, records: list[dict], tmp: Path
) -> dict[str, Any]:
    items = C.mlflow_payloads(records)
    server = C.start_mlflow(tmp / "mlflow", uri, args.mlflow_workers)
    try:
        start = C.wait_first_good(server, "/invocations", items[0].body, timeout=300)
        C.log(f"mlflow: first 200 from /invocations {start:.2f} s after Popen")
        C.warm_up(server.base + "/invocations", {}, items, args.warmup)
        mem_warm = server.rss()
        C.log(f"mlflow: {args.mlflow_requests} sequential POST /invocations")
        seq = C.run_sequential(
            server.base + "/invocations", {}, items, args.mlflow_requests, args.timeout
        )
        C.log(f"mlflow: concurrency {args.concurrency} for {args.duration:g} s")
        out, wall, cpu = C.run_concurrent(
            server.base + "/invocations",
            {},
            items,
            args.concurrency,
            args.duration,
            args.timeout,
        )
        conc = C.summarize_concurrent(out, wall, cpu)
        return {
            "cold_start_s": start,
            "workers": args.mlflow_workers,
            "rss_after_warmup": mem_warm,
            "rss_after_load": server.rss(),
            "sequential": seq,
            "concurrent": conc,
        }
    finally:
        server.stop()


# ---- in process --------------------------------------------------------------------------------
def _us(seconds: list[float]) -> dict[str, Any]:
    s = C.ms_summary(seconds)
    return {k: (v * 1000.0 if isinstance(v, float) else v) for k, v in s.items()}


def measure_in_process(
    args: argparse.Namespace, uri: str, records: list[dict], tmp: Path
) -> dict[str, Any]:
    from features.build import FeatureBuilder
    from features.scoring import ITEMS_USED, score_record
    from models.lifecycle.resolve import load
    from serving.audit import AuditLog
    from serving.engine import Engine
    from validation.record import check_record

    t = time.perf_counter()
    champion = load(uri, lean=True)
    load_s = time.perf_counter() - t
    audit = AuditLog(tmp / "inprocess-audit.sqlite", C.AUDIT_HASH_KEY)
    engine = Engine(champion, audit, 1000)
    n = args.requests
    for rec in records[: min(len(records), args.warmup)]:
        engine.score(rec)

    # The two variants alternate record by record (and in alternating order), so that cache
    # warmth and machine load fall on both alike.
    with_audit: list[float] = []
    no_audit: list[float] = []
    bad = 0
    pc = time.perf_counter
    for i in range(n):
        rec = records[i % len(records)]
        for audited in (True, False) if i % 2 == 0 else (False, True):
            t0 = pc()
            status = engine.score(rec, audit=audited)[0]
            (with_audit if audited else no_audit).append(pc() - t0)
            bad += status != 200

    rows = []
    for rec in records:
        validated, _ = check_record({k: v for k, v in rec.items() if k != "ratings"})
        scored, _ = score_record(validated.model_dump(exclude_none=True))
        scored.pop(ITEMS_USED, None)
        rows.append(FeatureBuilder.transform_record(scored))
    model = champion.model

    def bare(fn) -> list[float]:
        lat = []
        pc = time.perf_counter
        for i in range(n):
            row = rows[i % len(rows)]
            t0 = pc()
            fn(row)
            lat.append(pc() - t0)
        return lat

    proba = bare(model.proba)
    contrib = bare(model.contributions)
    update = None
    if args.ratings != "none":  # the weekly update alone, on an explanation already computed
        from models.scoring.explain import explain_matrix
        from models.scoring.weekly import update as weekly_update

        exs = [explain_matrix(model, row) for row in rows]
        update = []
        for i in range(n):
            k = i % len(rows)
            t0 = pc()
            weekly_update(model, rows[k], records[k]["ratings"], exs[k], validated=True)
            update.append(pc() - t0)
    audit.close()
    return {
        "load_champion_s": load_s,
        "kind": model.kind,
        "version": champion.version,
        "engine_score_us": _us(with_audit),
        "engine_score_no_audit_us": _us(no_audit),
        "model_proba_us": _us(proba),
        "model_contributions_us": _us(contrib),
        "weekly_update_us": _us(update) if update else None,
        "non_200": bad,
    }


# ---- report ------------------------------------------------------------------------------------
def _met(value: float | None, goal: float, below: bool) -> str:
    if value is None:
        return "-"
    return "yes" if (value <= goal if below else value >= goal) else "NO"


def report(res: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.table import Table

    con = C.console()
    f = C.fmt
    mach, b, m, ip = res["machine"], res.get("bentoml"), res.get("mlflow"), res["in_process"]
    con.print(f"bodies: ratings {args.ratings}", highlight=False)
    con.print(
        f"\nmachine: {mach['cpus']} CPUs ({mach['cpu']}), Python {mach['python']}, "
        f"bentoml {mach['bentoml']}, mlflow {mach['mlflow']}, httpx {mach['httpx']}; "
        "load average at start "
        + "/".join(f"{x:.2f}" for x in mach["loadavg_start"])
        + ", at end "
        + "/".join(f"{x:.2f}" for x in res["loadavg_end"])
    )
    mod = res["model"]
    con.print(
        f"model: alliance-risk version {mod['version']} ({mod['kind']}), store {mod['uri']}"
        + (f", trained here in {mod['train_s']:.0f} s" if mod.get("train_s") else "")
        + f"; {res['records']} distinct SYNTHETIC records"
        + (
            f" ({res['records_dropped']} generated records refused)"
            if res["records_dropped"]
            else ""
        )
    )

    t = Table(title="Sequential, one keep-alive connection (ms)")
    for col in ("target", "n", "p50", "p90", "p99", "mean", "max", "server p50", "non-200"):
        t.add_column(col, justify="left" if col == "target" else "right")
    stats = ("p50", "p90", "p99", "mean", "max")

    def row(target: str, d: dict, server: str, non_200: str, scale: float = 1.0) -> None:
        vals = (d[k] if scale == 1 else d[k] / scale for k in stats)
        t.add_row(target, f(d["n"]), *(f(v) for v in vals), server, non_200)

    if b:
        s = b["sequential"]
        srv = s["server_timing_ms"] or {}
        row("bentoml POST /score", s["latency_ms"], f(srv.get("p50")), f(s["non_200"]))
        if b["livez_floor"]:
            row("bentoml GET /livez (floor)", b["livez_floor"], "-", "-")
    bare = res.get("bare")
    if bare:
        s = bare["sequential"]
        row("bare FastAPI POST /score (same Engine)", s["latency_ms"], "-", f(s["non_200"]))
    if m:
        s = m["sequential"]
        row("mlflow POST /invocations", s["latency_ms"], "-", f(s["non_200"]))
    row("in process Engine.score", ip["engine_score_us"], "-", f(ip["non_200"]), scale=1000)
    t.add_row("goal /score", "", f(GOAL_P50_MS), "", f(GOAL_P99_MS), "", "", "", "")
    t.add_row("issue's bare floor", "", f(FLOOR_P50_MS), "", "", "", "", "", "")
    con.print(t)

    t = Table(
        title=f"Concurrency {args.concurrency}, {args.duration:g} s "
        "(closed loop, threads with one connection each)"
    )
    for col in (
        "target",
        "requests",
        "req/s",
        "per worker",
        "p50 ms",
        "p99 ms",
        "max ms",
        "statuses",
        "errors",
        "client CPU",
    ):
        t.add_column(col, justify="left" if col in ("target", "statuses") else "right")
    for name, r, workers in (
        ("bentoml POST /score", b, C.SERVICE_WORKERS),
        ("bare FastAPI POST /score", res.get("bare"), C.SERVICE_WORKERS),
        ("mlflow POST /invocations", m, args.mlflow_workers),
    ):
        if not r:
            continue
        c = r["concurrent"]
        lat = c["latency_ok_ms"]
        t.add_row(
            name,
            f(c["requests"]),
            f(c["ok_per_s"], ".0f"),
            f(c["ok_per_s"] / workers if c["ok_per_s"] else None, ".0f") + f" ({workers} w)",
            f(lat["p50"]),
            f(lat["p99"]),
            f(lat["max"]),
            " ".join(f"{k}:{v}" for k, v in c["statuses"].items())
            + "".join(f" {k}:{v}" for k, v in c["exceptions"].items()),
            f(c["errors"]),
            f"{c['client_cpu_share']:.0%}",
        )
    t.add_row(
        "goal /score",
        "",
        f(GOAL_RPS_PER_WORKER * C.SERVICE_WORKERS, ".0f"),
        f(GOAL_RPS_PER_WORKER, ".0f"),
        "",
        "",
        "",
        "",
        "0",
        "",
    )
    t.add_row("issue's bare floor", "", f(FLOOR_RPS, ".0f"), "", "", "", "", "", "", "")
    con.print(t)

    t = Table(title="Start and memory (process tree: RSS sum; PSS sum splits shared pages)")
    for col in (
        "target",
        "cold start s",
        "RSS warm MB",
        "PSS warm MB",
        "processes",
        "RSS after load MB",
    ):
        t.add_column(col, justify="left" if col == "target" else "right")
    for name, r in (("bentoml serve", b), ("mlflow models serve", m)):
        if not r:
            continue
        w, a = r["rss_after_warmup"], r["rss_after_load"]
        starts = r.get("cold_starts_s")
        t.add_row(
            name,
            f(r["cold_start_s"])
            + (f" (median of {len(starts)})" if starts and len(starts) > 1 else ""),
            f(w["rss_mb"], ".0f"),
            f(w["pss_mb"], ".0f"),
            f(w["processes"]),
            f(a["rss_mb"], ".0f"),
        )
    t.add_row(
        "in process load_champion",
        f(ip["load_champion_s"]),
        "",
        "",
        "",
        "",
    )
    t.add_row("goal bentoml", f(GOAL_START_S, ".1f"), f(GOAL_RSS_MB, ".0f"), "", "", "")
    con.print(t)
    for name, r in (("bentoml", b), ("mlflow", m)):
        if r:
            con.print(f"{name} processes after warm-up:")
            for e in r["rss_after_warmup"]["each"]:
                con.print(
                    f"  pid {e['pid']}: RSS {e['rss_mb']:.0f} MB, PSS {f(e.get('pss_mb'), '.0f')} MB"
                    f"  {e.get('cmd', '')}",
                    highlight=False,
                    markup=False,
                )

    t = Table(title=f"In process, {ip['kind']} model (µs per record)")
    for col in ("call", "n", "p50", "p90", "p99", "mean"):
        t.add_column(col, justify="left" if col == "call" else "right")
    for label, key in (
        ("Engine.score (validate, score, explain, audit)", "engine_score_us"),
        ("Engine.score(audit=False)", "engine_score_no_audit_us"),
        ("ScoringModel.proba(row)", "model_proba_us"),
        ("ScoringModel.contributions(row)", "model_contributions_us"),
        ("weekly.update(row, ratings, explanation)", "weekly_update_us"),
    ):
        s = ip.get(key)
        if s is None:
            continue
        t.add_row(label, f(s["n"]), *(f(s[k], ".1f") for k in ("p50", "p90", "p99", "mean")))
    con.print(t)

    if b:
        t = Table(title="Goals (issue) for the BentoML service")
        for col in ("goal", "measured", "met"):
            t.add_column(col, justify="left" if col == "goal" else "right")
        p50 = b["sequential"]["latency_ms"]["p50"]
        p99 = b["sequential"]["latency_ms"]["p99"]
        rps = b["concurrent"]["ok_per_s"]
        per_w = rps / C.SERVICE_WORKERS if rps else None
        rss = b["rss_after_warmup"]["rss_mb"]
        rows = [
            (
                f"/score p50 <= {GOAL_P50_MS:g} ms (sequential)",
                f(p50),
                _met(p50, GOAL_P50_MS, True),
            ),
            (
                f"/score p99 <= {GOAL_P99_MS:g} ms (sequential)",
                f(p99),
                _met(p99, GOAL_P99_MS, True),
            ),
            (
                f">= {GOAL_RPS_PER_WORKER:g} req/s per worker at concurrency {args.concurrency}",
                f(per_w, ".0f"),
                _met(per_w, GOAL_RPS_PER_WORKER, False),
            ),
            (
                f"cold start <= {GOAL_START_S:g} s",
                f(b["cold_start_s"]),
                _met(b["cold_start_s"], GOAL_START_S, True),
            ),
            (
                f"RSS after warm-up <= {GOAL_RSS_MB:g} MB",
                f(rss, ".0f"),
                _met(rss, GOAL_RSS_MB, True),
            ),
            (
                "no errors under load",
                f(b["concurrent"]["errors"]),
                "yes" if b["concurrent"]["errors"] == 0 else "NO",
            ),
        ]
        for row in rows:
            t.add_row(*row)
        con.print(t)
        bare = res.get("bare")
        if bare:
            bp50 = bare["sequential"]["latency_ms"]["p50"]
            brps = bare["concurrent"]["ok_per_s"]
            ratio = p50 / bp50 if p50 and bp50 else None
            con.print(
                f"BentoML / bare FastAPI (same Engine, ratings {args.ratings}): sequential p50 "
                f"{f(p50)} / {f(bp50)} ms = {f(ratio)}x (issue 19 goal <= 1.2x: "
                f"{_met(ratio, 1.2, True)}); req/s at concurrency {args.concurrency} "
                f"{f(rps, '.0f')} / {f(brps, '.0f')}",
                highlight=False,
            )
        if args.concurrency != 16 or args.duration < 20 or args.requests < 2000:
            con.print(
                "note: shorter or different than the issue's protocol (>= 2000 sequential, "
                "concurrency 16 for 20 s)."
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    res: dict[str, Any] = {"machine": C.machine(), "args": vars(args).copy()}
    res["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in res["args"].items()}
    try:
        store = prepare_store(args, tmp)
        records, dropped = C.scoring_records(args.records, args.seed)
        if not records:
            raise SystemExit("no valid records were generated")
        records = with_ratings(records, args.ratings)
        res["records"], res["records_dropped"] = len(records), dropped
        res["bentoml"] = measure_bentoml(args, store.uri, records, tmp)
        res["bare"] = None if args.skip_bare else measure_bare(args, store.uri, records, tmp)
        res["mlflow"] = (
            None
            if args.skip_mlflow or args.ratings != "none"  # mlflow's pyfunc takes no ratings
            else measure_mlflow(args, store.uri, records, tmp)
        )
        C.log("in process: Engine.score and the bare model calls")
        res["in_process"] = measure_in_process(args, store.uri, records, tmp)
        res["model"] = {
            "uri": store.uri,
            "version": res["in_process"]["version"],
            "kind": res["in_process"]["kind"],
            "train_s": store.train_seconds,
        }
        res["loadavg_end"] = list(os.getloadavg())
        report(res, args)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=2, default=str))
            print(f"figures written to {args.json}")
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
