"""Serve the champion: scoring API, intake page and API docs on 127.0.0.1 (BentoML).

    python -m pipelines.serve [--host 127.0.0.1] [--port 3000] [--config FILE]

Runs ``bentoml serve serving.service:AllianceRisk`` as a child process at once, on the newest
champion in BentoML's model store (training and ``pipelines.promote`` export each new champion
there). Meanwhile a short-lived child of this process (``--sync-registry``) makes the MLflow
registry's champion that newest model: it exports it when the store lacks it
(models/lifecycle/bento_store.py) and prints the champion's tag. Why in parallel: reading the registry costs
about 3.4 s (MLflow's import 1.8 s, the store and the alias 1.6 s) and BentoML's start about
2.5 s; one after the other they took 5.4-6.0 s to ready, over the 5 s goal (docs/benchmarks.md).

No stale model reports ready. Each worker loads its model and then answers ``/readyz`` 503 (and
refuses to score) until this process writes the champion's tag into a file the workers know
(``serving/launcher.py``) and the tag is the one that worker loaded. When the sync exported
nothing, the tag is written and the workers become ready at once; when it exported (a champion
moved in the MLflow UI, a fresh model store) or found no champion, the child is stopped before
anything is confirmed and started again with the champion's tag
(``ALLIANCE_RISK_SERVING__MODEL_TAG``), already confirmed. Chosen over deciding the champion
before BentoML starts because that decision needs the registry read (3.4 s of MLflow) that the
parallel start exists to hide; the file costs one small read per ``/readyz`` until confirmed.

The launcher stays small: MLflow is imported only in the sync child, which exits (the launcher
held 257 MB with MLflow loaded). Its children die with it: on Linux the kernel sends them SIGTERM
when the launcher dies (``PR_SET_PDEATHSIG``), and each worker stops itself when BentoML's
arbiter, its parent, is gone (a SIGKILL of the launcher's process group does not reach the
workers, which BentoML starts in sessions of their own).

Then prints where to open the intake page and the API docs. Stop it with Ctrl+C. Without a
champion (or with a store that cannot be read) the service still starts, and answers 503 with the
reason.

API keys come from settings (``ALLIANCE_RISK_SERVING__API_KEY_HASHES``: SHA-256 hex digests, or
``ALLIANCE_RISK_SERVING__API_KEY``: a plain key). With neither, for local use this command makes a
random key, shows it once on the terminal (not in any log) and hands it to the server through its
environment; the intake page asks for it once per browser tab.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from features.settings import CONFIG_ENV, ROOT
from pipelines import cli
from serving.launcher import CONFIRM_ENV, confirm, die_with_parent

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _show_key_once(key: str) -> None:
    """Write the generated key to the controlling terminal only (never to stdout logs)."""
    text = (
        "\n  API key for this session (generated because none is configured; not logged):\n"
        f"    {key}\n"
        "  Enter it on the intake page, or send 'Authorization: Bearer <key>' to the API.\n\n"
    )
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(text)
        return
    except OSError:
        pass
    # No terminal (CI, a service manager): stderr is the closest thing; say so.
    sys.stderr.write(text.replace("not logged", "no terminal: shown on stderr"))
    sys.stderr.flush()


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False, f"the server exited with code {proc.returncode}"
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return True, "ready"
        except urllib.error.HTTPError as exc:
            last = exc.read().decode("utf-8", "replace").strip() or f"HTTP {exc.code}"
            if exc.code == 503 and last.startswith("not ready:"):
                return False, last  # started, but refuses to score: no point in waiting
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False, f"not ready after {timeout:.0f} s ({last})"


def _terminate(proc: subprocess.Popen) -> int:
    """SIGTERM (the parent stops its workers), then SIGKILL after 30 s; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _sync_registry(settings) -> int:
    """``--sync-registry``, in the launcher's short-lived child: export the registry's champion
    (models/lifecycle/bento_store.py) and print ``{"env": ..., "changed": ...}`` as the last line."""
    from models.lifecycle.bento_store import launch_env

    extra, changed = launch_env(settings.tracking_uri, settings.train.registered_model)
    print(json.dumps({"env": extra, "changed": changed}), flush=True)
    return 0


def _sync_result(proc: subprocess.Popen) -> tuple[dict[str, str], bool]:
    """The sync child's answer: the service's environment and whether the store changed."""
    from models.lifecycle.bento_store import UNAVAILABLE_ENV

    out, _ = proc.communicate()
    try:
        answer = json.loads(out.strip().splitlines()[-1])
        return dict(answer["env"]), bool(answer["changed"])
    except (ValueError, IndexError, KeyError, TypeError):
        return {
            UNAVAILABLE_ENV: "the registry could not be read (the registry sync exited with "
            f"code {proc.returncode}; see the error above)"
        }, True


def build_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:AllianceRisk",
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(ROOT),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = cli.parser("serve", "Serve the champion model: scoring API, intake page and API docs.")
    ap.add_argument("--host", help="address to bind (default serving.host, 127.0.0.1)")
    ap.add_argument("--port", type=int, help="port (default serving.port, 3000)")
    ap.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the service to be ready (default %(default)s)",
    )
    # the launcher's own registry sync, run as its short-lived child (not for people)
    ap.add_argument("--sync-registry", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    settings, code = cli.settings_or_exit(
        cli.console(stderr=True),
        args.config,
        2,
        serving__host=args.host,
        serving__port=args.port,
    )
    if settings is None:
        return code
    if args.sync_registry:
        return _sync_registry(settings)
    args.host, args.port = settings.serving.host, settings.serving.port
    if args.host not in LOOPBACK:
        print(
            f"warning: binding {args.host}, not loopback: the service is reachable from other "
            "machines; put it behind TLS",
            file=sys.stderr,
        )

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "ALLIANCE_RISK_SERVING__HOST": args.host,
        "ALLIANCE_RISK_SERVING__PORT": str(args.port),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    if args.config is not None:  # the workers build their settings from the same file
        env[CONFIG_ENV] = str(args.config)
    if not settings.serving.api_key and not settings.serving.api_key_hashes:
        key = secrets.token_urlsafe(24)
        env["ALLIANCE_RISK_SERVING__API_KEY"] = key
        _show_key_once(key)

    from models.lifecycle.bento_store import TAG_ENV, UNAVAILABLE_ENV

    env.pop(UNAVAILABLE_ENV, None)
    env.pop(TAG_ENV, None)
    # The workers wait for this file to name the model they loaded (serving/launcher.py).
    confirm_dir = tempfile.mkdtemp(prefix="alliance-risk-serve-")
    confirm_file = os.path.join(confirm_dir, "champion")
    env[CONFIRM_ENV] = confirm_file
    die_with_me = die_with_parent()  # the kernel stops the children if this process is killed

    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    base = f"http://{shown}:{args.port}"
    print(f"starting the service on {args.host}:{args.port} (model store {settings.tracking_uri})")

    def _start() -> subprocess.Popen:
        return subprocess.Popen(
            build_command(args.host, args.port), env=env, cwd=str(ROOT), preexec_fn=die_with_me
        )

    sync_cmd = [sys.executable, "-m", "pipelines.serve", "--sync-registry"]
    if args.config is not None:
        sync_cmd += ["--config", str(args.config)]
    # MLflow is imported in this child only: it exits after the sync, so the launcher stays small
    sync = subprocess.Popen(
        sync_cmd, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, text=True, preexec_fn=die_with_me
    )
    child = {"proc": _start()}
    stopping: dict[str, bool] = {}

    def _stop(signum, _frame):
        stopping["sigterm"] = True
        for proc in (sync, child["proc"]):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    try:
        extra, changed = _sync_result(sync)
        if stopping:
            return _terminate(child["proc"])
        if TAG_ENV in extra:
            print(f"serving {extra[TAG_ENV]} from BentoML's model store (the registry's champion)")
        if changed:  # the child started on another model (or on none): start it again
            why = (
                "the registry's champion was just exported to the model store"
                if TAG_ENV in extra
                else "the registry has no champion to serve; it will say why"
            )
            print(f"{why}: restarting the service", flush=True)
            _terminate(child["proc"])  # it never reported ready: it was waiting for the file
            env.update(extra)
            if TAG_ENV in extra:
                confirm(confirm_file, extra[TAG_ENV])
            child["proc"] = _start()
            if stopping:
                return _terminate(child["proc"])
        else:  # the child loaded the champion: it may report ready now
            confirm(confirm_file, extra[TAG_ENV])
        ok, why = _wait_ready(base, child["proc"], args.ready_timeout)
        if ok:
            print(
                f"\n  intake page:   {base}/\n"
                f"  API docs:      {base}/api-docs   (OpenAPI JSON: {base}/docs.json)\n"
                f"  health:        {base}/livez  {base}/readyz  {base}/metrics\n"
                "  Ctrl+C stops the service.\n",
                flush=True,
            )
        else:
            print(f"\n  the service is up but NOT READY: {why}\n", file=sys.stderr, flush=True)
        return child["proc"].wait()
    except KeyboardInterrupt:
        if sync.poll() is None:
            sync.kill()
            sync.wait()
        return _terminate(child["proc"])
    finally:
        shutil.rmtree(confirm_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
