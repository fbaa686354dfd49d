"""Serve the champion: scoring API, intake page and API docs on 127.0.0.1 (BentoML).

    python -m pipelines.serve [--host 127.0.0.1] [--port 3000] [--config FILE]

Runs ``bentoml serve serving.service:AllianceRisk`` as a child process at once, on the newest
champion in BentoML's model store (training and ``pipelines.promote`` export each new champion
there). Meanwhile this process makes the MLflow registry's champion that newest model: it exports
it when the store lacks it (models/lifecycle/bento_store.py; this process reads MLflow, the serving
processes never do). Only when that sync changed the store (a champion moved in the MLflow UI, or
a fresh model store) is the child restarted, with the champion's tag
(``ALLIANCE_RISK_SERVING__MODEL_TAG``), before the service is reported ready. Why in parallel:
reading the registry costs about 3.4 s (MLflow's import 1.8 s, the store and the alias 1.6 s) and
BentoML's start about 2.5 s; one after the other they took 5.4-6.0 s to ready, over the 5 s goal
(docs/benchmarks.md). Then prints where to open the intake page and the API docs. Stop it with
Ctrl+C. Without a champion (or with a store that cannot be read) the service still starts, and
answers 503 with the reason.

API keys come from settings (``ALLIANCE_RISK_SERVING__API_KEY_HASHES``: SHA-256 hex digests, or
``ALLIANCE_RISK_SERVING__API_KEY``: a plain key). With neither, for local use this command makes a
random key, shows it once on the terminal (not in any log) and hands it to the server through its
environment; the intake page asks for it once per browser tab.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from features.settings import CONFIG_ENV, ROOT
from pipelines import cli

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
    synced: dict[str, tuple[dict[str, str], bool]] = {}

    def _sync() -> None:
        from models.lifecycle.bento_store import launch_env

        synced["env"] = launch_env(settings.tracking_uri, settings.train.registered_model)

    sync = threading.Thread(target=_sync, name="registry-sync", daemon=True)
    sync.start()
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    base = f"http://{shown}:{args.port}"
    print(f"starting the service on {args.host}:{args.port} (model store {settings.tracking_uri})")

    def _start() -> subprocess.Popen:
        return subprocess.Popen(build_command(args.host, args.port), env=env, cwd=str(ROOT))

    child = {"proc": _start()}

    def _stop(signum, _frame):
        if child["proc"].poll() is None:
            child["proc"].send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    try:
        sync.join()
        extra, changed = synced.get("env") or (
            {UNAVAILABLE_ENV: "the registry could not be read (see the error above)"},
            True,
        )
        if TAG_ENV in extra:
            print(f"serving {extra[TAG_ENV]} from BentoML's model store (the registry's champion)")
        if changed:  # the child started on another model (or on none): start it again
            why = (
                "the registry's champion was just exported to the model store"
                if TAG_ENV in extra
                else "the registry has no champion to serve; it will say why"
            )
            print(f"{why}: restarting the service", flush=True)
            _terminate(child["proc"])
            env.update(extra)
            child["proc"] = _start()
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
        return _terminate(child["proc"])


if __name__ == "__main__":
    sys.exit(main())
