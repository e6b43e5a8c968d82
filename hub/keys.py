"""API keys and roles (SPEC §10): creating, listing, revoking and verifying keys.

A key is `hub_` and 32 random bytes (`secrets.token_urlsafe`), shown once when created. The
store keeps only its HMAC-SHA256 under a secret of that store (made on first use): 256 random
bits need no slow KDF against guessing, and a copy of the table is useless against another
store. Verified keys are remembered for `cache_s` seconds, so a request costs one HMAC and a
dict look-up; a revocation in any process takes effect within that time everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hub.errors import HubError, InvalidInput

ROLES = ("agent", "dashboard", "auditor", "admin")
KEY_PREFIX = "hub_"
CACHE_LIMIT = 10_000  # verified and unknown keys remembered at once


class KeyNotFound(HubError):
    status = 404
    kind = "key-not-found"
    title = "No such API key"


@dataclass(frozen=True)
class ApiKey:
    """A stored key without its secret: id, role, note, when created and revoked."""

    id: str
    role: str
    name: str | None
    created_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


class KeyTable(Protocol):
    """What the keys need of the store (hub/key_store.py)."""

    def api_key_secret(self, candidate: bytes) -> bytes: ...

    def insert_api_key(self, key: ApiKey, digest: str) -> None: ...

    def select_api_keys(self) -> list[ApiKey]: ...

    def find_api_key(self, digest: str) -> ApiKey | None: ...

    def revoke_api_key(self, key_id: str, at: str) -> ApiKey | None: ...

    def count_api_keys(self) -> tuple[int, int]: ...


def check_role(role: str, channels: frozenset[str]) -> str:
    """The role if it is one the hub knows (`channel:<name>` of a known channel)."""
    kind, colon, name = role.partition(":")
    if colon and kind == "channel" and name in channels:
        return role
    if not colon and role in ROLES:
        return role
    known = ", ".join([*ROLES, *(f"channel:{c}" for c in sorted(channels))])
    raise InvalidInput("role", f"unknown role {role!r}; one of {known}")


def looks_like_key(value: str) -> bool:
    return bool(re.fullmatch(r"hub_[A-Za-z0-9_-]{20,100}", value))


class Keys:
    """The keys of one store, with a short-lived cache of verified ones."""

    def __init__(
        self,
        table: KeyTable,
        channels: frozenset[str],
        clock: Callable[[], datetime],
        cache_s: float = 2.0,
    ):
        self.table = table
        self.channels = channels
        self.clock = clock
        self.cache_s = cache_s
        self._secret: bytes | None = None
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._counts: tuple[float, tuple[int, int]] | None = None
        self._lock = threading.Lock()

    def _digest(self, key: str) -> str:
        if self._secret is None:
            self._secret = self.table.api_key_secret(secrets.token_bytes(32))
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def create(self, role: str, name: str | None = None) -> tuple[ApiKey, str]:
        """A new key for `role`: the stored record and the key itself (never stored)."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            id=secrets.token_hex(6),
            role=check_role(role, self.channels),
            name=name,
            created_at=self.clock().isoformat(timespec="seconds"),
        )
        self.table.insert_api_key(record, self._digest(key))
        self._counts = None
        return record, key

    def list(self) -> list[ApiKey]:
        return self.table.select_api_keys()

    def revoke(self, key_id: str) -> ApiKey:
        revoked = self.table.revoke_api_key(key_id, self.clock().isoformat(timespec="seconds"))
        if revoked is None:
            raise KeyNotFound(f"no API key with id {key_id!r}")
        with self._lock:
            self._cache.clear()
        return revoked

    def verify(self, key: str) -> ApiKey | None:
        """The stored record of `key` (revoked ones too), or None for an unknown key."""
        if not looks_like_key(key):
            return None
        digest = self._digest(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self.table.find_api_key(digest)
        with self._lock:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_s, found)
        return found

    def remembers(self, key: str | None) -> bool:
        """Whether `verify(key)` (or, for no key, `open`) can answer without the store."""
        now = time.monotonic()
        if key is None:
            return self._counts is not None and self._counts[0] > now
        if not looks_like_key(key):
            return True
        if self._secret is None:
            return False
        cached = self._cache.get(self._digest(key))
        return cached is not None and cached[0] > now

    def counts(self) -> tuple[int, int]:
        """(keys ever created, keys not revoked), re-read at most every `cache_s`."""
        now = time.monotonic()
        if self._counts is None or self._counts[0] <= now:
            self._counts = (now + self.cache_s, self.table.count_api_keys())
        return self._counts[1]

    @property
    def open(self) -> bool:
        """No key was ever created in this store: the hub admits every caller."""
        return self.counts()[0] == 0
