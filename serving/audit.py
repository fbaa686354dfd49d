"""The audit trail: one row per score in a local SQLite file, with no readable identifier.

A row holds the UTC time, the model version, a keyed HMAC-SHA256 of the admission_id (with
``ServingConfig.audit_hash_key``, or a random per-installation key kept in ``<audit_db>.key``
when none is configured, so the same admission can be traced by someone who holds the
key, while the file alone reveals no id), the probability and the band. Nothing else from the
record is stored.

Writes must never stop scoring: if the file cannot be opened or written, the failure is logged
once (without the row) and scoring goes on. WAL mode and ``synchronous=NORMAL`` keep an insert at
tens of microseconds, and several workers may share the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import sqlite3
import threading
from pathlib import Path

logger = logging.getLogger("alliance_risk.audit")

SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scored_at TEXT NOT NULL,
    model_version TEXT NOT NULL,
    admission_hash TEXT NOT NULL,
    probability REAL NOT NULL,
    band TEXT NOT NULL,
    route TEXT NOT NULL
)
"""


def installation_key(audit_path: Path) -> str:
    """The per-installation audit key beside the audit file, made on first use (mode 0600).
    A fixed default key would let anyone who has the audit file test guesses of an id."""
    import os
    import secrets

    key_file = audit_path.with_name(audit_path.name + ".key")
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        key = secrets.token_hex(32)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
    except FileExistsError:  # another worker made it between our read and create
        return key_file.read_text().strip()


def hash_id(key: bytes, admission_id: str) -> str:
    return hmac.new(key, admission_id.encode("utf-8"), hashlib.sha256).hexdigest()


class AuditLog:
    def __init__(self, path: str | Path, hash_key: str | None = None):
        self.path = Path(path)
        if not hash_key:
            try:
                hash_key = installation_key(self.path)
            except OSError:  # unwritable folder: no audit rows anyway (see _open)
                hash_key = ""
        self._key = hash_key.encode("utf-8")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._failed = False
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path), timeout=2.0, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(SCHEMA)
            self._conn = conn
        except (OSError, sqlite3.Error) as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not self._failed:
            self._failed = True
            logger.error(
                "audit store %s is not writable (%s); scoring continues without audit rows",
                self.path,
                type(exc).__name__,
            )

    @property
    def healthy(self) -> bool:
        return self._conn is not None and not self._failed

    def record(self, rows: list[tuple[str, str, float, str]], route: str) -> None:
        """rows: (admission_id, model_version, probability, band). Never raises."""
        if self._conn is None or not rows:
            return
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        data = [
            (now, version, hash_id(self._key, aid or ""), float(p), band, route)
            for aid, version, p, band in rows
        ]
        try:
            with self._lock:
                conn = self._conn
                conn.execute("BEGIN")
                try:
                    conn.executemany(
                        "INSERT INTO scores (scored_at, model_version, admission_hash, "
                        "probability, band, route) VALUES (?, ?, ?, ?, ?, ?)",
                        data,
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            self._fail(exc)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
