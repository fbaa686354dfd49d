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


def installation_key(audit_path: Path) -> str | None:
    """The per-installation audit key beside the audit file, made on first use (mode 0600), or
    None when no usable key can be had. A fixed or empty key would let anyone who has the audit
    file test guesses of an id.

    The key is written to a private temporary file and published with ``os.link``, which fails
    if the name exists: a reader (another worker starting at the same moment) never sees a
    half-written key, and only one key ever wins."""
    import os
    import secrets
    import time

    key_file = audit_path.with_name(audit_path.name + ".key")
    for _ in range(100):
        try:
            key = key_file.read_text().strip()
        except FileNotFoundError:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = key_file.with_name(f"{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            try:
                os.link(tmp, key_file)
            except FileExistsError:
                pass  # another process published first: read theirs
            finally:
                tmp.unlink()
            continue
        if len(key) >= MIN_KEY_CHARS:
            return key
        time.sleep(0.02)  # not a key this code writes: give up after about two seconds
    return None


MIN_KEY_CHARS = 32


class AuditReadError(ValueError):
    """The audit store cannot be read as one: no scores table, or a broken file."""


def hash_id(key: bytes, admission_id: str) -> str:
    return hmac.new(key, admission_id.encode("utf-8"), hashlib.sha256).hexdigest()


class AuditLog:
    def __init__(self, path: str | Path, hash_key: str | None = None):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._failed = False
        if not hash_key:
            try:
                hash_key = installation_key(self.path)
            except OSError as exc:  # the folder cannot hold the key: no audit rows at all
                self._fail(exc)
                return
            if hash_key is None:
                self._fail(ValueError(), "has no usable key in its .key file")
                return
        self._key = hash_key.encode("utf-8")
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

    def _fail(self, exc: BaseException, why: str | None = None) -> None:
        if not self._failed:
            self._failed = True
            logger.error(
                "audit store %s %s; scoring continues without audit rows",
                self.path,
                why or f"is not writable ({type(exc).__name__})",
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

    @staticmethod
    def read_scores(
        path: str | Path, model_version: str | None = None
    ) -> list[tuple[str, float, str]]:
        """(admission_hash, probability, band) of every row of the store at ``path``, in the
        order they were written (only ``model_version``'s rows when given), read-only: nothing is
        created. Raises FileNotFoundError when there is no store, AuditReadError when it holds no
        scores table or cannot be read."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"audit store {path} does not exist")
        sql = "SELECT admission_hash, probability, band FROM scores"
        args: tuple = ()
        if model_version is not None:
            sql += " WHERE model_version = ?"
            args = (str(model_version),)
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
                if "scores" not in tables:
                    raise AuditReadError(
                        f"{path} holds no scores table (tables: {', '.join(sorted(tables)) or 'none'})"
                    )
                rows = con.execute(sql + " ORDER BY id", args).fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise AuditReadError(f"cannot read the scores table of {path}: {exc}") from exc
        return [(h, float(p), b) for h, p, b in rows]

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
