"""Raw RFC 5322 messages mapped to `email.received` / `email.sent` touchpoints.

Parsed with the standard library (`email.policy.default`, which decodes encoded-word headers
and body charsets). The Message-ID, as written with its angle brackets, is the source id, so
a reply's `In-Reply-To` and `References` become `in_reply_to` entries `email:<id>`: the source
key of the message it answers. Mail from one of the company's domains is outbound
(`email.sent`, the customer is the first recipient outside those domains); all other mail is
inbound (`email.received`, the customer is the sender).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

from adapters.mapping import aware, build_envelope, dropping_none
from hub.envelope import Envelope
from hub.errors import InvalidInput

CHANNEL = "email"
MAX_TEXT = 20_000
MESSAGE_ID = re.compile(r"<[^<>\s]+>")

EXAMPLE = (
    "From: =?UTF-8?Q?Li_Wei?= <Li.Wei@example.com>\r\n"
    "To: Support <support@shop.example.com>\r\n"
    "Subject: =?ISO-8859-1?Q?Bestellung_A-17_=FCberf=E4llig?=\r\n"
    "Date: Tue, 03 Nov 2026 09:30:00 +0100\r\n"
    "Message-ID: <CAF1234@mail.example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: text/plain; charset="iso-8859-1"\r\n'
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Wo bleibt meine Bestellung? Gr=FC=DFe, Li\r\n"
)


def parse_message(raw: bytes) -> EmailMessage:
    """The message, parsed with the modern policy (decoded headers, `get_body`)."""
    if not raw.strip():
        raise InvalidInput("body", "an RFC 5322 message (message/rfc822) is expected")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
    return message


def _header(message: EmailMessage, name: str) -> Any:
    try:
        return message[name]
    except (ValueError, IndexError, TypeError) as error:
        raise InvalidInput(name, f"cannot be read: {error}") from None


def _message_ids(value: Any) -> list[str]:
    return MESSAGE_ID.findall(str(value)) if value else []


def _message_id(message: EmailMessage) -> str:
    header = _header(message, "Message-ID")
    if header is None or not str(header).strip():
        raise InvalidInput("Message-ID", "missing header: the message's id is its source id")
    found = _message_ids(header)
    if found:
        return found[0]
    bare = str(header).strip()
    if re.fullmatch(r"[^<>\s]+@[^<>\s]+", bare):  # some mailers leave out the brackets
        return f"<{bare}>"
    raise InvalidInput("Message-ID", f"not a message id: {bare!r}")


def _addresses(message: EmailMessage, name: str) -> list[Address]:
    header = _header(message, name)
    if header is None:
        return []
    return [a for a in getattr(header, "addresses", ()) if a.addr_spec and "@" in a.addr_spec]


def is_company(address: Address, domains: Collection[str]) -> bool:
    domain = address.domain.lower()
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _occurred_at(message: EmailMessage) -> datetime:
    date = _header(message, "Date")
    if date is None:
        raise InvalidInput("Date", "missing header: when the message was written")
    moment = getattr(date, "datetime", None)
    if moment is None:
        raise InvalidInput("Date", f"not an RFC 5322 date: {str(date)!r}")
    return aware(moment)


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("script", "style")
        if tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def body_text(message: EmailMessage) -> str | None:
    """The readable text: the plain part if there is one, else the HTML part's text."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown charset: decode what can be read
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return None
    if part.get_content_subtype() == "html":
        parser = _TextOfHtml()
        parser.feed(content)
        content = "".join(parser.parts)
    content = re.sub(r"\n{3,}", "\n\n", content.replace("\r\n", "\n")).strip()
    return content[:MAX_TEXT]


def _attachments(message: EmailMessage) -> list[str]:
    return [part.get_filename() or part.get_content_type() for part in message.iter_attachments()]


def _is_bulk(message: EmailMessage) -> bool:
    precedence = str(message.get("Precedence", "")).strip().lower()
    return precedence in ("bulk", "list") or message.get("List-Unsubscribe") is not None


def _is_automatic(message: EmailMessage) -> bool:
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return auto != "no" or precedence == "auto_reply"


def to_envelopes(raw: bytes, company_domains: Collection[str]) -> list[Envelope]:
    """The touchpoint of one raw message: inbound or outbound by the company's domains."""
    message = parse_message(raw)
    message_id = _message_id(message)
    senders = _addresses(message, "From")
    if not senders:
        raise InvalidInput("From", "missing header or no address in it")
    sender = senders[0]
    recipients = [*_addresses(message, "To"), *_addresses(message, "Cc")]
    domains = {d.strip().lower().lstrip("@") for d in company_domains if d.strip()}
    outbound = is_company(sender, domains)
    if outbound:
        customers = [a for a in recipients if not is_company(a, domains)]
        if not customers:
            raise InvalidInput("To", "outbound mail with no recipient outside the company")
        customer, actor = customers[0], {"kind": "agent", "id": sender.addr_spec.lower()}
        if sender.display_name:
            actor["name"] = sender.display_name
    else:
        customer, actor = sender, None
    replied_to = [
        f"{CHANNEL}:{ref}"
        for ref in dict.fromkeys(
            [
                *_message_ids(_header(message, "In-Reply-To")),
                *reversed(_message_ids(_header(message, "References"))),
            ]
        )
        if ref != message_id
    ]
    subject = _header(message, "Subject")
    data = dropping_none(
        message_id=message_id,
        subject=str(subject) if subject is not None else None,
        text=body_text(message),
        sender=sender.addr_spec,
        sender_name=sender.display_name or None,
        to=[a.addr_spec for a in recipients] or None,
        attachments=_attachments(message) or None,
    )
    if outbound:
        data["category"] = "marketing" if _is_bulk(message) else "personal"
    else:
        data["wants_reply"] = not (_is_automatic(message) or _is_bulk(message))
    return [
        build_envelope(
            source={"channel": CHANNEL, "id": message_id},
            type="email.sent" if outbound else "email.received",
            occurred_at=_occurred_at(message),
            customer={"email": customer.addr_spec},
            actor=actor,
            data=data,
            in_reply_to=replied_to,
        )
    ]
