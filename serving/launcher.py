"""What ``python -m pipelines.serve`` (the launcher) and the service's worker processes agree on.

Standard library only: the launcher imports this module, and it must stay small (no BentoML, no
MLflow: docs/design.md, "Serving").

- **The confirmation file** (``CONFIRM_ENV``). The launcher starts ``bentoml serve`` at once on the
  newest model in BentoML's store while a short-lived process of its own syncs the registry's
  champion into that store. Each worker loads a model and then stays not ready (``/readyz`` 503,
  scoring refused) until the file named by ``CONFIRM_ENV`` holds the tag of the model *that worker
  loaded*: the launcher writes the champion's tag there once the sync has said what the champion
  is. A worker that loaded anything else (an older export, or one of two workers that raced an
  export) never becomes ready; the launcher restarts the server on the champion instead. Without
  ``CONFIRM_ENV`` (a bare ``bentoml serve``) nothing waits.
- **Dying with the supervisor.** ``die_with_parent`` is a ``preexec_fn`` for the launcher's
  children (Linux ``PR_SET_PDEATHSIG``: the kernel sends SIGTERM to ``bentoml serve`` when the
  launcher dies, however it dies, and BentoML's arbiter then stops its workers).
  ``watch_parent`` runs in each worker: BentoML's arbiter (circus) starts every worker in a
  session of its own (``os.setsid``), so a SIGKILL of the launcher's process group reaches the
  arbiter but not the workers, which would live on as orphans answering on the port with their
  model. The watchdog notices that the worker's parent changed (the arbiter is gone) and stops
  the worker: SIGTERM to itself (uvicorn's graceful shutdown closes the listening socket first),
  and ``os._exit`` if it is still alive a few seconds later.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

CONFIRM_ENV = "ALLIANCE_RISK_CONFIRM_FILE"
# The PID of BentoML's arbiter, set by it when it imports serving.service (``mark_supervisor``)
SUPERVISOR_ENV = "ALLIANCE_RISK_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

logger = logging.getLogger("bentoml.alliance_risk")


def confirm(path: str | Path, tag: str) -> None:
    """Say that ``tag`` is the registry's champion (atomic: a reader sees all of it or nothing)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tag)
    os.replace(tmp, path)


def confirmed_tag(path: str | Path) -> str | None:
    """The tag the launcher confirmed, or None while it has confirmed nothing."""
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when this process dies
    (Linux ``prctl(PR_SET_PDEATHSIG)``); None where that does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def is_bentoml_worker() -> bool:
    """Whether this process is one of BentoML's worker processes (``python -m
    _bentoml_impl.worker.service``), not its arbiter or anything else importing the service."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return bool(spec and spec.name.startswith("_bentoml_impl.worker"))


def mark_supervisor() -> None:
    """Record this process's PID in ``SUPERVISOR_ENV`` unless it is a BentoML worker. Called when
    ``serving.service`` is imported: BentoML's arbiter imports it before it starts its workers,
    which inherit the variable and so know which parent they were started by (``watch_parent``),
    even when that parent is already gone by the time a worker looks."""
    if not is_bentoml_worker():
        os.environ[SUPERVISOR_ENV] = str(os.getpid())


def watch_parent(interval: float = 0.5, grace: float = 5.0) -> threading.Thread:
    """Stop this process when its parent (BentoML's arbiter, for a worker) is gone: checked every
    ``interval`` s; SIGTERM to itself, then ``os._exit(1)`` after ``grace`` s. A daemon thread.

    The parent to watch is the arbiter named by ``SUPERVISOR_ENV`` when it is set: a worker still
    loading its model when the arbiter was killed (the other worker already answering) was
    re-parented before it started watching, and it watched its new parent for ever, answering on
    the port (seen once in a fresh clone's suite). Without the variable, the parent at the time
    of the call."""
    parent = os.getppid()
    named = os.environ.get(SUPERVISOR_ENV, "")
    if named.isdigit() and int(named) != os.getpid():  # never the watching process itself
        parent = int(named)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        logger.warning(
            "the server's supervisor (pid %d) is gone: this worker stops (pid %d)",
            parent,
            os.getpid(),
        )
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    thread = threading.Thread(target=watch, name="supervisor-watchdog", daemon=True)
    thread.start()
    return thread
