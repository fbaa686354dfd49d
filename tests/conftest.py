"""Shared test fixtures.

``valid_tables``: a small cohort that satisfies data contract v1, built from the field catalog (30
admissions, 5 counsellors, ratings for weeks 1-3, episodes), as text columns the way load_tables
reads a CSV. Tests copy it and corrupt one value.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from features.catalog import TABLES, Field

# Great Expectations imports pyspark.sql.connect when PySpark is installed (the spark extra), and
# that module calls sys.exit(0) when __main__ has neither __spec__ nor __file__, which is the case
# in a pytest-xdist worker. Give the worker's __main__ a file name so the import proceeds.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

# ---------------------------------------------------------------------------------------------
# Prerequisites outside Python (Chromium, Java, Linux /proc). On a developer's machine a missing
# one skips the tests that need it, with the reason; under CI (CI=true, as GitHub Actions, GitLab
# and most runners set it) it fails them, so a green CI run means every test ran.


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def need(ok: bool, reason: str) -> None:
    """Skip (locally) or fail (under CI) the calling test when a prerequisite is missing."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"prerequisite missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------
# MLflow keeps the tracking and registry URIs in module globals, and set_tracking_uri also writes
# MLFLOW_TRACKING_URI into os.environ (so later subprocesses inherit it). Code under test sets
# them (models.registry.get_client, serving.loader), so every test gets them back as they were.

_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _mlflow_uri_globals() -> tuple[str | None, str | None]:
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    registry = sys.modules.get("mlflow.tracking._model_registry.utils")
    return (
        getattr(tracking, "_tracking_uri", None),
        getattr(registry, "_registry_uri", None),
    )


@contextlib.contextmanager
def restored_mlflow_uris():
    """Put MLflow's tracking/registry URIs (globals and environment) back on exit."""
    env = {k: os.environ.get(k) for k in _MLFLOW_ENV}
    tracking_uri, registry_uri = _mlflow_uri_globals()
    try:
        yield
    finally:
        if _mlflow_uri_globals() != (tracking_uri, registry_uri):
            from mlflow.tracking._model_registry import utils as registry_utils
            from mlflow.tracking._tracking_service import utils as tracking_utils

            tracking_utils.set_tracking_uri(tracking_uri)  # also resets the tracer provider
            registry_utils._registry_uri = registry_uri
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(autouse=True)
def _mlflow_uris_restored():
    with restored_mlflow_uris():
        yield


N_ADMISSIONS = 30
N_COUNSELLORS = 5


def _value(f: Field, i: int) -> str | None:
    """A valid text value of field f for row i (cycling through codes and ranges)."""
    if f.codes:
        return f.codes[i % len(f.codes)]
    if f.kind == "boolean":
        return ("true", "false")[i % 2]
    if f.kind == "date":
        return f"2022-{1 + i % 12:02d}-{1 + i % 28:02d}"
    if f.kind in ("integer", "number"):
        lo, hi = f.minimum, f.maximum
        span = int(hi - lo)
        v = lo + (i * 7) % (span + 1)
        if f.kind == "number" and v < hi:
            v += 0.5
        return str(int(v)) if float(v).is_integer() else str(v)
    return None


def _intake() -> pd.DataFrame:
    rows = []
    for i in range(N_ADMISSIONS):
        row = {f.name: _value(f, i) for f in TABLES["intake"]}
        row.update(
            admission_id=f"A{i:04d}",  # leading zeros must survive
            service_id=f"S{i % 2}",
            counsellor_id=f"C{i % N_COUNSELLORS:02d}" if i % 7 else None,
            age=str(30 + i % 50),
            age_first_use=str(12 + i % 10),
        )
        rows.append(row)
    return pd.DataFrame(rows, dtype="str")


def _counsellors() -> pd.DataFrame:
    rows = []
    for i in range(N_COUNSELLORS):
        row = {f.name: _value(f, i) for f in TABLES["counsellors"]}
        row.update(counsellor_id=f"C{i:02d}", service_id=f"S{i % 2}")
        rows.append(row)
    return pd.DataFrame(rows, dtype="str")


def _alliance() -> pd.DataFrame:
    rows = []
    for i in range(N_ADMISSIONS):
        for week in (1, 2, 3)[: 1 + i % 3]:
            for rater in ("client", "counsellor"):
                row = {f.name: _value(f, i + week) for f in TABLES["alliance"]}
                row.update(admission_id=f"A{i:04d}", week=str(week), rater=rater)
                rows.append(row)
    return pd.DataFrame(rows, dtype="str")


def _episodes() -> pd.DataFrame:
    rows = []
    for i in range(N_ADMISSIONS):
        reason = ("completed", "dropped_out", "ongoing")[i % 3]
        rows.append(
            {
                "admission_id": f"A{i:04d}",
                "discharge_date": None if reason == "ongoing" else "2023-06-30",
                "discharge_reason": reason,
            }
        )
    return pd.DataFrame(rows, dtype="str")


def make_valid_tables() -> dict[str, pd.DataFrame]:
    return {
        "intake": _intake(),
        "counsellors": _counsellors(),
        "alliance": _alliance(),
        "episodes": _episodes(),
    }


@pytest.fixture(autouse=True)
def _registry_uri_stays_in_its_test():
    """``mlflow.set_registry_uri`` writes MLFLOW_REGISTRY_URI into os.environ, and the code honours
    that variable as MLflow does (models.registry.registry_uri): without this, a test that names
    a registry would send every later test's subprocesses to it."""
    before = os.environ.get("MLFLOW_REGISTRY_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    else:
        os.environ["MLFLOW_REGISTRY_URI"] = before
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_registry_uri("")  # registry follows the tracking store again


@pytest.fixture
def valid_tables() -> dict[str, pd.DataFrame]:
    return make_valid_tables()


@pytest.fixture
def valid_dir(tmp_path, valid_tables):
    """The valid cohort written as CSV files in a temporary folder."""
    d = tmp_path / "data"
    d.mkdir()
    for name, df in valid_tables.items():
        df.to_csv(d / f"{name}.csv", index=False)
    return d


# ---------------------------------------------------------------------------------------------
# A real trained champion in a throw-away tracking store, made once per test worker by running
# the training command itself. Tests that use it carry @pytest.mark.xdist_group("trained") so
# that, under `pytest -n 2 --dist loadgroup`, they share one worker and one training run.

FAST_CONFIG = """
[train]
n_splits = 3
tune_iterations = 2
n_bootstrap = 50
"""


@dataclass
class Store:
    root: Path
    data: Path
    uri: str
    config: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_URI"}  # this store's
        return {**env, "MLFLOW_TRACKING_URI": self.uri, "GX_ANALYTICS_ENABLED": "false"}

    def copy(self, root: Path) -> Store:
        """The same registry in another database (a consistent SQLite backup), for a test that
        registers or moves aliases: the shared store stays as trained, whatever the test order.
        The runs' artifacts stay where they are (the experiment's artifact location)."""
        import sqlite3

        root.mkdir(parents=True, exist_ok=True)
        db = root / "mlflow.db"
        with sqlite3.connect(self.root / "mlflow.db") as a, sqlite3.connect(db) as b:
            a.backup(b)
        return Store(root, self.data, f"sqlite:///{db}", self.config)

    def train(self, *args: str, data: Path | None = None) -> subprocess.CompletedProcess:
        return run_pipeline(
            "train",
            "--data",
            str(data or self.data),
            "--config",
            str(self.config),
            *args,
            env=self.env(),
            timeout=900,
        )


REPO = Path(__file__).resolve().parent.parent


def run_pipeline(
    name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m pipelines.<name> ARGS`` from the repository, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", f"pipelines.{name}", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


def make_store(root: Path, n: int = 2000, seed: int = 11) -> Store:
    from simulator.generator import generate, write

    data = root / "data"
    write(generate(n, seed=seed), data)
    config = root / "fast.toml"
    config.write_text(FAST_CONFIG)
    return Store(root, data, f"sqlite:///{root / 'mlflow.db'}", config)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory) -> Store:
    store = make_store(tmp_path_factory.mktemp("store"))
    proc = store.train()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "is the new champion" in proc.stdout, proc.stdout[-3000:]
    return store


# ---------------------------------------------------------------------------------------------
# A real `bentoml serve` of the service on a free loopback port (tests/test_serving.py and
# tests/test_browser.py each start one in a module-scoped fixture). Output goes to a log file the
# tests read (to check that no intake value is logged); the server is stopped by SIGTERM to its
# process group.

SERVE_KEY = "test-key-7f3a9c"  # the API key the test servers accept
AUDIT_HASH_KEY = "test-audit-key"


@dataclass
class LiveService:
    proc: subprocess.Popen
    base: str
    log: Path
    audit_db: Path
    key: str | None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _listening_port(pid: int) -> int | None:
    """The port the server's API socket listens on, read from the processes themselves.

    The server is started with ``--port 0``: its arbiter (the process we started) binds the API
    socket and the kernel picks a free port at that moment, so no other process can be handed the
    same port (binding a port found free earlier and released again is a race: another server may
    take it in between, and a readiness probe would then reach the wrong server). The arbiter also
    listens on a few private ports of its own (circus control); the API socket is the one its
    workers inherit, so it is the port listening in both the arbiter and a worker."""
    import psutil

    def ports(p: psutil.Process) -> set[int]:
        try:
            return {
                c.laddr.port
                for c in p.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            }
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return set()

    try:
        parent = psutil.Process(pid)
        mine = ports(parent)
        children = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    shared = set().union(*(ports(c) & mine for c in children)) if children else set()
    return min(shared) if len(shared) == 1 else None


def launch_service(
    tmp: Path,
    tracking_uri: str,
    key: str | None = SERVE_KEY,
    max_batch: int = 5,
    wait_ready: bool = True,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
) -> LiveService:
    """Start `bentoml serve serving.service:AllianceRisk` and wait for /readyz (or /livez)."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALLIANCE_RISK_SERVING__")
        and k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        ALLIANCE_RISK_SERVING__MAX_BATCH=str(max_batch),
        ALLIANCE_RISK_SERVING__AUDIT_DB=str(tmp / "audit.sqlite"),
        ALLIANCE_RISK_SERVING__AUDIT_HASH_KEY=AUDIT_HASH_KEY,
        BENTOML_DO_NOT_TRACK="True",
        GX_ANALYTICS_ENABLED="false",
    )
    if key:
        env["ALLIANCE_RISK_SERVING__API_KEY"] = key
    env.update(extra_env or {})
    log = tmp / "server.log"
    # BentoML picks its own control ports (circus's ZMQ endpoints) by finding a free port and
    # releasing it before binding, and under load another process can take one in between: the
    # server then exits at start with "Address already in use". Only that failure is retried; the
    # API port itself cannot race (--port 0).
    for _ in range(3):
        svc = _start(env, log, tmp, key)
        try:
            return _wait_until_answering(svc, "/readyz" if wait_ready else "/livez", timeout)
        except _BindRace as exc:
            lost = exc
    raise RuntimeError(f"server start lost a port race 3 times:\n{lost}") from lost


class _BindRace(RuntimeError):
    pass


def _start(env: dict[str, str], log: Path, tmp: Path, key: str | None) -> LiveService:
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                "serving.service:AllianceRisk",
                "--host",
                "127.0.0.1",
                "--port",
                "0",  # the kernel picks the port when the server binds it: see _listening_port
            ],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return LiveService(proc, "", log, tmp / "audit.sqlite", key)


def _wait_until_answering(svc: LiveService, probe: str, timeout: float) -> LiveService:
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if svc.proc.poll() is not None:
            text = svc.log_text()
            if "Address already in use" in text and not svc.base:
                raise _BindRace(text[-3000:])
            raise RuntimeError(f"server exited with {svc.proc.returncode}:\n{text[-3000:]}")
        if not svc.base:
            port = _listening_port(svc.proc.pid)
            if port is not None:
                svc.base = f"http://127.0.0.1:{port}"
        try:
            if svc.base and httpx.get(svc.base + probe, timeout=2).status_code == 200:
                return svc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    svc.stop()
    raise RuntimeError(f"server not answering {probe} in {timeout} s:\n{svc.log_text()[-3000:]}")
