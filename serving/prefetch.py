"""Read the registry while the service is still importing, to shorten cold start.

Why: reading the MLflow registry costs about 3.5 s (a child process importing MLflow and opening
the store), and BentoML imports the service module twice in sequence (once in the parent process,
then in each worker). ``start()``, called first thing in ``serving.service``, launches the
registry reader (``python -m serving.loader``) from the parent into a private folder named after
the parent's PID; the workers, whose parent PID names that folder, wait for its answer instead of
starting their own read. Both workers then serve the same version.

Only under BentoML (the parent ``bentoml serve`` or its workers); a plain import (tests, tools)
starts nothing. The folder is 0700, must belong to this user, and is removed when the parent
exits; the scorer's checksums are verified on load as always.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import subprocess
import sys
import tempfile
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


def start(tracking_uri: str, name: str) -> None:
    """In the first BentoML process that imports the service, launch the registry reader."""
    if not _under_bentoml() or _ours(_folder(os.getppid())):
        return
    d = _folder(os.getpid())
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:
        return  # already started in this process
    except OSError:
        return  # no temp folder: the worker reads the registry itself
    from serving.loader import fetch_command

    proc = subprocess.Popen(
        fetch_command(tracking_uri, name, d),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
    )

    def _cleanup() -> None:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)

    atexit.register(_cleanup)


def ready(timeout: float = 300.0) -> Path | None:
    """The folder holding the prefetched answer (waiting for it), or None if nothing was
    prefetched for this process."""
    for pid in (os.getppid(), os.getpid()):
        d = _folder(pid)
        if _ours(d):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if (d / ANSWER).is_file():
                    return d
                time.sleep(0.02)
            return None
    return None
