"""BentoML's /score against the same engine behind a bare FastAPI route, in paired rounds.

    .venv/bin/python -m bench.overhead_ratio [--ratings none|week1|week2] [--rounds 15]
        [--requests 200] [--n 2000] [--store-dir DIR | --tracking-uri URI] [--json PATH]

The goal (issues 17 and 19): POST /score, with its interval and with weekly ratings, within 1.2x
the latency of the same ``serving.engine.Engine`` behind a bare FastAPI route. ``bench.serve_latency``
measures the two servers one after the other, minutes apart; on a shared 2-core machine the load
moves in between, and its ratio read 0.79-1.8x from one run to the next. Here both servers run at
once (idle while the other is measured) and the client alternates: round r sends --requests
sequential POST /score on one keep-alive connection to one server, then the same records to the
other (which server goes first alternates too). Each round gives a ratio of medians; the figure is
the median of the rounds' ratios, with the lowest and highest, so load that drifts over minutes
cancels within a round.

Model: as ``bench.serve_latency`` (a throw-away store trained with the test settings on a
SYNTHETIC cohort of --n admissions, or --store-dir / --tracking-uri). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import _common as C
from bench.serve_latency import with_ratings

GOAL_RATIO = 1.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.overhead_ratio",
        description=__doc__.split("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    C.add_store_options(ap.add_argument_group("model"))
    r = ap.add_argument_group("requests")
    C.add_options(
        r,
        ("--rounds", int, 15, "paired rounds (each: both servers, alternating which goes first)"),
        ("--requests", int, 200, "sequential POST /score per server per round"),
        ("--warmup", int, 200, "requests to each server before the first round"),
        *C.record_options(23),
    )
    r.add_argument(
        "--ratings",
        choices=("none", "week1", "week2"),
        default="week1",
        help="weekly WAI-S ratings on every record (as bench.serve_latency --ratings); "
        "default %(default)s",
    )
    ap.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="alliance-risk-ratio-") as tmp_s:
        tmp = Path(tmp_s)
        if args.tracking_uri:
            uri = args.tracking_uri
        else:
            store = C.build_store(args.store_dir or tmp / "store", n=args.n, kind=args.kind)
            uri = store.uri
        records, _ = C.scoring_records(args.records, args.seed)
        items = C.payloads(with_ratings(records, args.ratings))
        servers = {"bentoml": C.start_bentoml(tmp / "bentoml", uri)}
        servers["bare"] = C.start_bare(tmp / "bare", uri)
        try:
            for s in servers.values():
                C.wait_first_good(s, "/score", items[0].body, timeout=300)
                C.warm_up(s.base + "/score", s.headers, items, args.warmup)
            rounds = []
            for i in range(args.rounds):
                order = ("bentoml", "bare") if i % 2 == 0 else ("bare", "bentoml")
                r = {}
                for name in order:
                    s = servers[name]
                    r[name] = C.run_sequential(s.base + "/score", s.headers, items, args.requests)
                    if r[name]["non_200"]:
                        raise SystemExit(f"{name}: {r[name]['statuses']} {r[name]['exceptions']}")
                b, f = r["bentoml"]["latency_ms"], r["bare"]["latency_ms"]
                rounds.append(
                    {
                        "bentoml_p50": b["p50"],
                        "bare_p50": f["p50"],
                        "bentoml_mean": b["mean"],
                        "bare_mean": f["mean"],
                        "ratio_p50": b["p50"] / f["p50"],
                        "ratio_mean": b["mean"] / f["mean"],
                    }
                )
                C.log(
                    f"round {i + 1}/{args.rounds}: p50 {b['p50']:.2f} / {f['p50']:.2f} ms "
                    f"= {rounds[-1]['ratio_p50']:.2f}x"
                )
        finally:
            for s in servers.values():
                s.stop()
    return {"machine": C.machine(), "ratings": args.ratings, "rounds": rounds}


def report(res: dict[str, Any]) -> None:
    rounds = res["rounds"]
    con = C.console()
    mach = res["machine"]
    con.print(
        f"machine: {mach['cpus']} CPUs, Python {mach['python']}, bentoml {mach['bentoml']}; "
        f"load average at start {'/'.join(f'{x:.2f}' for x in mach['loadavg_start'])}; "
        f"bodies: ratings {res['ratings']}; SYNTHETIC records",
        highlight=False,
    )
    for key, what in (("p50", "median latency"), ("mean", "mean latency")):
        ratios = [r[f"ratio_{key}"] for r in rounds]
        b = statistics.median(r[f"bentoml_{key}"] for r in rounds)
        f = statistics.median(r[f"bare_{key}"] for r in rounds)
        med = statistics.median(ratios)
        con.print(
            f"{what}: BentoML {b:.2f} ms, bare FastAPI {f:.2f} ms (medians over {len(rounds)} "
            f"rounds); ratio per round median {med:.2f}x (lowest {min(ratios):.2f}, highest "
            f"{max(ratios):.2f}); goal <= {GOAL_RATIO}x: {'met' if med <= GOAL_RATIO else 'NOT met'}",
            highlight=False,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
