"""API keys in the store (SQLite and PostgreSQL): kept only as keyed hashes, verified,
revoked for every process within the cache time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from hub.app import Hub
from hub.errors import InvalidInput
from hub.keys import KeyNotFound
from tests.stores import RawStore


def test_store_keeps_no_key_only_its_keyed_hash(hub: Hub, store_env: dict[str, str]) -> None:
    record, key = hub.keys.create("auditor", "audit firm")
    raw = RawStore(hub, store_env)
    try:
        rows = raw.execute(f"SELECT * FROM {raw.keys.replace('_keys', '_api_keys')}")
    finally:
        raw.close()
    assert len(rows) == 1
    assert not any(key in str(value) for value in rows[0])
    assert any(len(str(value)) == 64 for value in rows[0])  # the HMAC-SHA256, hex
    assert hub.keys.verify(key) == record
    assert hub.keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_revocation_reaches_another_process_within_its_cache_time(
    make_hub: Callable[..., Hub],
) -> None:
    writer, reader = make_hub(), make_hub(key_cache_s=0.3)
    record, key = writer.keys.create("agent")
    assert reader.keys.verify(key) == record
    writer.keys.revoke(record.id)
    time.sleep(0.35)
    found = reader.keys.verify(key)
    assert found is not None and found.revoked


def test_counts_tell_an_open_store_from_one_with_keys(make_hub: Callable[..., Hub]) -> None:
    hub = make_hub(key_cache_s=0)
    assert hub.keys.open and hub.keys.counts() == (0, 0)
    record, _ = hub.keys.create("admin")
    hub.keys.revoke(record.id)
    assert not hub.keys.open and hub.keys.counts() == (1, 0)


def test_unknown_role_or_channel_is_refused(hub: Hub) -> None:
    for role in ("root", "channel:fax", "channel:"):
        with pytest.raises(InvalidInput) as refused:
            hub.keys.create(role)
        assert refused.value.field == "role"
    assert hub.keys.list() == []


def test_revoking_an_unknown_key_is_404(hub: Hub) -> None:
    with pytest.raises(KeyNotFound):
        hub.keys.revoke("nope")
