"""The store fixture works on both stores."""

from hub.app import Hub
from tests.factories import touchpoint


def test_first_touchpoint_creates_a_customer(hub: Hub) -> None:
    accepted = hub.record(touchpoint())
    assert accepted.position > 0
    assert hub.find_customer("email:li.wei@example.com") == accepted.customer_id


def test_select_rows_reads_what_select_notifications_reads(hub: Hub) -> None:
    # The projections read the log as plain rows: the same events, positions and bytes as
    # the library's notifications, from `start` up to `stop`, both included, at most `limit`.
    for n in range(5):
        hub.record(touchpoint(customer={"email": f"row{n}@example.com"}))
    notifications = hub.recorder.select_notifications(1, 100)
    expected = [
        (n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
        for n in notifications
    ]
    assert len(expected) >= 5
    assert hub.store.select_rows(1, 100) == expected
    second, fourth = expected[1][0], expected[3][0]
    assert hub.store.select_rows(second, 100, stop=fourth) == expected[1:4]
    assert hub.store.select_rows(second, 2) == expected[1:3]
    assert hub.store.select_rows(expected[-1][0] + 1, 100) == []
