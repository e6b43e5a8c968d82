"""Real-looking channel payloads for the webhook mappers (shop, email, telephony, desk)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).parent
COMPANY_DOMAINS = ["nordhaus.example"]


def raw(name: str) -> bytes:
    return (HERE / name).read_bytes()


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(raw(name))
    return loaded
