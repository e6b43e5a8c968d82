"""Who a role admits: the rules `Requires` applies, in memory."""

from __future__ import annotations

import pytest

from api.auth import OPEN, AccessDenied, Principal, require_channel
from api.cli import is_loopback


@pytest.mark.parametrize(
    "role, roles, admitted",
    [
        ("admin", ["auditor"], True),
        ("agent", ["agent", "dashboard"], True),
        ("dashboard", ["auditor"], False),
        ("channel:web", ["channel"], True),
        ("channel:web", ["channel:web"], True),
        ("channel:phone", ["channel:web"], False),
        ("channel:web", ["agent"], False),
        ("auditor", ["channel"], False),
    ],
)
def test_roles_admit_their_callers(role: str, roles: list[str], admitted: bool) -> None:
    assert Principal("k", role).admitted(roles) is admitted


def test_an_open_hub_admits_everyone() -> None:
    assert OPEN.admitted(["admin"])


def test_channel_key_may_submit_only_its_own_channel() -> None:
    require_channel(Principal("k", "channel:web"), ["web", "web"])
    require_channel(Principal("k", "admin"), ["web", "phone"])
    with pytest.raises(AccessDenied) as denied:
        require_channel(Principal("k", "channel:web"), ["web", "phone"])
    assert (denied.value.status, denied.value.reason) == (403, "wrong-channel")


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("hub.example.com", False),
    ],
)
def test_only_loopback_hosts_may_serve_without_keys(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
