"""Running the project's own commands the way a user does: a trained tracking store
(``make_store``, ``Store.train``: ``python -m pipelines.train`` on a SYNTHETIC cohort with fast
settings), any pipeline as a command (``run_pipeline``), and a live ``bentoml serve`` of the service
(``launch_service``; ``service_env`` and ``stop_group`` are shared with bench/_common.py, which
starts servers for timing). No pytest import: the benchmarks use this module too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# MLflow keeps the tracking and registry URIs in module globals, and set_tracking_uri also writes
# MLFLOW_TRACKING_URI into os.environ (so later subprocesses inherit it). Code under test sets
# them (models.lifecycle.store.get_client, models.lifecycle.resolve.fetch), so every test gets them back as they were
# (tests/conftest.py, an autouse fixture).

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
        return {
            **env,
            "MLFLOW_TRACKING_URI": self.uri,
            "GX_ANALYTICS_ENABLED": "false",
            # training exports its champion to BentoML's model store: this store's own, beside it
            "BENTOML_HOME": str(self.root / "bentoml"),
        }

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

    @classmethod
    def at(cls, root: Path) -> Store:
        """The store ``make_store`` lays out in ``root``: data/, fast.toml, mlflow.db."""
        return cls(root, root / "data", f"sqlite:///{root / 'mlflow.db'}", root / "fast.toml")

    def clone(self, root: Path) -> Store:
        """A store of its own at ``root``: every file copied (registry, run artifacts, the BentoML
        export, the data) and the registry's absolute paths moved to the new folder, so that a
        test may damage or extend its clone without touching the original or another clone."""
        import shutil
        import sqlite3

        shutil.copytree(self.root, root)
        old, new = str(self.root), str(root)
        with sqlite3.connect(root / "mlflow.db") as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for col in db.execute(f"PRAGMA table_info('{table}')").fetchall():
                    if "CHAR" in col[2].upper() or "TEXT" in col[2].upper():
                        db.execute(
                            f'UPDATE "{table}" SET "{col[1]}" = replace("{col[1]}", ?, ?) '
                            f'WHERE instr("{col[1]}", ?) > 0',
                            (old, new, old),
                        )
        moved = lambda p: root / Path(p).relative_to(self.root)  # noqa: E731
        return Store(root, moved(self.data), f"sqlite:///{root / 'mlflow.db'}", moved(self.config))

    def train(
        self, *args: str, data: Path | None = None, timeout: float = 900
    ) -> subprocess.CompletedProcess:
        return run_pipeline(
            "train",
            "--data",
            str(data or self.data),
            "--config",
            str(self.config),
            *args,
            env=self.env(),
            timeout=timeout,
        )


REPO = Path(__file__).resolve().parents[1]  # the repository root


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

    store = Store.at(root)
    write(generate(n, seed=seed), store.data)
    store.config.write_text(FAST_CONFIG)
    return store


def train_champion(store: Store) -> Store:
    """``store`` with a champion trained by the training command itself on its data and config;
    AssertionError with the command's output when the run did not make one."""
    proc = store.train()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "is the new champion" in proc.stdout, proc.stdout[-3000:]
    return store


def train_store(root: Path) -> Store:
    """A store at ``root`` (``make_store``: n = 2,000, the test settings) with a champion."""
    return train_champion(make_store(root))


def shared_store(shared: Path) -> Store:
    """The store at ``shared``, trained by whichever test worker of a run asks first, behind a
    file lock (``<shared>.lock``; tests/conftest.py). ``<shared>/trained.ok`` marks a finished
    training; a folder without it was left half-way by a worker that failed, and is trained
    again."""
    import fcntl
    import shutil

    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / "trained.ok").exists():
            if shared.exists():
                shutil.rmtree(shared)
            train_store(shared)
            (shared / "trained.ok").write_text("ok")
    return Store.at(shared)


# ---------------------------------------------------------------------------------------------
# A real `bentoml serve` of the service on a free loopback port (tests/service/test_serving.py,
# test_browser.py and test_faults.py share one, a session-scoped fixture of tests/conftest.py).
# Output goes to a log file the tests read (to check that no intake value is logged); the server
# is stopped by SIGTERM to its process group.

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
        stop_group(self.proc, timeout=30)


def stop_group(proc: subprocess.Popen, timeout: float = 30, reap: bool = False) -> None:
    """SIGTERM to the process group of ``proc`` (started with ``start_new_session``), SIGKILL
    after ``timeout`` s. ``reap``: also SIGKILL workers that outlived their parent in the group."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    if reap:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


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


def service_env(
    tmp: Path,
    tracking_uri: str,
    key: str | None,
    audit_hash_key: str = AUDIT_HASH_KEY,
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a ``bentoml serve`` of the service: this process's, without its own
    serving settings or registry, pointed at ``tracking_uri``, auditing into ``tmp``/audit.sqlite."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALLIANCE_RISK_SERVING__")
        and k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        BENTOML_HOME=str(tmp / "bentoml"),  # the server's own model store
        ALLIANCE_RISK_SERVING__AUDIT_DB=str(tmp / "audit.sqlite"),
        ALLIANCE_RISK_SERVING__AUDIT_HASH_KEY=audit_hash_key,
        BENTOML_DO_NOT_TRACK="True",
        GX_ANALYTICS_ENABLED="false",
    )
    if key:
        env["ALLIANCE_RISK_SERVING__API_KEY"] = key
    env.update(extra_env or {})
    return env


SERVE_COMMAND = ["-m", "bentoml", "serve", "serving.service:AllianceRisk", "--host", "127.0.0.1"]


def export_champion(env: dict[str, str]) -> dict[str, str]:
    """What ``python -m pipelines.serve`` does while BentoML starts: export the registry's
    champion (``MLFLOW_TRACKING_URI``) into ``BENTOML_HOME``'s model store (models/lifecycle/bento_store.py),
    in a process of its own; ``env`` plus the tag to serve, or the reason there is none."""
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "models.lifecycle.bento_store", env["MLFLOW_TRACKING_URI"]],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"exporting the champion failed:\n{proc.stderr[-3000:]}")
    return {**env, **json.loads(proc.stdout.strip().splitlines()[-1])}


def launch_service(
    tmp: Path,
    tracking_uri: str,
    key: str | None = SERVE_KEY,
    max_batch: int = 5,
    wait_ready: bool = True,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
    export: bool = True,
) -> LiveService:
    """Export the champion of ``tracking_uri`` as ``pipelines.serve`` does, start `bentoml serve
    serving.service:AllianceRisk` on it and wait for /readyz (or /livez). ``export=False``: no
    export and no tag, as a bare `bentoml serve` runs (it serves the newest model already in
    ``tmp``/bentoml)."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = service_env(
        tmp,
        tracking_uri,
        key,
        AUDIT_HASH_KEY,
        {"ALLIANCE_RISK_SERVING__MAX_BATCH": str(max_batch), **(extra_env or {})},
    )
    if export:
        env = export_champion(env)
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
            # --port 0: the kernel picks the port when the server binds it (see _listening_port)
            [sys.executable, *SERVE_COMMAND, "--port", "0"],
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
