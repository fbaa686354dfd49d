"""Cold start of the whole launcher: ``python -m pipelines.serve`` from Popen to ``/readyz`` 200.

    .venv/bin/python -m bench.serve_start --store-dir DIR [--starts 5]

``bench/serve_latency.py`` times ``bentoml serve`` itself (Popen to the first good ``/score``).
What a person runs is ``python -m pipelines.serve`` (``make run``), which does more first: it
reads the MLflow registry's champion and exports it into BentoML's model store when the store
lacks it (models/lifecycle/bento_store.py), then starts ``bentoml serve``. This times that, each start with
a fresh BentoML home (``--warm-home`` reuses one, so from the second start on the champion is
already exported), against the store in --store-dir (trained there with the fast test settings
when it holds no champion, as bench/serve_latency.py does). Prints each start and the median, and
the resident memory (RSS) of the launcher alone and of the whole served tree (launcher, BentoML's
arbiter and workers) once the launcher has printed where the intake page is (its sync is over).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import _common as C


def one_start(
    uri: str, home: Path, work: Path
) -> tuple[float, float | None, float | None, float | None]:
    """Seconds from Popen to /readyz 200 and to the launcher's own "intake page:" line (printed
    once its sync is over and the service is ready); the launcher's and the tree's RSS (MB)
    then."""
    import httpx

    port = C.free_port()
    env = {
        **C._clean_env(),
        "MLFLOW_TRACKING_URI": uri,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "GX_ANALYTICS_ENABLED": "false",
        "ALLIANCE_RISK_SERVING__API_KEY": "bench-key",
        "ALLIANCE_RISK_SERVING__AUDIT_DB": str(work / "audit.sqlite"),
        "ALLIANCE_RISK_SERVING__AUDIT_HASH_KEY": C.AUDIT_HASH_KEY,
    }
    cmd = [sys.executable, "-m", "pipelines.serve", "--port", str(port)]
    log_path = work / f"serve-{port}.log"
    with log_path.open("ab") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=C.REPO, env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        deadline = started + 180
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"pipelines.serve exited with {proc.returncode}: {log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    ready = time.perf_counter() - started
                    return (ready, *_memory_after_sync(proc, log_path, started))
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"not ready in 180 s: {log_path}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _memory_after_sync(
    proc: subprocess.Popen, log: Path, started: float
) -> tuple[float | None, float | None, float | None]:
    """Seconds to the launcher's "intake page:" line (its registry sync is over then; 0.05 s
    resolution), and RSS (MB) of the launcher and of its whole tree 1 s later."""
    deadline = time.perf_counter() + 60
    announced = None
    while time.perf_counter() < deadline:
        if "intake page:" in log.read_text(errors="replace"):
            announced = time.perf_counter() - started
            break
        time.sleep(0.05)
    time.sleep(1.0)
    launcher = C.tree_memory(proc.pid, with_pss=False)
    own = next((e["rss_mb"] for e in launcher["each"] if e["pid"] == proc.pid), None)
    return announced, own, launcher["rss_mb"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serve_start", description=__doc__)
    C.add_store_options(ap)
    ap.add_argument("--starts", type=int, default=5, help="starts to time (default %(default)s)")
    ap.add_argument(
        "--warm-home",
        action="store_true",
        help="one BentoML home for all starts (the champion already exported from the second on)",
    )
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-start-"))
    try:
        if args.tracking_uri:
            uri = args.tracking_uri
        else:
            uri = C.build_store(args.store_dir or tmp / "store", n=args.n, kind=args.kind).uri
        times, said, mems = [], [], []
        for i in range(args.starts):
            home = tmp / ("home" if args.warm_home else f"home{i}")
            t, announced, own, tree = one_start(uri, home, tmp)
            times.append(t)
            said.append(announced)
            mems.append((own, tree))
            C.log(
                f"pipelines.serve: /readyz 200 {t:.2f} s after Popen, 'intake page:' printed at "
                f"{_s(announced)} (load {os.getloadavg()[0]:.2f}); "
                f"RSS after the sync: launcher {_mb(own)}, launcher + service {_mb(tree)}"
            )
        med = sorted(times)[len(times) // 2]
        print("starts (s): " + ", ".join(f"{t:.2f}" for t in times) + f"; median {med:.2f}")
        print("'intake page:' printed at (s): " + ", ".join(_s(a, "") for a in said))
        print(
            "RSS after the sync, launcher / whole tree (MB): "
            + ", ".join(f"{_mb(a, '')} / {_mb(b, '')}" for a, b in mems)
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _s(value: float | None, unit: str = " s") -> str:
    return "?" if value is None else f"{value:.2f}{unit}"


def _mb(value: float | None, unit: str = " MB") -> str:
    return "?" if value is None else f"{value:.0f}{unit}"


if __name__ == "__main__":
    sys.exit(main())
