"""Load test of POST /score: --concurrency clients for --duration seconds, with malformed records.

    .venv/bin/python -m bench.load [--concurrency 32] [--duration 60] [--malformed 0.05]
    .venv/bin/python -m bench.load --duration 1200 --requests 100000   # memory over 100k requests
    .venv/bin/python -m bench.load --url http://127.0.0.1:3000 --key KEY [--server-pid PID]

Closed loop: each of --concurrency threads holds one keep-alive ``httpx.Client`` and sends one
request after another. About --malformed of the bodies break the contract (out-of-range value,
unknown code, missing required field, unknown field, wrong type, broken JSON, a JSON array): they
must be answered 400/422 and are counted apart. An error is a 5xx answer or a request that raised
(connection error, timeout); a valid record not answered 200, or a malformed one answered 2xx, is
reported as unexpected.

Reports total requests, req/s, errors by status and exception, p50/p90/p99/max latency of the
valid records, throughput and p99 per --window seconds (to show drift over the run), and the
server's resident memory (RSS sum of its process tree) at the start, the end and the peak of the
run (sampled every --sample-every s), and at --milestones requests completed (2,000, 20,000,
50,000, 100,000 by default: the first sample after that request finished), which is how the
memory goal is stated (docs/benchmarks.md, "Memory"). --requests ends the run at a request count.

Server: by default it starts its own ``bentoml serve serving.service:AllianceRisk`` (as the tests
do) on a throw-away tracking store with a champion trained by the real CLI on a SYNTHETIC cohort
(see bench/serve_latency.py; --store-dir keeps and reuses it, --tracking-uri uses an existing
store). With --url it loads an existing server instead (--key for its API key; memory only with
--server-pid).

Exit code: 0 when no request got a 5xx or raised, 1 otherwise, 2 when the run could not start
(the server did not come up, or a valid record was not answered 200 before the run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench import _common as C


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = ap.add_argument_group("server")
    s.add_argument(
        "--url",
        help="base URL of a running service (e.g. http://127.0.0.1:3000); default: start one here",
    )
    s.add_argument(
        "--key",
        default=os.environ.get("ALLIANCE_RISK_SERVING__API_KEY"),
        help="API key of the --url server (default: $ALLIANCE_RISK_SERVING__API_KEY)",
    )
    s.add_argument(
        "--server-pid",
        type=int,
        help="with --url: pid of the server's top process, to report the memory of its tree",
    )
    C.add_store_options(s)
    r = ap.add_argument_group("load")
    C.add_options(
        r,
        ("--concurrency", int, 32, "client threads, one connection each"),
        ("--duration", float, 60.0, "seconds of load"),
        (
            "--requests",
            int,
            None,
            "stop after this many requests, if --duration has not ended first (give a long "
            "--duration with it to run to a request count)",
        ),
        (
            "--malformed",
            float,
            0.05,
            "fraction of bodies that break the contract and must get 400/422",
        ),
        *C.record_options(seed=29),
        ("--timeout", float, 30.0, "per-request timeout, s; a timeout counts as an error"),
        ("--warmup", int, 100, "untimed requests before the run, for a server started here"),
    )
    o = ap.add_argument_group("output")
    C.add_options(
        o,
        ("--window", float, 10.0, "seconds per row of the over-time table"),
        ("--sample-every", float, 1.0, "seconds between memory samples during the run"),
    )
    o.add_argument(
        "--milestones",
        default="2000,20000,50000,100000",
        help="request counts at which to report the server's RSS, comma-separated "
        "(default %(default)s; counts the run did not reach are left out)",
    )
    o.add_argument("--json", type=Path, help="also write every figure as JSON to this file")
    o.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (server log, audit file, throw-away store)",
    )
    args = ap.parse_args(argv)
    if args.url and (args.tracking_uri or args.store_dir):
        ap.error("--url excludes --tracking-uri and --store-dir")
    if args.server_pid and not args.url:
        ap.error("--server-pid goes with --url")
    if args.url and not args.key:
        ap.error("--url needs --key (or $ALLIANCE_RISK_SERVING__API_KEY)")
    if not 0.0 <= args.malformed < 1.0:
        ap.error("--malformed must be in [0, 1)")
    if args.concurrency < 1 or args.duration <= 0 or args.records < 1:
        ap.error("--concurrency, --duration and --records must be positive")
    return args


class MemorySampler(threading.Thread):
    """RSS sum of a process tree every ``every`` seconds, until stopped."""

    def __init__(self, pid: int, every: float):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []  # (time.perf_counter(), RSS MB)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            m = C.tree_memory(self.pid, with_pss=False)
            if m["rss_mb"] is not None:
                self.samples.append((time.perf_counter(), m["rss_mb"]))
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


def windows(outcomes: list[C.Outcome], width: float, wall: float) -> list[dict[str, Any]]:
    """Per ``width`` seconds of the run: requests, req/s, valid-record p99, errors. (The last
    window is shorter when the run is not a multiple of ``width``; its rate uses its length.)"""
    import numpy as np

    buckets: dict[int, list[C.Outcome]] = defaultdict(list)
    for o in outcomes:
        buckets[int(o.t_end // width)].append(o)
    rows = []
    for k in sorted(buckets):
        os_ = buckets[k]
        ok = [o.latency * 1000 for o in os_ if o.expect == "ok" and o.status == 200]
        span = max(min(width, wall - k * width), 1e-9)
        rows.append(
            {
                "from_s": k * width,
                "requests": len(os_),
                "req_per_s": len(os_) / span,
                "p50_ms": float(np.percentile(ok, 50)) if ok else None,
                "p99_ms": float(np.percentile(ok, 99)) if ok else None,
                "errors": sum(1 for o in os_ if o.status is None or o.status >= 500),
            }
        )
    return rows


def rss_at_requests(
    outcomes: list[C.Outcome], samples: list[tuple[float, float]], milestones: list[int]
) -> list[dict[str, Any]]:
    """RSS of the server's tree when the run had completed each milestone's number of requests:
    the first memory sample taken at or after the moment the milestone-th request finished.
    ``samples`` times are relative to the start of the run, like the outcomes'."""
    ends = sorted(o.t_end for o in outcomes)
    rows = []
    for m in milestones:
        if m < 1 or m > len(ends):
            continue
        t = ends[m - 1]
        after = [(ts, mb) for ts, mb in samples if ts >= t]
        if not after:
            continue
        ts, mb = after[0]
        rows.append({"requests": m, "at_s": t, "sample_s": ts, "rss_mb": mb})
    base = rows[0]["rss_mb"] if rows else None
    for r in rows:
        r["vs_first_pct"] = (r["rss_mb"] / base - 1.0) * 100.0 if base else None
    return rows


def log_problems(path: Path | None) -> dict[str, int]:
    """ERROR/CRITICAL lines and 'scoring failed' lines in the server log (own server only)."""
    if path is None or not path.is_file():
        return {}
    text = path.read_text(errors="replace")
    return {
        "error_lines": sum(1 for line in text.splitlines() if "[ERROR]" in line),
        "critical_lines": sum(1 for line in text.splitlines() if "[CRITICAL]" in line),
        "scoring_failed": text.count("scoring failed"),
        "tracebacks": text.count("Traceback"),
    }


def report(res: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.table import Table

    con = C.console()
    f = C.fmt
    s = res["summary"]
    mach = res["machine"]
    con.print(
        f"\n{args.concurrency} clients for {args.duration:g} s against {res['target']} "
        f"({res.get('model', '')}); {res['records']} SYNTHETIC records, "
        f"{args.malformed:.0%} malformed; {mach['cpus']} CPUs, load average at start "
        + "/".join(f"{x:.2f}" for x in mach["loadavg_start"])
        + ", at end "
        + "/".join(f"{x:.2f}" for x in res["loadavg_end"]),
        highlight=False,
    )
    t = Table(title="Requests")
    for col in ("what", "count", "per s"):
        t.add_column(col, justify="left" if col == "what" else "right")
    wall = s["wall_s"]
    t.add_row("requests (all)", f(s["requests"]), f(s["req_per_s"], ".0f"))
    t.add_row("valid records answered 200", f(s["ok"]), f(s["ok_per_s"], ".0f"))
    n4 = sum(s["expected_4xx"].values())
    t.add_row(
        "malformed answered 4xx (expected) "
        + " ".join(f"{k}:{v}" for k, v in s["expected_4xx"].items()),
        f(n4),
        f(n4 / wall if wall else None, ".1f"),
    )
    t.add_row(
        "ERRORS: 5xx + exceptions",
        f(s["errors"]),
        "",
    )
    t.add_row(
        "  by status: " + (" ".join(f"{k}:{v}" for k, v in res["error_statuses"].items()) or "-"),
        f(s["errors_5xx"]),
        "",
    )
    t.add_row(
        "  by exception: " + (" ".join(f"{k}:{v}" for k, v in s["exceptions"].items()) or "-"),
        f(sum(s["exceptions"].values())),
        "",
    )
    t.add_row(
        "unexpected: " + (" ".join(f"{k}:{v}" for k, v in s["unexpected"].items()) or "-"),
        f(sum(s["unexpected"].values())),
        "",
    )
    t.add_row("client CPU share of one core", f"{s['client_cpu_share']:.0%}", "")
    con.print(t)

    t = Table(title="Latency (ms)")
    for col in ("requests", "n", "p50", "p90", "p99", "mean", "max"):
        t.add_column(col, justify="left" if col == "requests" else "right")
    for label, key in (("valid, 200", "latency_ok_ms"), ("all answered", "latency_all_ms")):
        lat = s[key]
        t.add_row(label, f(lat["n"]), *(f(lat[k]) for k in ("p50", "p90", "p99", "mean", "max")))
    con.print(t)

    mal = res["malformed_by_kind"]
    if mal:
        con.print(
            "malformed by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(mal.items())),
            highlight=False,
        )

    t = Table(title=f"Over time ({args.window:g} s windows)")
    for col in ("from s", "requests", "req/s", "p50 ms", "p99 ms", "errors"):
        t.add_column(col, justify="right")
    for w in res["windows"]:
        t.add_row(
            f(w["from_s"], ".0f"),
            f(w["requests"]),
            f(w["req_per_s"], ".0f"),
            f(w["p50_ms"]),
            f(w["p99_ms"]),
            f(w["errors"]),
        )
    con.print(t)

    mem = res["memory"]
    if mem:
        t = Table(title="Server memory (RSS sum of the process tree, MB)")
        for col in ("start", "end", "peak (sampled)", "end - start", "PSS start", "PSS end"):
            t.add_column(col, justify="right")
        st, en = mem["start"], mem["end"]
        t.add_row(
            f(st["rss_mb"], ".0f"),
            f(en["rss_mb"], ".0f"),
            f(mem["peak_rss_mb"], ".0f"),
            f(en["rss_mb"] - st["rss_mb"] if en["rss_mb"] and st["rss_mb"] else None, "+.0f"),
            f(st["pss_mb"], ".0f"),
            f(en["pss_mb"], ".0f"),
        )
        con.print(t)
        if mem.get("at_requests"):
            t = Table(title="Server RSS by requests completed (MB)")
            for col in ("requests", "at s", "RSS", "vs first row"):
                t.add_column(col, justify="right")
            for r in mem["at_requests"]:
                t.add_row(
                    f(r["requests"]),
                    f(r["at_s"], ".0f"),
                    f(r["rss_mb"], ".0f"),
                    f(r["vs_first_pct"], "+.1f") + "%",
                )
            con.print(t)
        for e in en["each"]:
            con.print(
                f"  pid {e['pid']}: RSS {e['rss_mb']:.0f} MB at end  {e.get('cmd', '')}",
                highlight=False,
                markup=False,
            )
    else:
        con.print("server memory: not measured (give --server-pid with --url)")
    if res.get("server_log"):
        con.print(
            "server log: " + ", ".join(f"{k} {v}" for k, v in res["server_log"].items()),
            highlight=False,
        )
    verdict = "no errors" if s["errors"] == 0 else f"{s['errors']} ERRORS (exit 1)"
    con.print(f"result: {verdict}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    res: dict[str, Any] = {"machine": C.machine()}
    res["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    res["args"].pop("key", None)
    server: C.Server | None = None
    try:
        records, dropped = C.scoring_records(args.records, args.seed)
        res["records"], res["records_dropped"] = len(records), dropped
        valid = C.payloads(records)
        items = C.payloads(records, args.malformed, seed=args.seed)
        pid = args.server_pid
        if args.url:
            base = args.url.rstrip("/")
            headers = {"Authorization": f"Bearer {args.key}"}
            res["target"] = base
        else:
            if args.tracking_uri:
                if not C.champion_version(args.tracking_uri):
                    raise SystemExit(f"{args.tracking_uri} holds no alliance-risk@champion")
                uri = args.tracking_uri
            else:
                uri = C.build_store(args.store_dir or (tmp / "store"), args.n, kind=args.kind).uri
            server = C.start_bentoml(tmp / "bentoml", uri)
            try:
                res["cold_start_s"] = C.wait_first_good(server, "/score", valid[0].body)
            except RuntimeError as exc:
                print(f"the server did not come up: {exc}", file=sys.stderr)
                return 2
            C.log(f"bentoml answered /score {res['cold_start_s']:.1f} s after start")
            C.wait_get_200(server.base, "/readyz")
            base, headers, pid = server.base, server.headers, server.proc.pid
            res["target"] = f"bentoml serve at {base} (started here)"
            C.warm_up(base + "/score", headers, valid, args.warmup)

        import httpx

        try:
            r = httpx.post(
                base + "/score",
                content=valid[0].body,
                headers={**headers, "Content-Type": "application/json"},
                timeout=args.timeout,
            )
            info = httpx.get(base + "/model", headers=headers, timeout=args.timeout)
        except httpx.HTTPError as exc:
            print(f"{base} cannot be reached: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        if r.status_code != 200:
            print(
                f"a valid record got {r.status_code} before the run ({r.text[:300]}); "
                "check --url and --key",
                file=sys.stderr,
            )
            return 2
        if info.status_code == 200:
            i = info.json()
            res["model"] = f"alliance-risk version {i.get('version')}, {i.get('kind')}"

        sampler = None
        mem_start = C.tree_memory(pid) if pid else None
        if pid:
            sampler = MemorySampler(pid, args.sample_every)
            sampler.start()
        C.log(f"load: {args.concurrency} clients for {args.duration:g} s against {base}/score")
        run_start: list[float] = []
        outcomes, wall, cpu = C.run_concurrent(
            base + "/score",
            headers,
            items,
            args.concurrency,
            args.duration,
            args.timeout,
            max_requests=args.requests,
            start=run_start,
        )
        if sampler:
            sampler.stop()
        mem_end = C.tree_memory(pid) if pid else None
        res["loadavg_end"] = list(os.getloadavg())
        summary = C.summarize_concurrent(outcomes, wall, cpu)
        res["summary"] = summary
        res["error_statuses"] = {
            str(k): v
            for k, v in sorted(
                Counter(o.status for o in outcomes if o.status and o.status >= 500).items()
            )
        }
        res["malformed_by_kind"] = dict(
            Counter(f"{o.kind}->{o.status}" for o in outcomes if o.expect == "4xx")
        )
        res["windows"] = windows(outcomes, args.window, wall)
        res["memory"] = None
        if pid and mem_start and mem_end:
            t0 = run_start[0] if run_start else 0.0
            samples = [(ts - t0, mb) for ts, mb in (sampler.samples if sampler else [])]
            samples.append((wall + 1e-6, mem_end["rss_mb"] or 0.0))  # taken after the run
            milestones = sorted({int(x) for x in args.milestones.split(",") if x.strip()})
            res["memory"] = {
                "start": mem_start,
                "end": mem_end,
                "peak_rss_mb": max(m for _, m in samples),
                "at_requests": rss_at_requests(outcomes, samples, milestones),
                "samples": samples,
            }
        res["server_log"] = log_problems(server.log if server else None)
        report(res, args)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=2, default=str))
            print(f"figures written to {args.json}")
        return 1 if summary["errors"] else 0
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
