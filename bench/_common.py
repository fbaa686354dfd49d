"""Shared pieces of the serving benchmarks (bench/serve_latency.py, bench/load.py).

- a throw-away tracking store with a champion, trained by the real CLI (``pipelines.train``) on a
  SYNTHETIC cohort with the fast settings the tests use (harness/commands.py ``make_store``);
- scoring records taken from a SYNTHETIC intake (``simulator.generator``), as the flat JSON record
  the API takes, plus malformed variants that must be answered 4xx;
- starting and stopping ``bentoml serve`` (with the environment and command of the tests'
  harness, harness/commands.py) and ``mlflow models serve``, each in its own process group, and timing the first good answer;
- resident memory of a server's process tree (psutil, or /proc when psutil is absent);
- a sequential keep-alive client and a closed-loop concurrent client (one thread and one
  ``httpx.Client`` per connection).

Nothing here asserts on timings.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.commands import (
    FAST_CONFIG,
    REPO,
    SERVE_COMMAND,
    export_champion,
    make_store,
    service_env,
    stop_group,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

SERVICE_WORKERS = 2  # settings serving.workers (default 2), used by serving/service.py
AUDIT_HASH_KEY = "bench-audit-key"

# train.candidates forces the model family of a store trained here ("any" compares both).
FORCE = {
    "any": "",
    "logistic": 'candidates = ["logistic"]\n',
    "lightgbm": 'candidates = ["lightgbm"]\n',
}


def add_options(group, *rows: tuple[str, type, Any, str]) -> None:
    """Options from (flag, type, default, help) rows; the help ends with the default."""
    for flag, kind, default, text in rows:
        group.add_argument(flag, type=kind, default=default, help=f"{text} (default %(default)s)")


def record_options(seed: int) -> tuple[tuple[str, type, Any, str], ...]:
    """--records and --seed rows for ``add_options``: the SYNTHETIC records a client sends."""
    return (
        ("--records", int, 500, "distinct scoring records (SYNTHETIC intake), cycled through"),
        ("--seed", int, seed, "seed of the records' cohort"),
    )


def add_store_options(group) -> None:
    """--tracking-uri, --store-dir, --n and --kind: the store a server started here serves."""
    group.add_argument(
        "--tracking-uri",
        help="use this existing tracking store (it must hold alliance-risk@champion) instead of "
        "training a throw-away one",
    )
    group.add_argument(
        "--store-dir",
        type=Path,
        help="train the throw-away store here and keep it; if it already holds a champion, reuse "
        "it (default: a temporary folder, deleted at the end)",
    )
    add_options(
        group, ("--n", int, 2000, "admissions in the SYNTHETIC cohort of the throw-away store")
    )
    group.add_argument(
        "--kind",
        choices=list(FORCE),
        default="any",
        help="champion family for a store trained here: 'any' lets training choose (as in "
        "production); 'logistic' or 'lightgbm' sets train.candidates to that one family; the "
        "kind served is always reported (default %(default)s)",
    )


# A deliberately large monotone LightGBM (300 trees of up to 63 leaves): the slow end of the
# explanation and batch benchmarks, beside the tuned compact model.
BIG_LIGHTGBM = {
    "objective": "binary",
    "num_leaves": 63,
    "max_depth": 6,
    "learning_rate": 0.05,
    "verbose": -1,
    "seed": 7,
}


def best_of(fn, repeat: int) -> float:
    """The fastest of ``repeat`` timed calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- the tracking store ------------------------------------------------------------------------
@dataclass
class Store:
    uri: str
    root: Path | None = None
    trained_here: bool = False
    train_seconds: float | None = None


def champion_version(uri: str, name: str | None = None) -> str | None:
    """The champion's version in the store at ``uri``, or None (``models.lifecycle.resolve``, which reports a
    missing SQLite file instead of creating it)."""
    from models.lifecycle.resolve import version_of

    return version_of(uri, name)


def build_store(root: Path, n: int = 2000, seed: int = 11, kind: str = "any") -> Store:
    """Generate a SYNTHETIC cohort of ``n`` admissions in ``root``/data and train a champion into
    ``root``/mlflow.db with the real CLI. If ``root`` already holds a champion, reuse it."""
    root = root.resolve()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    if champion_version(uri):
        log(f"reusing the champion already in {uri}")
        return Store(uri, root)
    root.mkdir(parents=True, exist_ok=True)
    log(f"generating a SYNTHETIC cohort of {n} admissions in {root / 'data'}")
    store = make_store(root, n=n, seed=seed)  # the tests' harness: data, fast settings, store
    store.config.write_text(FAST_CONFIG + FORCE[kind])
    log(f"training a champion: pipelines.train --data {store.data} --config {store.config}")
    t = time.perf_counter()
    proc = store.train(timeout=1800)
    secs = time.perf_counter() - t
    (root / "train.log").write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(
            f"training failed (exit {proc.returncode}); see {root / 'train.log'}:\n"
            + (proc.stdout[-2000:] + proc.stderr[-2000:])
        )
    if not champion_version(uri):
        why = [line.strip() for line in proc.stdout.splitlines() if "registry:" in line]
        raise RuntimeError(
            "training registered a version but the promotion gate did not make it the champion "
            f"({why[-1] if why else 'see ' + str(root / 'train.log')}); a larger --n (default "
            "2000) gives a model that passes the gate"
        )
    log(f"trained in {secs:.0f} s; champion version {champion_version(uri)}")
    return Store(uri, root, trained_here=True, train_seconds=secs)


# ---- records -----------------------------------------------------------------------------------
def _json_value(kind: str, v: Any) -> Any:
    if kind == "integer":
        return int(float(v))
    if kind == "number":
        return float(v)
    if kind == "boolean":
        if isinstance(v, str):
            return v.strip().lower() in ("true", "1", "yes")
        return bool(v)
    if kind == "date":
        return v.isoformat()[:10] if hasattr(v, "isoformat") else str(v)[:10]
    return str(v)


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def scoring_records(n: int = 500, seed: int = 23) -> tuple[list[dict[str, Any]], int]:
    """``n`` flat scoring records (JSON-native values, gaps dropped) from a SYNTHETIC intake, and
    the number of generated records dropped because the service would refuse them (none
    expected)."""
    from features.build import scoring_frame, typed_records
    from features.catalog import SCORING_RECORD
    from features.scoring import score_record
    from simulator.generator import generate
    from validation.record import check_record

    kinds = {f.name: f.kind for f in SCORING_RECORD}
    c = generate(n, seed=seed, ground_truth=False)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    cols = [col for col in frame.columns if col in kinds]
    out, dropped = [], 0
    for row in frame[cols].to_dict("records"):
        rec = {k: _json_value(kinds[k], v) for k, v in row.items() if not _missing(v)}
        validated, errs = check_record(rec)
        if errs or validated is None or score_record(validated.model_dump(exclude_none=True))[1]:
            dropped += 1
            continue
        out.append(rec)
    return out, dropped


MALFORMED_KINDS = (
    "out_of_range",
    "unknown_code",
    "missing_required",
    "unknown_field",
    "wrong_type",
    "not_json",
    "not_an_object",
)


def malformed_body(rec: dict[str, Any], kind: str) -> bytes:
    """A request body that breaks the contract in one way; the service must answer 400 or 422."""
    r = dict(rec)
    if kind == "out_of_range":
        r["age"] = 250
    elif kind == "unknown_code":
        r["sex"] = "not-a-code"
    elif kind == "missing_required":
        r.pop("admission_date", None)
    elif kind == "unknown_field":
        r["no_such_field"] = 1
    elif kind == "wrong_type":
        r["age"] = "thirty"
    elif kind == "not_json":
        return json.dumps(r).encode()[:-7]
    elif kind == "not_an_object":
        return json.dumps([r]).encode()
    return json.dumps(r).encode()


@dataclass
class Payload:
    body: bytes
    expect: str  # "ok" (a valid record: 200) or "4xx" (malformed: 400/422)
    kind: str = "valid"


def payloads(
    records: list[dict[str, Any]], malformed_fraction: float = 0.0, seed: int = 5
) -> list[Payload]:
    """One payload per record; about ``malformed_fraction`` of them replaced by malformed bodies
    (kinds in rotation, positions drawn at random with ``seed``)."""
    rng = np.random.default_rng(seed)
    bad = rng.random(len(records)) < malformed_fraction
    out, k = [], 0
    for rec, is_bad in zip(records, bad, strict=True):
        if is_bad:
            kind = MALFORMED_KINDS[k % len(MALFORMED_KINDS)]
            k += 1
            out.append(Payload(malformed_body(rec, kind), "4xx", kind))
        else:
            out.append(Payload(json.dumps(rec, separators=(",", ":")).encode(), "ok"))
    return out


def mlflow_payloads(records: list[dict[str, Any]]) -> list[Payload]:
    return [
        Payload(json.dumps({"dataframe_records": [r]}, separators=(",", ":")).encode(), "ok")
        for r in records
    ]


# ---- servers -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    base: str
    log: Path
    started: float  # time.perf_counter() just before Popen
    headers: dict[str, str] = field(default_factory=dict)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def rss(self, with_pss: bool = True) -> dict[str, Any]:
        return tree_memory(self.proc.pid, with_pss)

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 20 s, then any worker left in the group."""
        if self.proc.poll() is None:
            stop_group(self.proc, timeout=20, reap=True)


def _popen(cmd: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, float]:
    with log.open("wb") as fh:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, started


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALLIANCE_RISK_SERVING__") and k != "MLFLOW_TRACKING_URI"
    }


def start_bentoml(workdir: Path, tracking_uri: str, key: str | None = None) -> Server:
    """``bentoml serve serving.service:AllianceRisk`` on a free loopback port (does not wait)."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = key or secrets.token_urlsafe(18)
    port = free_port()
    env = service_env(workdir, tracking_uri, key, AUDIT_HASH_KEY)  # as the tests start it
    t = time.perf_counter()
    env = export_champion(env)  # what pipelines.serve does first (models/lifecycle/bento_store.py)
    log(
        f"bentoml: champion exported to the server's model store in {time.perf_counter() - t:.2f} s"
    )
    cmd = [sys.executable, *SERVE_COMMAND, "--port", str(port)]
    proc, started = _popen(cmd, env, workdir / "bentoml.log")
    return Server(
        "bentoml",
        proc,
        f"http://127.0.0.1:{port}",
        workdir / "bentoml.log",
        started,
        {"Authorization": f"Bearer {key}"},
    )


def start_bare(workdir: Path, tracking_uri: str) -> Server:
    """The same ``serving.engine.Engine`` behind a bare FastAPI route (``bench/bare_app.py`` under
    ``uvicorn``, as many workers as the service; no BentoML, guard or metrics; does not wait)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = _clean_env()
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        BARE_AUDIT_DB=str(workdir / "audit.sqlite"),
        GX_ANALYTICS_ENABLED="false",
    )
    cmd = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(SERVICE_WORKERS)]
    proc, started = _popen(cmd, env, workdir / "bare.log")
    return Server("bare", proc, f"http://127.0.0.1:{port}", workdir / "bare.log", started)


def start_mlflow(workdir: Path, tracking_uri: str, workers: int = 2) -> Server:
    """``mlflow models serve -m models:/alliance-risk@champion --env-manager local``."""
    from models.lifecycle.resolve import default_name, model_uri

    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = _clean_env()
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        # mlflow runs `uvicorn` by name: the venv's bin must be on PATH without activating it.
        PATH=os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH")) if p),
        GX_ANALYTICS_ENABLED="false",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri(default_name()),
        "--env-manager",
        "local",
        "-p",
        str(port),
        "--host",
        "127.0.0.1",
        "-w",
        str(workers),
    ]
    proc, started = _popen(cmd, env, workdir / "mlflow.log")
    return Server("mlflow", proc, f"http://127.0.0.1:{port}", workdir / "mlflow.log", started)


def wait_first_good(server: Server, path: str, body: bytes, timeout: float = 180.0) -> float:
    """Seconds from Popen to the first 200 answer to POST ``path`` with ``body``."""
    import httpx

    headers = {**server.headers, "Content-Type": "application/json"}
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        try:
            r = httpx.post(server.base + path, content=body, headers=headers, timeout=10)
            if r.status_code == 200:
                return time.perf_counter() - server.started
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.02)
    raise RuntimeError(
        f"{server.name}: no 200 from {path} in {timeout:.0f} s ({last}):\n{server.log_tail()}"
    )


def wait_get_200(base: str, path: str, timeout: float = 60.0) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + path, timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


# ---- memory ------------------------------------------------------------------------------------
def _proc_rss_kb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    except OSError:
        return None
    return 0.0


def _proc_tree_pids(root: int) -> list[int]:
    """root and every process whose parent chain or process group leads to it (/proc scan)."""
    parents: dict[int, int] = {}
    groups: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(d.name)] = int(fields[1])
        groups[int(d.name)] = int(fields[2])
    found = {root} if root in parents else set()
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if pid not in found and (ppid in found or groups.get(pid) == root):
                found.add(pid)
                changed = True
    return sorted(found)


def tree_memory(pid: int, with_pss: bool = True) -> dict[str, Any]:
    """Resident memory of a process and all its descendants: the RSS sum (shared pages counted in
    every process, as the issue's goal is stated), the PSS sum (shared pages split between the
    processes that share them; psutil only, and only when ``with_pss``: it reads smaps, which
    costs a few ms per process), and each process's own figures."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {"rss_mb": None, "pss_mb": None, "processes": 0, "each": [], "source": "psutil"}
        rss = pss = 0.0
        pss_ok = True
        each = []
        for p in procs:
            try:
                r = p.memory_info().rss
                cmd = " ".join(p.cmdline())[:120]
            except psutil.Error:
                continue
            rss += r
            item = {"pid": p.pid, "rss_mb": r / 2**20, "cmd": cmd}
            if with_pss:
                try:
                    item["pss_mb"] = p.memory_full_info().pss / 2**20
                    pss += item["pss_mb"]
                except (psutil.Error, AttributeError):
                    pss_ok = False
            each.append(item)
        return {
            "rss_mb": rss / 2**20,
            "pss_mb": pss if (pss_ok and with_pss) else None,
            "processes": len(each),
            "each": each,
            "source": "psutil",
        }
    each = []
    for p in _proc_tree_pids(pid):
        kb = _proc_rss_kb(p)
        if kb is not None:
            each.append({"pid": p, "rss_mb": kb / 1024})
    return {
        "rss_mb": sum(e["rss_mb"] for e in each),
        "pss_mb": None,
        "processes": len(each),
        "each": each,
        "source": "/proc",
    }


# ---- clients -----------------------------------------------------------------------------------
def ms_summary(seconds: list[float] | np.ndarray) -> dict[str, float | int | None]:
    a = np.asarray(seconds, dtype=float) * 1000.0
    if a.size == 0:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "mean": None, "max": None}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": int(a.size),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(a.mean()),
        "max": float(a.max()),
    }


def _server_ms(header: str | None) -> float | None:
    """``Server-Timing: score;dur=1.234`` -> 1.234."""
    if not header:
        return None
    for part in header.split(";"):
        part = part.strip()
        if part.startswith("dur="):
            try:
                return float(part[4:])
            except ValueError:
                return None
    return None


def run_sequential(
    url: str, headers: dict[str, str], items: list[Payload], n: int, timeout: float = 30.0
) -> dict[str, Any]:
    """``n`` requests one after another on one keep-alive connection, cycling through ``items``."""
    import httpx

    lat: list[float] = []
    server: list[float] = []
    statuses: Counter = Counter()
    exceptions: Counter = Counter()
    h = {**headers, "Content-Type": "application/json"}
    with httpx.Client(headers=h, timeout=timeout) as client:
        t0 = time.perf_counter()
        for i in range(n):
            p = items[i % len(items)]
            t = time.perf_counter()
            try:
                r = client.post(url, content=p.body)
            except httpx.HTTPError as exc:
                exceptions[type(exc).__name__] += 1
                continue
            lat.append(time.perf_counter() - t)
            statuses[r.status_code] += 1
            s = _server_ms(r.headers.get("server-timing"))
            if s is not None:
                server.append(s / 1000.0)
        wall = time.perf_counter() - t0
    return {
        "latency_ms": ms_summary(lat),
        "server_timing_ms": ms_summary(server) if server else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "exceptions": dict(exceptions),
        "non_200": sum(v for k, v in statuses.items() if k != 200) + sum(exceptions.values()),
        "wall_s": wall,
        "req_per_s": n / wall if wall else None,
    }


@dataclass
class Outcome:
    t_end: float  # seconds since the start of the run
    latency: float  # seconds
    expect: str
    kind: str
    status: int | None  # None: the request raised
    exception: str | None = None


def run_concurrent(
    url: str,
    headers: dict[str, str],
    items: list[Payload],
    concurrency: int,
    duration: float,
    timeout: float = 30.0,
    max_requests: int | None = None,
    start: list[float] | None = None,
) -> tuple[list[Outcome], float, float]:
    """Closed loop: ``concurrency`` threads, each with its own keep-alive ``httpx.Client``, send
    one request after another for ``duration`` seconds (or until ``max_requests`` have been sent,
    if that comes first). Returns (outcomes, wall seconds, CPU seconds this client process used);
    ``start``, if given, receives the ``time.perf_counter()`` at which the run started (outcome
    times are relative to it)."""
    import itertools

    import httpx

    sent = itertools.count()  # next() on it is atomic under the GIL

    h = {**headers, "Content-Type": "application/json"}
    per_thread: list[list[Outcome]] = [[] for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)
    start_box: list[float] = []

    def worker(w: int) -> None:
        out = per_thread[w]
        i = w * max(1, len(items) // concurrency)
        with httpx.Client(headers=h, timeout=timeout) as client:
            barrier.wait()
            t0 = start_box[0]
            deadline = t0 + duration
            while True:
                t = time.perf_counter()
                if t >= deadline:
                    break
                if max_requests is not None and next(sent) >= max_requests:
                    break
                p = items[i % len(items)]
                i += 1
                try:
                    r = client.post(url, content=p.body)
                    status, exc = r.status_code, None
                except httpx.HTTPError as e:
                    status, exc = None, type(e).__name__
                done = time.perf_counter()
                out.append(Outcome(done - t0, done - t, p.expect, p.kind, status, exc))

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for th in threads:
        th.start()
    cpu0 = time.process_time()
    start_box.append(time.perf_counter())
    if start is not None:
        start.append(start_box[0])
    barrier.wait()
    for th in threads:
        th.join(duration + timeout + 30)
    wall = time.perf_counter() - start_box[0]
    cpu = time.process_time() - cpu0
    return [o for out in per_thread for o in out], wall, cpu


def summarize_concurrent(outcomes: list[Outcome], wall: float, cpu: float) -> dict[str, Any]:
    """Counts and latencies of a concurrent run. An error is a 5xx or a request that raised; a
    malformed payload answered 4xx is expected and counted apart; anything else unexpected (a
    valid record not answered 200, a malformed one answered 2xx) is counted as unexpected."""
    ok = [o.latency for o in outcomes if o.expect == "ok" and o.status == 200]
    statuses = Counter(o.status for o in outcomes if o.status is not None)
    exceptions = Counter(o.exception for o in outcomes if o.status is None)
    server_errors = sum(1 for o in outcomes if o.status is not None and o.status >= 500)
    expected_4xx = Counter(
        o.status
        for o in outcomes
        if o.expect == "4xx" and o.status is not None and 400 <= o.status < 500
    )
    unexpected = Counter(
        f"{o.kind}->{o.status}"
        for o in outcomes
        if o.status is not None
        and o.status < 500
        and not (
            (o.expect == "ok" and o.status == 200) or (o.expect == "4xx" and 400 <= o.status < 500)
        )
    )
    answered = [o.latency for o in outcomes if o.status is not None]
    return {
        "requests": len(outcomes),
        "wall_s": wall,
        "req_per_s": len(outcomes) / wall if wall else None,
        "ok_per_s": len(ok) / wall if wall else None,
        "ok": len(ok),
        "latency_ok_ms": ms_summary(ok),
        "latency_all_ms": ms_summary(answered),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": server_errors + sum(exceptions.values()),
        "errors_5xx": server_errors,
        "exceptions": dict(exceptions),
        "expected_4xx": {str(k): v for k, v in sorted(expected_4xx.items())},
        "unexpected": dict(unexpected),
        "client_cpu_s": cpu,
        "client_cpu_share": cpu / wall if wall else None,
    }


def warm_up(url: str, headers: dict[str, str], items: list[Payload], n: int) -> None:
    """``n`` requests on one connection, then a 1 s burst on 4 connections so that every worker
    (connections are spread over the workers) has answered before anything is measured."""
    if n <= 0:
        return
    run_sequential(url, headers, items, n)
    run_concurrent(url, headers, items, 4, 1.0)


def console():
    """A rich console that is wide enough for the tables when the output is not a terminal."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=140)


# ---- context -----------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in ("bentoml", "mlflow", "httpx"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:
            versions[mod] = None
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        **versions,
        "loadavg_start": list(os.getloadavg()),
    }


def fmt(v: Any, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)
