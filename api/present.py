"""How the dashboard and the feeds word things: times, amounts, values and one line per
touchpoint. Presentation only: what a touchpoint means is decided in hub/ and projections/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

CHANNEL_LABELS = {
    "web": "Web",
    "email": "Email",
    "phone": "Phone",
    "service": "Service desk",
    "sales": "Sales",
    "marketing": "Marketing",
    "erp": "ERP",
    "chat": "Chat",
    "social": "Social",
    "import": "Import",
}
KIND_LABELS = {
    "repair": "Repair",
    "complaint": "Complaint",
    "question": "Question",
    "reply": "Reply owed",
    "callback": "Call-back",
    "promise": "Promise",
    "registration": "Registration",
}
RULE_LABELS = {
    "claim-vs-claim": "Claim vs. earlier claim",
    "claim-vs-fact": "Claim vs. system of record",
    "consent": "Marketing without consent",
    "duplicate-material": "Material sent twice",
    "open-complaint": "Selling over an open complaint",
    "ambiguous-identity": "Identities of two customers",
}


def moment(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    found = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def when(value: str | datetime | None) -> str:
    """A time as an agent reads it: `3 Dec 2026, 09:30` (UTC)."""
    found = moment(value)
    if found is None:
        return "–"
    return found.astimezone(UTC).strftime("%-d %b %Y, %H:%M")


def day(value: str | datetime | None) -> str:
    found = moment(value)
    return found.astimezone(UTC).strftime("%-d %b %Y") if found else "–"


def span(seconds: float) -> str:
    """A length of time in the largest unit that reads well: 40 min, 5 h, 3 d, 7 wk."""
    seconds = abs(seconds)
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} h"
    if seconds < 21 * 86400:
        return f"{round(seconds / 86400)} d"
    return f"{round(seconds / (7 * 86400))} wk"


def relative(value: str | datetime | None, now: datetime) -> str:
    """`5 h ago` or `in 2 d`."""
    found = moment(value)
    if found is None:
        return "–"
    seconds = (found - now).total_seconds()
    return f"in {span(seconds)}" if seconds > 0 else f"{span(seconds)} ago"


def due(item: dict[str, Any], now: datetime) -> str:
    """How an open item stands against its due time."""
    found = moment(item.get("due_at"))
    if found is None:
        return "no due time"
    seconds = (found - now).total_seconds()
    return f"overdue {span(seconds)}" if seconds < 0 else f"due in {span(seconds)}"


def show_value(value: Any) -> str:
    """A claim or fact value: money as `19.90 EUR`, lists joined, the rest as text."""
    if isinstance(value, dict) and {"amount", "currency"} <= value.keys():
        return f"{value['amount']} {value['currency']}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {show_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(show_value(v) for v in value)
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def actor_name(actor: dict[str, Any] | None) -> str:
    if not actor:
        return ""
    return str(actor.get("name") or actor.get("id") or actor.get("kind") or "")


def _text(data: dict[str, Any], *names: str) -> str:
    return next((str(data[n]) for n in names if data.get(n)), "")


def headline(entry: dict[str, Any]) -> str:
    """One line saying what a timeline entry was, for agents."""
    data = entry.get("data") or {}
    kind = entry.get("type", "")
    request = data.get("request_id", "")
    match kind:
        case "order.placed":
            return f"Order {data.get('order_id')} placed · {show_value(data.get('total'))}"
        case "order.status_changed":
            return f"Order {data.get('order_id')} is now {data.get('status')}"
        case "email.received" | "email.sent":
            prefix = "Marketing email" if data.get("category") == "marketing" else "Email"
            return f"{prefix}: {_text(data, 'subject') or '(no subject)'}"
        case "call.inbound" | "call.outbound":
            way = "Call from customer" if kind == "call.inbound" else "Call to customer"
            minutes = f" ({round(data['duration_s'] / 60)} min)" if data.get("duration_s") else ""
            ask = " · asked for a call-back" if data.get("callback_requested") else ""
            summary = _text(data, "summary")
            return f"{way}{minutes}{': ' + summary if summary else ''}{ask}"
        case "service.opened":
            detail = f"{data.get('kind', 'question')}, {data.get('priority', 'normal')}"
            return f"Service request {request} opened ({detail}): {_text(data, 'subject')}"
        case "service.updated":
            note = _text(data, "note")
            return f"Service request {request}: {data.get('status')}{' · ' + note if note else ''}"
        case "service.visit_scheduled":
            return f"Service request {request}: visit on {data.get('visit_date')}"
        case "service.resolved":
            resolution = _text(data, "resolution")
            return f"Service request {request} resolved{': ' + resolution if resolution else ''}"
        case "quote.given":
            until = f" until {day(data['valid_until'])}" if data.get("valid_until") else ""
            return f"Quote for {data.get('sku')}: {show_value(data.get('price'))}{until}"
        case "promise.made":
            by = f" by {day(data['due'])}" if data.get("due") else ""
            return f"Promised: {_text(data, 'what')}{by}"
        case "promise.kept":
            return f"Promise {data.get('promise_id')} kept"
        case "web.form_submitted":
            return f"Web form “{data.get('form')}” submitted"
        case "web.registered":
            return f"Registered for {_text(data, 'event_name', 'event_id')}"
        case "registration.confirmed":
            return f"Registration {data.get('event_id')} confirmed"
        case "sales.contacted":
            product = f" about {data['product']}" if data.get("product") else ""
            return f"Sales contact{product}: {_text(data, 'summary')}"
        case "marketing.sent":
            return f"Campaign {data.get('campaign')}: {data.get('asset')}"
        case "consent.changed":
            state = "given" if data.get("granted") else "withdrawn"
            return f"Consent for {data.get('purpose')} {state}"
        case "profile.updated":
            return "Profile updated: " + ", ".join(sorted(data)) if data else "Profile updated"
    return _text(data, "text", "summary", "subject") or kind


def item_title(item: dict[str, Any]) -> str:
    """What an open item is about, in a few words."""
    if item.get("form"):
        return f"Web form “{item['form']}”"
    if item.get("event_name") or item.get("event_id"):
        return f"Registration for {item.get('event_name') or item['event_id']}"
    text = item.get("subject") or item.get("what") or item.get("summary")
    return str(text) if text else str(item.get("type") or item.get("kind") or "")


def customer_update(entry: dict[str, Any]) -> tuple[str, str]:
    """Title and text of an update as the customer reads it in their feed."""
    data = entry.get("data") or {}
    kind = entry.get("type", "")
    order, request = data.get("order_id"), data.get("request_id")
    match kind:
        case "order.placed":
            return (
                f"We received your order {order}",
                f"Order {order} for {show_value(data.get('total'))} is confirmed.",
            )
        case "order.status_changed":
            status = data.get("status")
            return f"Your order {order} is {status}", f"Order {order}: {status}."
        case "service.opened":
            subject = _text(data, "subject")
            return (
                f"We opened service request {request}",
                f"Your request {request}{': ' + subject if subject else ''} is with our team.",
            )
        case "service.updated":
            note = _text(data, "note")
            return (
                f"Service request {request}: {data.get('status')}",
                note or f"Your request {request} is now {data.get('status')}.",
            )
        case "service.visit_scheduled":
            return (
                f"A visit is booked for {data.get('visit_date')}",
                f"Our engineer visits for request {request} on {data.get('visit_date')}.",
            )
        case "service.resolved":
            resolution = _text(data, "resolution")
            return f"Service request {request} is resolved", resolution or "Resolved."
        case "registration.confirmed":
            return "Your registration is confirmed", f"Registration {data.get('event_id')}."
        case "promise.made":
            by = f" by {day(data['due'])}" if data.get("due") else ""
            return f"We promised: {_text(data, 'what')}", f"We will do this{by}."
        case "promise.kept":
            return "We kept our promise", f"Promise {data.get('promise_id')} is done."
    return headline(entry), headline(entry)
