"""The dashboard in a real browser against a real `hub serve`: the queue, a customer's 360°
view and timeline, the dry run of a draft answer, live updates, conflicts, analytics, phones.

Screenshots land in artifacts/ (dashboard-*.png)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.dashboard_server import AGENT, LI, Served, ago, launch_chromium, serve_hub, shot


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_hub(tmp_path_factory.mktemp("dashboard")) as hub:
        yield hub


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def timeline_texts(served: Served) -> list[str]:
    answer = httpx.get(f"{served.url}/v1/customers/{served.li}/timeline", timeout=10)
    return [entry["type"] for entry in answer.json()["entries"]]


def test_queue_lists_overdue_items_first_and_each_row_links_to_its_customer(
    served: Served, page: Any
) -> None:
    page.goto(f"{served.url}/dashboard")
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 3
    first = rows.nth(0)
    assert "overdue" in (first.get_attribute("class") or "")
    assert "Where is my parcel?" in first.inner_text()
    assert "overdue" not in (rows.nth(1).get_attribute("class") or "")
    tiles = page.locator("#queue-counts a.tile")  # loaded after the table
    tiles.first.wait_for()
    assert tiles.first.inner_text().split() == ["3", "open", "1", "overdue"]
    shot(page, "queue")
    first.get_by_role("link", name="Li Wei").click()
    page.wait_for_url(f"**/dashboard/customers/{served.li}")
    assert page.locator("h1").inner_text() == "Li Wei"


def test_queue_filters_by_kind(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/dashboard")
    page.select_option("select[name=kind]", "repair")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**kind=repair**")
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 1
    assert "Dishwasher leaks" in rows.first.inner_text()


def test_search_box_finds_a_customer_by_email_or_phone(served: Served, page: Any) -> None:
    for term in ("Li.Wei@Example.com", "+49 30 1234567"):
        page.goto(f"{served.url}/dashboard")
        page.fill("header input[name=q]", term)
        page.press("header input[name=q]", "Enter")
        page.wait_for_url(f"**/dashboard/customers/{served.li}")
    with page.expect_response(lambda r: "/dashboard/customers?q=" in r.url) as answer:
        page.fill("header input[name=q]", "nobody@example.com")
        page.press("header input[name=q]", "Enter")
    assert answer.value.status == 404
    assert "Customer not found" in page.locator(".notice").inner_text()


def test_customer_page_shows_profile_with_provenance_and_the_timeline_by_channel(
    served: Served, page: Any
) -> None:
    page.goto(f"{served.url}/dashboard/customers/{served.li}")
    profile = page.locator("#profile").inner_text()
    assert "Lindenweg 4, Berlin" in profile and "via Web" in profile
    entries = page.locator("#timeline li.entry")
    assert entries.count() == len(timeline_texts(served)) == 4
    text = page.locator("#timeline").inner_text()
    assert "Order A-17 placed · 19.90 EUR" in text
    assert "Email: Where is my parcel?" in text
    channels = page.locator("#timeline .channel-name").all_inner_texts()
    assert {"Web", "ERP", "Email"} <= set(channels)
    assert "Paid" in page.locator("#orders").inner_text().title()
    feed = page.locator("link[rel=alternate]").get_attribute("href")
    assert feed == f"/v1/customers/{served.li}/feed.atom"
    shot(page, "customer")


def test_dry_run_of_a_contradicting_answer_shows_the_conflict_and_records_nothing(
    served: Served, page: Any
) -> None:
    before = timeline_texts(served)
    page.goto(f"{served.url}/dashboard/customers/{served.li}")
    page.fill("input[name=message]", "Your parcel has shipped")
    page.fill("input[name=subject0]", "order:A-17:status")
    page.fill("input[name=value0]", "shipped")
    page.get_by_role("button", name="Check").click()
    alert = page.locator("#dry-run .result")
    alert.wait_for()
    text = alert.inner_text()
    assert "do not send" in text
    assert "Claim vs. system of record" in text and "order:A-17:status" in text
    assert "shipped" in text and "paid" in text and "ERP" in text
    assert page.input_value("input[name=value0]") == "shipped"  # the draft is kept
    shot(page, "dry-run-conflict")
    assert timeline_texts(served) == before


def test_dry_run_of_an_answer_that_agrees_says_so(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/dashboard/customers/{served.li}")
    page.fill("input[name=subject0]", "order:A-17:status")
    page.fill("input[name=value0]", "paid")
    page.get_by_role("button", name="Check").click()
    assert "No conflicts" in page.locator("#dry-run .result").inner_text()


def test_dry_run_of_a_malformed_claim_names_the_field(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/dashboard/customers/{served.li}")
    page.fill("input[name=subject0]", "no subject here")
    page.fill("input[name=value0]", "x")
    with page.expect_response(lambda r: r.url.endswith("/check")) as answer:
        page.get_by_role("button", name="Check").click()
    assert answer.value.status == 422
    assert "claims.0.subject" in page.locator("#dry-run .result").inner_text()


def test_new_touchpoint_appears_on_the_open_customer_page_without_a_reload(
    served: Served, page: Any
) -> None:
    page.goto(f"{served.url}/dashboard/customers/{served.li}")
    page.locator("#live-state:not([hidden])").wait_for()
    page.evaluate("window.stillTheSamePage = true")
    posted = served.post(
        {
            "source": {"channel": "chat", "id": "chat-live-1"},
            "type": "chat.message",
            "occurred_at": ago(seconds=5),
            "customer": LI,
            "actor": AGENT,
            "data": {"text": "Customer asks to deliver after 5 pm"},
        }
    )
    assert posted.status_code == 201
    page.locator("#timeline", has_text="deliver after 5 pm").wait_for()
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.locator("#timeline li.entry").first.get_attribute("class") == "entry fresh"
    assert "Chat" in page.locator("#timeline-channels").inner_text()  # a new channel
    shot(page, "live-update")


def test_live_stream_sends_the_projection_position_as_event_id(served: Served) -> None:
    head = httpx.get(f"{served.url}/v1/projections", timeout=10).json()["projections"]
    position = min(view["position"] for view in head)
    lines = []
    with httpx.stream("GET", f"{served.url}/dashboard/live?after=0", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert lines[-3:] == [f"id: {position}", "event: position", f'data: {{"position":{position}}}']


def test_queue_page_shows_a_new_open_item_live(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/dashboard")
    page.locator("#live-state:not([hidden])").wait_for()
    page.evaluate("window.stillTheSamePage = true")
    posted = served.post(
        {
            "source": {"channel": "web", "id": "form-live-1"},
            "type": "web.form_submitted",
            "occurred_at": ago(days=3),
            "customer": {"email": "noor.haddad@example.com"},
            "data": {"form": "contact", "fields": {"topic": "invoice"}},
        }
    )
    assert posted.status_code == 201
    page.locator("#queue", has_text="noor.haddad@example.com").wait_for()
    assert page.evaluate("window.stillTheSamePage") is True


def test_conflicts_page_shows_the_blocked_answer_by_rule_and_channel(
    served: Served, page: Any
) -> None:
    page.goto(f"{served.url}/dashboard/conflicts")
    by_rule = page.locator(".summary").first.inner_text()
    assert "Claim vs. system of record" in by_rule
    by_channel = page.locator(".summary").nth(1).inner_text()
    assert "Phone" in by_channel
    row = page.locator("#conflict-list tbody tr").first
    assert "Blocked" in row.inner_text().title() and "Li Wei" in row.inner_text()
    assert "shipped" in row.inner_text() and "paid" in row.inner_text()
    shot(page, "conflicts")
    page.select_option("select[name=outcome]", "detected")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**outcome=detected**")
    assert "No conflicts match" in page.locator("#conflict-list").inner_text()


def test_analytics_page_draws_its_charts_as_svg(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/dashboard/analytics?days=30")
    charts = page.locator("svg.chart")
    assert charts.count() == 4
    assert page.locator("svg.chart").first.locator("rect").count() >= 3  # columns per day
    legend = page.locator(".legend").inner_text()
    assert "Web" in legend and "Email" in legend
    shot(page, "analytics")


@pytest.mark.parametrize("path", ["/dashboard", "/customer", "/dashboard/conflicts"])
def test_pages_fit_a_phone_screen(served: Served, browser: Any, path: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        url = f"/dashboard/customers/{served.li}" if path == "/customer" else path
        phone.goto(served.url + url)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        shot(phone, "phone" + path.replace("/", "-"))
    finally:
        context.close()
