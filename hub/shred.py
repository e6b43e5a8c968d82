"""Crypto-shredding: a customer's personal fields are stored encrypted under that customer's
own key, so deleting the key erases them while the events, their order and their hashes stay.

What is personal (sealed): identities (emails, phones, accounts); every `data` field not in
`NOT_PERSONAL` (names, addresses, free text such as summaries, subjects, notes, form fields,
promise texts — and any extra field a channel sends); claim values and conflict values given
as text; correction reasons. What is not: ids, types, channels, times, actors (the company's
agents), amounts, statuses, products, consent purposes — the shape counts and analytics need.

Stored form: the sealed values leave their place and travel in `_personal`, a map from the
owning customer's id to one AES-GCM token (nonce ‖ ciphertext, base64) of `{path: value}`,
bound to that customer's id. Hashes are taken over these stored bytes, so the chain still
verifies after the key is gone. Opening puts each value back; without the key each sealed
value reads as `ERASED`.
"""

from __future__ import annotations

import base64
import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.codec import dumps

PERSONAL = "_personal"
ERASED = "[erased]"
NOT_PERSONAL = frozenset(
    {
        "order_id", "total", "items", "status", "sku", "qty", "price", "valid_until",
        "promise_id", "due", "request_id", "kind", "priority", "visit_date", "message_id",
        "wants_reply", "category", "duration_s", "callback_requested", "form", "event_id",
        "event_name", "starts_at", "product", "campaign", "asset", "purpose", "granted",
        "region", "currency", "direction", "disposition", "financial_status",
        "fulfillment_status",
    }
)  # fmt: skip

TOUCHPOINT_MODULE = "hub.customer:"
REJECTED = "hub.customer:RejectedAttempt.Recorded"
SUGGESTED = "hub.customer:MergeSuggestion.Suggested"

Path = tuple[str | int, ...]


class KeyShredded(Exception):
    """The customer's key is gone: nothing personal can be written for them any more."""


def _personal_paths(topic: str, owner: str, state: dict[str, Any]) -> dict[str, list[Path]]:
    """Where the personal values of a stored event are, grouped by the customer they are of."""
    paths: list[Path] = []
    if topic == REJECTED:
        customer = state.get("customer_id")
        if not customer:
            return {}
        touchpoint = state.get("touchpoint") or {}
        paths += _text_claims(("touchpoint", "claims"), touchpoint.get("claims"))
        paths += _text_conflicts(("conflicts",), state.get("conflicts"))
        return {str(customer): paths}
    if topic == SUGGESTED:
        return {
            str(customer): [("customers", customer)] for customer in state.get("customers") or {}
        }
    if not topic.startswith(TOUCHPOINT_MODULE) or "touchpoint_id" not in state:
        return {}
    for name in ("identities", "new_identities", "correction_reason"):
        if state.get(name):
            paths.append((name,))
    for key in state.get("data") or {}:
        if key not in NOT_PERSONAL:
            paths.append(("data", key))
    paths += _text_claims(("claims",), state.get("claims"))
    paths += _text_conflicts(("detected_conflicts",), state.get("detected_conflicts"))
    return {owner: paths} if paths else {}


def _text_claims(base: Path, claims: Any) -> list[Path]:
    return [
        (*base, i, "value")
        for i, claim in enumerate(claims or ())
        if isinstance(claim, dict) and isinstance(claim.get("value"), str)
    ]


def _text_conflicts(base: Path, conflicts: Any) -> list[Path]:
    found: list[Path] = []
    for i, conflict in enumerate(conflicts or ()):
        if not isinstance(conflict, dict):
            continue
        if isinstance(conflict.get("attempted"), str):
            found.append((*base, i, "attempted"))
        if isinstance(conflict.get("detail"), str):  # the explanation quotes both values
            found.append((*base, i, "detail"))
        earlier = conflict.get("earlier")
        if isinstance(earlier, dict) and isinstance(earlier.get("value"), str):
            found.append((*base, i, "earlier", "value"))
    return found


def _get(state: Any, path: Path) -> Any:
    for step in path:
        state = state[step]
    return state


def _set(state: Any, path: Path, value: Any) -> None:
    for step in path[:-1]:
        state = state[step]
    state[path[-1]] = value


def _replace(state: dict[str, Any], path: Path, value: Any, copied: set[int]) -> None:
    """Set the value at `path`, copying each container on the way instead of changing it."""
    node: Any = state
    for step in path[:-1]:
        child = node[step]
        if id(child) not in copied:
            child = child.copy()
            node[step] = child
            copied.add(id(child))
        node = child
    node[path[-1]] = value


# Paths repeat from event to event (`data/summary`, `claims/0/value`): remember their forms.
@functools.lru_cache(maxsize=4096)
def _encode_path(path: Path) -> str:
    return "/".join(str(step) for step in path)


@functools.lru_cache(maxsize=4096)
def _decode_path(text: str) -> Path:
    return tuple(int(step) if step.isdigit() else step for step in text.split("/"))


KeyLookup = Callable[[Iterable[str], bool], dict[str, bytes | None]]


class Shredder:
    """Seals and opens personal values with per-customer keys, kept in the store.

    `lookup(customer_ids, create)` returns each customer's key (None once erased), creating
    keys for customers that have none when `create` is true. Keys are cached for a short
    while; `forget` drops a customer's key from this process at once.
    """

    def __init__(self, lookup: KeyLookup, cache_size: int = 100_000, ttl: float = 60.0):
        self.lookup = lookup
        self._cache: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._size = cache_size
        self._ttl = ttl
        self._lock = threading.Lock()
        self._ciphers: dict[bytes, AESGCM] = {}  # AESGCM(key) costs a key schedule: once
        # Random nonces drawn a page at a time (one system call per 512), each used once.
        self._nonces = b""
        self._next_nonce = 0

    def _nonce(self) -> bytes:
        with self._lock:
            if self._next_nonce >= len(self._nonces):
                self._nonces, self._next_nonce = os.urandom(12 * 512), 0
            start = self._next_nonce
            self._next_nonce = start + 12
            return self._nonces[start : start + 12]

    def _cipher(self, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key)
        if cipher is None:
            if len(self._ciphers) >= self._size:
                self._ciphers.clear()
            cipher = self._ciphers[key] = AESGCM(key)
        return cipher

    def adopt(self, keys: dict[str, bytes]) -> None:
        """Keys just made for new customers, written with their first events (not yet
        committed: only customers nobody else can know of yet)."""
        now = time.monotonic()
        with self._lock:
            for customer, key in keys.items():
                self._cache[customer] = (now, key)

    def keys(self, customers: Iterable[str], create: bool) -> dict[str, bytes | None]:
        now = time.monotonic()
        found: dict[str, bytes | None] = {}
        missing: list[str] = []
        with self._lock:
            for customer in customers:
                cached = self._cache.get(customer)
                if cached is not None and now - cached[0] < self._ttl:
                    found[customer] = cached[1]
                else:
                    missing.append(customer)
        if missing:
            fetched = self.lookup(missing, create)
            with self._lock:
                for customer in missing:
                    key = fetched.get(customer)
                    found[customer] = key
                    if key is not None or customer in fetched:
                        self._cache[customer] = (now, key)
                        self._cache.move_to_end(customer)
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return found

    def forget(self, customers: Iterable[str]) -> None:
        with self._lock:
            for customer in customers:
                cached = self._cache.pop(customer, None)
                if cached is not None and cached[1] is not None:
                    self._ciphers.pop(cached[1], None)

    def seal(self, topic: str, owner: str, state: dict[str, Any]) -> dict[str, Any]:
        """Move the event's personal values into `_personal`, encrypted per customer."""
        grouped = _personal_paths(topic, owner, state)
        if not grouped:
            return state
        keys = self.keys(grouped, create=True)
        sealed: dict[str, str] = {}
        copied: set[int] = set()  # containers already copied: the event's own stay untouched
        for customer, paths in grouped.items():
            key = keys.get(customer)
            if key is None:
                raise KeyShredded(customer)
            values = {_encode_path(p): _get(state, p) for p in paths}
            for path in paths:
                _replace(state, path, _placeholder(values[_encode_path(path)]), copied)
            nonce = self._nonce()
            token = self._cipher(key).encrypt(nonce, dumps(values), customer.encode())
            sealed[customer] = base64.b64encode(nonce + token).decode()
        state[PERSONAL] = sealed
        return state

    def seal_whole(self, owner: str, plain: bytes) -> str:
        """One token of `plain` under the owner's key (a snapshot: all of it is personal)."""
        key = self.keys([owner], create=True).get(owner)
        if key is None:
            raise KeyShredded(owner)
        nonce = self._nonce()
        token = self._cipher(key).encrypt(nonce, plain, owner.encode())
        return base64.b64encode(nonce + token).decode()

    def open_whole(self, owner: str, token: str) -> bytes | None:
        """What `seal_whole` sealed; None once the key is gone (or the token was changed)."""
        key = self.keys([owner], create=False).get(owner)
        if key is None:
            return None
        raw = base64.b64decode(token)
        try:
            return self._cipher(key).decrypt(raw[:12], raw[12:], owner.encode())
        except InvalidTag:
            return None

    def open(
        self, state: dict[str, Any], keys: dict[str, bytes | None] | None = None
    ) -> dict[str, Any]:
        """Put the personal values back; without the key, mark each of them as erased.

        `keys`: what `keys(…, create=False)` gave for every customer of the event, when the
        caller fetched them for many events at once."""
        sealed: dict[str, str] | None = state.pop(PERSONAL, None)
        if not sealed:
            return state
        if keys is None:
            keys = self.keys(sealed, create=False)
        for customer, token in sealed.items():
            key = keys.get(customer)
            if key is None:
                continue  # erased: the placeholders stay
            raw = base64.b64decode(token)
            try:
                plain = self._cipher(key).decrypt(raw[:12], raw[12:], customer.encode())
            except InvalidTag:
                # Tampered ciphertext: `hub verify` names the edit; reads show it as erased.
                continue
            for encoded, value in orjson.loads(plain).items():
                _set(state, _decode_path(encoded), value)
        return state


def _placeholder(value: Any) -> Any:
    """What a sealed value reads as without its key: the same kind of thing, emptied."""
    if isinstance(value, str):
        return ERASED
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {}
    return None


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)
