"""Manual promotion and rollback, run the way a person runs them: `python -m pipelines.promote
VERSION`, `--rollback` and `--list` as subprocesses against a real trained registry.

Each test works on its own copy of the trained store's registry database (SQLite backup API), so
moving the alias here never changes the champion that other tests' servers load. The copy holds
the trained version 1 (champion, promoted by the training gate); the fixture registers the same
logged model again as versions 2 and 3, the way a training run registers a version that the gate
did not promote (a second training run would cost minutes and adds nothing to what is tested
here: the registry's aliases and tags). What each test expects comes from the README ("a human
moves the champion alias, or restores the previous champion") and is read back with MLflow's own
client and with the loader the service uses.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.commands import REPO, run_pipeline

NAME = "alliance-risk"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained")]


class Registry:
    def __init__(self, uri: str, bentoml_home: Path):
        self.uri = uri
        self.bentoml_home = bentoml_home  # this registry's own BentoML model store

    @property
    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("ALLIANCE_RISK_", "MLFLOW_"))
        }
        return {
            **env,
            "MLFLOW_TRACKING_URI": self.uri,
            "GX_ANALYTICS_ENABLED": "false",
            "BENTOML_HOME": str(self.bentoml_home),
        }

    def exported(self) -> str:
        """The registry version a `bentoml serve` without a model tag would load now: the
        newest model in BentoML's store, read as the service reads it."""
        return self._python(
            "-c",
            "from models.lifecycle.bento_store import load; print(load()[0].version)",
            timeout=120,
        ).strip()

    def _python(self, *args: str, timeout: float = 180) -> str:
        """``python ARGS`` from the repository against this registry; its output."""
        proc = subprocess.run(
            [sys.executable, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=timeout,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    def promote(self, *args: str) -> subprocess.CompletedProcess:
        return run_pipeline("promote", *args, env=self.env(), timeout=180)

    def sync(self) -> dict[str, str]:
        """What ``python -m pipelines.serve`` does while BentoML starts (models/lifecycle/bento_store.py):
        the environment it hands the service."""
        return json.loads(self._python("-m", "models.lifecycle.bento_store", self.uri, NAME))

    def champion(self) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(NAME, "champion").version)
        except MlflowException:
            return None

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(NAME, version).tags)


def _copy_db(src: str, dst: str) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


@pytest.fixture
def registry(trained_store, tmp_path) -> Registry:
    import mlflow

    db = tmp_path / "mlflow.db"
    _copy_db(str(trained_store.root / "mlflow.db"), str(db))
    reg = Registry(f"sqlite:///{db}", tmp_path / "bentoml")
    v1 = reg.client.get_model_version(NAME, "1")
    # Registering looks the logged model up through MLflow's global tracking URI (restored after
    # the test by conftest's fixture).
    mlflow.set_tracking_uri(reg.uri)
    for _ in range(2):
        reg.client.create_model_version(NAME, v1.source, run_id=v1.run_id)
    assert reg.champion() == "1"
    return reg


def _listing(stdout: str) -> dict[str, str]:
    """{version: aliases} from `--list` lines: 'version N  aliases=a,b  {tags}'."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("version "):
            head = line.split()
            out[head[1]] = head[2].removeprefix("aliases=")
    return out


def test_list_shows_every_version_and_the_champion(registry):
    proc = registry.promote("--list")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _listing(proc.stdout) == {"1": "champion", "2": "-", "3": "-"}
    # why version 1 is champion: the gate's reason with its figures and CIs
    assert re.search(r"no champion yet; AUROC [0-9.]+ \[95% CI [0-9.]+ to [0-9.]+\]", proc.stdout)


def test_promote_moves_the_alias_and_records_why(registry):
    from models.lifecycle.resolve import load

    proc = registry.promote("3", "--reason", "clinical lead sign-off")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        proc.stdout.strip() == f"version 3 of {NAME} is now the champion (clinical lead sign-off)"
    )
    assert registry.champion() == "3"
    tags = registry.tags("3")
    assert tags["previous_champion"] == "1" and tags["promotion_reason"] == "clinical lead sign-off"
    assert load(registry.uri, NAME, lean=True).version == "3"  # what pipelines.serve serves
    assert registry.exported() == "3"  # and a bare `bentoml serve`
    assert _listing(registry.promote("--list").stdout) == {"1": "-", "2": "-", "3": "champion"}


def test_a_champion_moved_in_the_registry_is_served_from_the_next_sync(registry):
    """The alias moved outside pipelines.promote (in the MLflow UI): BentoML's store keeps the
    old champion until the next `pipelines.serve`, whose sync exports the new one and hands the
    service its tag."""
    first = registry.sync()
    assert first == {"ALLIANCE_RISK_SERVING__MODEL_TAG": first["ALLIANCE_RISK_SERVING__MODEL_TAG"]}
    assert first["ALLIANCE_RISK_SERVING__MODEL_TAG"].startswith(f"{NAME}:v1-")
    registry.client.set_registered_model_alias(NAME, "champion", "2")  # as the MLflow UI does
    assert registry.exported() == "1"  # a bare `bentoml serve` has not seen the move
    tag = registry.sync()["ALLIANCE_RISK_SERVING__MODEL_TAG"]
    assert tag.startswith(f"{NAME}:v2-") and registry.exported() == "2"
    assert registry.sync()["ALLIANCE_RISK_SERVING__MODEL_TAG"] == tag  # nothing new to export


def test_rollback_restores_each_previous_champion_then_refuses(registry):
    """1 -> 3 -> 2 by hand, out of numeric order: two rollbacks give 3 then 1 (the recorded
    previous champions, not the versions numbered one below); a third has nothing to go back to."""
    from models.lifecycle.resolve import load

    for v in ("3", "2"):
        assert registry.promote(v).returncode == 0
    assert registry.champion() == "2"

    for expected in ("3", "1"):
        proc = registry.promote("--rollback")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == f"champion of {NAME} rolled back to version {expected}"
        assert registry.champion() == expected
        assert load(registry.uri, NAME, lean=True).version == expected
        assert registry.exported() == expected  # exported again: the newest in BentoML's store

    proc = registry.promote("--rollback")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"cannot roll back: {NAME} version 1 was the first champion; "
        "there is nothing to roll back to"
    )
    assert registry.champion() == "1"  # the refusal moved nothing


def test_unknown_version_is_refused_and_nothing_moves(registry):
    proc = registry.promote("99")
    assert proc.returncode == 1
    assert proc.stderr.startswith("registry error:") and "version=99" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert registry.champion() == "1"
    assert "previous_champion" not in registry.tags("2")


def test_promoting_the_champion_again_keeps_the_rollback_target(registry):
    assert registry.promote("2").returncode == 0
    assert registry.promote("2").returncode == 0  # a repeat must not record 2 as its own previous
    assert registry.champion() == "2" and registry.tags("2")["previous_champion"] == "1"


def test_empty_store_has_nothing_to_roll_back_or_list(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()  # empty, valid store
    reg = Registry(uri, tmp_path / "bentoml")
    proc = reg.promote("--rollback")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"cannot roll back: {NAME} has no champion to roll back"
    proc = reg.promote("--list")
    assert proc.returncode == 0
    assert f"{NAME} has no registered versions; run: python -m pipelines.train" in proc.stdout


@pytest.mark.parametrize("args", [[], ["2", "--rollback"], ["--list", "--rollback"]])
def test_exactly_one_action_is_required(tmp_path, args):
    reg = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "bentoml")
    proc = reg.promote(*args)
    assert proc.returncode == 2
    assert "give exactly one of VERSION, --rollback or --list" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # refused before touching any store


class Launched:
    """A running ``python -m pipelines.serve`` (its own process group): its output so far and,
    with ``watch``, what a client polling ``/readyz`` every 50 ms saw (``polls``): for each answer
    its status, and after each 200 the status and version of ``/model`` asked at once."""

    def __init__(self, proc: subprocess.Popen, port: int, lines: list[str], watch: bool):
        import threading

        self.proc, self.port, self.lines = proc, port, lines
        self.base = f"http://127.0.0.1:{port}"
        self.polls: list[tuple[int, int | None, str]] = []
        self._done = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True) if watch else None
        if self._poller is not None:
            self._poller.start()

    def text(self) -> str:
        return "".join(self.lines)

    def _poll(self) -> None:
        import httpx

        while not self._done.is_set():
            try:  # a new connection each time, as an orchestrator's probe makes
                r = httpx.get(self.base + "/readyz", timeout=2)
                if r.status_code == 200:
                    m = httpx.get(self.base + "/model", headers=LAUNCHER_AUTH, timeout=5)
                    ok = m.status_code == 200
                    self.polls.append((200, m.status_code, m.json()["version"] if ok else m.text))
                else:
                    self.polls.append((r.status_code, None, r.text.strip()))
            except httpx.HTTPError:
                pass  # not listening yet, or the restart: no answer is not a stale answer
            self._done.wait(0.05)

    def stop_watching(self) -> None:
        self._done.set()
        if self._poller is not None:
            self._poller.join(timeout=10)

    def stop(self) -> None:
        import signal

        self.stop_watching()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)


LAUNCHER_AUTH = {"Authorization": "Bearer launcher-test-key"}


def _launch(registry: Registry, tmp: Path, watch: bool = False) -> Launched:
    """Start `python -m pipelines.serve` as a person does and wait until it says where the page
    is (or that it is not ready). Retries a lost port race (the port is picked here)."""
    import socket
    import threading
    import time

    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **registry.env(),
            "ALLIANCE_RISK_SERVING__API_KEY": "launcher-test-key",
            "ALLIANCE_RISK_SERVING__AUDIT_DB": str(tmp / "audit.sqlite"),
            "ALLIANCE_RISK_SERVING__AUDIT_HASH_KEY": "launcher-test-audit",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True).start()
        launched = Launched(proc, port, lines, watch)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            text = launched.text()
            if "intake page:" in text or "NOT READY" in text:
                break
            time.sleep(0.2)
        text = launched.text()
        if "intake page:" in text:
            return launched
        launched.stop()
        if "Address already in use" not in text:
            raise AssertionError(text[-3000:])
    raise AssertionError("pipelines.serve lost a port race 3 times")


def _served_version(launched: Launched) -> str:
    import httpx

    r = httpx.get(launched.base + "/model", headers=LAUNCHER_AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["version"]


def test_pipelines_serve_restarts_its_server_only_when_the_sync_changed_the_store(
    registry, tmp_path
):
    """The launcher starts BentoML on the newest model in the store while it reads the registry
    (docs/benchmarks.md: one after the other missed the 5 s start). A champion moved in the MLflow
    UI meanwhile must still be what it serves: the server is started again on it, and a client
    polling /readyz every 50 ms through the restart never gets 200 from the model about to be
    replaced (each 200 is followed at once by /model: the champion's version). Nothing moved:
    no restart."""
    import time

    registry.sync()  # version 1 in BentoML's store, as training's promotion leaves it
    registry.client.set_registered_model_alias(NAME, "champion", "2")  # as the MLflow UI does
    launched = _launch(registry, tmp_path, watch=True)
    try:
        time.sleep(1.0)  # a few more polls once it is ready
        launched.stop_watching()
        out, version = launched.text(), _served_version(launched)
    finally:
        launched.stop()
    assert "just exported to the model store: restarting the service" in out, out[-3000:]
    assert version == "2"
    ready = [p for p in launched.polls if p[0] == 200]
    assert ready, launched.polls[-5:]
    assert all(p == (200, 200, "2") for p in ready), ready
    launched = _launch(registry, tmp_path)
    try:
        out, version = launched.text(), _served_version(launched)
    finally:
        launched.stop()
    assert "restarting" not in out and version == "2", out[-3000:]
    assert f"serving {NAME}:v2-" in out


def test_nothing_answers_on_the_port_after_the_launcher_is_killed_outright(registry, tmp_path):
    """SIGKILL of the launcher's process group (a crash, an out-of-memory kill) reaches the
    launcher and BentoML's arbiter but not the workers, which BentoML starts in sessions of their
    own: they must stop by themselves rather than keep answering on the port."""
    import signal
    import time

    import httpx
    import psutil

    launched = _launch(registry, tmp_path)
    tree = [launched.proc.pid]
    try:
        assert httpx.get(launched.base + "/readyz", timeout=10).status_code == 200
        tree += [p.pid for p in psutil.Process(launched.proc.pid).children(recursive=True)]
        assert len(tree) >= 4, tree  # launcher, arbiter, two workers
        os.killpg(launched.proc.pid, signal.SIGKILL)
        launched.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        answered = True
        while answered and time.monotonic() < deadline:
            try:
                httpx.get(launched.base + "/livez", timeout=1)
                time.sleep(0.2)
            except httpx.HTTPError:
                answered = False
        assert not answered, "the port still answers 10 s after the SIGKILL"
        alive = [p for p in tree if _running(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in tree if _running(p)]
        assert not alive, f"processes of the served tree still running: {alive}"
    finally:
        launched.stop()  # when the test failed before its SIGKILL
        for pid in tree:  # whatever outlived the test, by PID
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_whose_arbiter_died_before_it_started_watching_stops():
    """A worker still loading its model when the launcher's group was killed is re-parented
    before its watchdog starts: watching "the parent at that moment" it would never stop (seen
    once in a fresh clone's suite: the port answered 10 s after the SIGKILL). It watches the
    arbiter its environment names (``SUPERVISOR_ENV``), so it stops at once."""
    import signal
    import time

    from serving.launcher import SUPERVISOR_ENV

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a PID that was a process and is not this one's parent
    code = (
        "import time\n"
        "from serving.launcher import watch_parent\n"
        "watch_parent(interval=0.1, grace=1.0)\n"
        "time.sleep(60)\n"
    )
    worker = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, SUPERVISOR_ENV: str(gone.pid)},
        cwd=REPO,
        timeout=30,
        capture_output=True,
        text=True,
    )
    # stopped by its own SIGTERM, long before its sleep would end (the run's timeout is 30 s)
    assert worker.returncode == -signal.SIGTERM, worker.stderr[-2000:]
    # the same worker under a live arbiter (its real parent) keeps running
    alive = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, SUPERVISOR_ENV: str(os.getpid())},
        cwd=REPO,
    )
    try:
        time.sleep(1.5)
        assert alive.poll() is None
    finally:
        alive.kill()
        alive.wait()


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
