"""Minimal reproduction: BentoML 1.4 keeps every request's timer for the whole traffic timeout.

    .venv/bin/python -m experiments.bentoml_timer_repro [--requests 5000] [--timeout 60] [--wait]

Nothing of this project is used: the script writes a one-API BentoML service to a temporary
folder, serves it with ``bentoml serve`` (1 worker, the default configuration apart from
``traffic.timeout``), sends ``--requests`` POSTs one after another on one connection, and prints,
every ``--every`` requests, the worker's RSS and the number of timer handles pending on the
worker's event loop (the service reports it: ``GET /timers``, by callback name).

``bentoml._internal.server.http.traffic.TimeoutMiddleware`` calls
``loop.call_later(timeout, self._set_timer_out, waiter)`` for every request and never cancels the
handle when the response has been sent, so each request's ``TimerHandle``, its ``Future`` and a
copy of its ``contextvars.Context`` (which holds the request's OpenTelemetry span while tracing
middleware is on, even at ``sample_rate`` 0) stay referenced by the loop until the timeout
expires. Memory then grows with every request for ``timeout`` seconds and stays at its high-water
mark (request rate x timeout x a few KB); in a short load test it looks like a leak (BentoML
issue #4760). With ``--wait`` the script waits out the timeout and shows the handles gone.

The fix upstream is to keep the handle and cancel it once the response has started
(``handle = loop.call_later(...)`` ... ``finally: handle.cancel()``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICE = """
import asyncio
import collections

import bentoml


@bentoml.service(workers=1, traffic={"timeout": TIMEOUT})
class Echo:
    @bentoml.api
    async def echo(self, text: str) -> str:
        return text

    @bentoml.api(route="/timers")
    async def timers(self) -> dict:
        loop = asyncio.get_running_loop()
        names = collections.Counter(
            getattr(h._callback, "__qualname__", "?") for h in loop._scheduled if not h.cancelled()
        )
        return dict(names)
"""


def _rss_mb(pid: int) -> float:
    import psutil

    p = psutil.Process(pid)
    return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=60.0, help="traffic.timeout (s)")
    ap.add_argument("--wait", action="store_true", help="then wait out the timeout and look again")
    args = ap.parse_args(argv)

    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="bentoml-timer-"))
    (tmp / "service.py").write_text(SERVICE.replace("TIMEOUT", repr(args.timeout)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(tmp / "home")}
    cmd = [sys.executable, "-m", "bentoml", "serve", "service:Echo", "--port", str(port)]
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(240):
                try:
                    if client.get(base + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                print("the service did not start; log:", (tmp / "serve.log").read_text()[-2000:])
                return 2
            import bentoml

            print(f"bentoml {bentoml.__version__}, traffic.timeout {args.timeout:g} s, 1 worker")
            print(f"{'requests':>9} {'seconds':>8} {'RSS MB':>8}  pending timer handles")
            t0 = time.perf_counter()
            for i in range(1, args.requests + 1):
                client.post(base + "/echo", json={"text": "x"}).raise_for_status()
                if i % args.every == 0 or i == args.requests:
                    timers = client.post(base + "/timers", json={}).json()
                    print(
                        f"{i:>9} {time.perf_counter() - t0:>8.1f} {_rss_mb(proc.pid):>8.1f}  {timers}"
                    )
            if args.wait:
                time.sleep(args.timeout + 2)
                timers = client.post(base + "/timers", json={}).json()
                print(
                    f"after waiting {args.timeout + 2:g} s: RSS {_rss_mb(proc.pid):.1f} MB, "
                    f"pending {timers}"
                )
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
