"""Read the registry while the service is still importing, to shorten cold start.

Why: reading the MLflow registry costs about 3.5 s (a child process importing MLflow and opening
the store), and BentoML imports the service module twice in sequence (once in the parent process,
then in each worker). ``start()``, called first thing in ``serving.service``, launches the
registry reader (``python -m serving.loader``) from the parent into a private folder named after
the parent's PID; the workers, whose parent PID names that folder, wait for its answer instead of
starting their own read. Both workers then serve the same version.

Only under BentoML (the parent ``bentoml serve`` or its workers); a plain import (tests, tools)
starts nothing. The folder is 0700, must belong to this user, and is removed when the parent
exits; a folder left by a killed process with the same PID is removed first. A watcher thread in
the parent writes an error answer if the reader dies or times out, so workers never wait for
nothing (they then answer 503 with the reason). The scorer's checksums are verified on load.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PREFIX = "alliance-risk-prefetch-"
ANSWER = "answer.json"


def _folder(pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"{PREFIX}{os.getuid()}-{pid}"


def _under_bentoml() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    names = (getattr(spec, "name", "") or "", os.path.basename(sys.argv[0] if sys.argv else ""))
    return any("bentoml" in n for n in names)


def _ours(d: Path) -> bool:
    try:
        st = d.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and (st.st_mode & 0o077) == 0


_STARTED = False


def _write_error(d: Path, reason: str) -> None:
    """Leave an answer whatever happened to the reader, so no worker waits for nothing."""
    if (d / ANSWER).exists():
        return
    part = d / (ANSWER + ".watch")
    try:
        part.write_text(json.dumps({"error": reason}))
        part.replace(d / ANSWER)
    except OSError:
        pass


# BentoML commands that import the service without serving it (``bentoml build`` reads the
# service definition): nothing to prefetch, and a registry read there would be a stray process.
NOT_SERVING = frozenset({"build", "containerize", "get", "list", "export", "import", "delete"})


def _serving() -> bool:
    return _under_bentoml() and not (len(sys.argv) > 1 and sys.argv[1] in NOT_SERVING)


def start(tracking_uri: str, name: str) -> None:
    """In the first BentoML process that imports the service, launch the registry reader."""
    global _STARTED
    if _STARTED or not _serving() or _ours(_folder(os.getppid())):
        return
    _STARTED = True
    d = _folder(os.getpid())
    if _ours(d):  # left by an earlier process with this PID that was killed: stale
        shutil.rmtree(d, ignore_errors=True)
    try:
        d.mkdir(mode=0o700)
    except OSError:
        return  # someone else's folder, or no temp folder: each worker reads the registry itself
    from serving.loader import READ_TIMEOUT_S, fetch_command

    try:
        proc = subprocess.Popen(
            fetch_command(tracking_uri, name, d),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
        )
    except OSError as exc:
        _write_error(d, f"the registry reader could not start: {exc}")
        return

    def _watch() -> None:
        try:
            code = proc.wait(timeout=READ_TIMEOUT_S)
            _write_error(d, f"the registry reader exited with {code} without an answer")
        except subprocess.TimeoutExpired:
            proc.kill()
            _write_error(
                d, f"the tracking store {tracking_uri} did not answer within {READ_TIMEOUT_S} s"
            )

    threading.Thread(target=_watch, name="registry-reader-watch", daemon=True).start()

    def _cleanup() -> None:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)

    atexit.register(_cleanup)


def ready(timeout: float = 300.0) -> Path | None:
    """The folder holding the prefetched answer (waiting for it), or None if nothing was
    prefetched for this process (then the caller reads the registry itself)."""
    if not _under_bentoml():
        return None
    for pid in (os.getppid(), os.getpid()):
        d = _folder(pid)
        if _ours(d):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _ours(d):
                if (d / ANSWER).is_file():
                    return d
                time.sleep(0.02)
            return None
    return None
