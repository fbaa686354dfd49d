"""API keys: SHA-256 digests from settings, compared in constant time.

Keys are configured as SHA-256 hex digests (``ServingConfig.api_key_hashes``); a plain key
(``ServingConfig.api_key``, for local use) is hashed at start and the plain text is dropped. A request
authenticates with ``Authorization: Bearer <key>``: the presented key is hashed and compared with
every configured digest by ``hmac.compare_digest`` (no early exit, so timing says nothing about
which digest came close). Nothing here logs a key or a digest.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The accepted key digests."""

    def __init__(self, hashes: list[str] | tuple[str, ...] = (), plain: str | None = None):
        digests: list[bytes] = []
        self.invalid = 0  # configured digests that are not 64 hex digits (ignored)
        for h in hashes:
            h = h.strip().lower()
            if _HEX64.match(h):
                digests.append(bytes.fromhex(h))
            else:
                self.invalid += 1
        if plain:
            digests.append(hashlib.sha256(plain.encode("utf-8")).digest())
        self._digests = tuple(dict.fromkeys(digests))

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def check_key(self, key: str | None) -> bool:
        if not key or not self._digests:
            return False
        presented = hashlib.sha256(key.encode("utf-8")).digest()
        ok = False
        for d in self._digests:
            ok |= hmac.compare_digest(presented, d)
        return ok

    def check_header(self, authorization: str | bytes | None) -> bool:
        """True for ``Bearer <valid key>`` (scheme case-insensitive)."""
        if not authorization:
            return False
        if isinstance(authorization, bytes):
            authorization = authorization.decode("latin-1")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return self.check_key(key.strip())
