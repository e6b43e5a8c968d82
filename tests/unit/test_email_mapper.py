"""The email mapper: raw RFC 5322 messages to `email.received` / `email.sent`."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import email
from hub.errors import InvalidInput
from tests.samples import COMPANY_DOMAINS, raw

FIRST = "<CAF9x1k2=Qm3@mail.example.com>"
REPLY = "<20261103091544.77A1@support.nordhaus.example>"


def mapped(message: bytes, domains: list[str] = COMPANY_DOMAINS) -> dict[str, Any]:
    (envelope,) = email.to_envelopes(message, domains)
    return envelope.model_dump(mode="json")


def test_inbound_multipart_message_is_received_with_message_id_as_source_id() -> None:
    received = mapped(raw("email_1_inbound_multipart.eml"))
    assert received["type"] == "email.received"
    assert received["source"] == {"channel": "email", "id": FIRST}
    assert received["occurred_at"] == "2026-11-03T08:41:02+01:00"
    assert received["customer"] == {
        "id": None,
        "email": "Greta.Novak@Example.com",
        "phone": None,
        "account": None,
    }
    assert received["actor"] is None
    assert received["data"]["message_id"] == FIRST
    assert received["data"]["wants_reply"] is True
    assert received["data"]["attachments"] == ["Rechnung-1042.pdf"]


def test_encoded_word_subject_and_sender_name_are_decoded() -> None:
    data = mapped(raw("email_1_inbound_multipart.eml"))["data"]
    assert data["subject"] == "Reklamation: Kaffeemaschine tropft – Bestellung #1042"
    assert data["sender_name"] == "Greta Novák"


def test_plain_part_in_latin_1_is_picked_over_html_and_decoded() -> None:
    text = mapped(raw("email_1_inbound_multipart.eml"))["data"]["text"]
    assert text.startswith("Guten Tag,\n\nmeine Kaffeemaschine")
    assert "Können Sie mich bitte zurückrufen?" in text
    assert "<p>" not in text


def test_html_only_iso_2022_jp_message_is_decoded_to_text() -> None:
    data = mapped(raw("email_4_inbound_iso2022jp_html.eml"))["data"]
    assert data["subject"] == "注文の配送について"
    assert data["sender_name"] == "田中 花子"
    assert data["text"] == "こんにちは。\n注文番号 1042 はいつ届きますか？\n田中"


def test_windows_1252_encoded_words_split_over_lines_are_joined() -> None:
    data = mapped(raw("email_3_inbound_followup.eml"))["data"]
    assert data["subject"] == "AW: Re: Reklamation: Kaffeemaschine tropft – Bestellung #1042"
    assert data["text"].startswith("Vielen Dank! Heute passt es leider doch nicht")


def test_mail_from_a_company_domain_is_sent_to_the_first_outside_recipient() -> None:
    sent = mapped(raw("email_2_outbound_reply.eml"))
    assert sent["type"] == "email.sent"
    assert sent["customer"]["email"] == "greta.novak@example.com"
    assert sent["actor"] == {
        "kind": "agent",
        "id": "zhang.min@nordhaus.example",
        "name": "Zhang Min",
    }
    assert sent["data"]["category"] == "personal"


def test_reply_threads_to_the_source_key_of_the_message_it_answers() -> None:
    first = mapped(raw("email_1_inbound_multipart.eml"))
    reply = mapped(raw("email_2_outbound_reply.eml"))
    assert reply["in_reply_to"] == [f"email:{first['source']['id']}"]


def test_in_reply_to_comes_first_then_references_newest_first_without_repeats() -> None:
    followup = mapped(raw("email_3_inbound_followup.eml"))
    assert followup["in_reply_to"] == [f"email:{REPLY}", f"email:{FIRST}"]


def test_subdomains_of_a_company_domain_are_the_company() -> None:
    sent = mapped(
        raw("email_2_outbound_reply.eml").replace(
            b"zhang.min@nordhaus.example>", b"zhang.min@support.nordhaus.example>"
        )
    )
    assert sent["type"] == "email.sent"


def test_without_company_domains_all_mail_is_inbound() -> None:
    assert mapped(raw("email_2_outbound_reply.eml"), [])["type"] == "email.received"


def test_automatic_reply_does_not_want_a_reply() -> None:
    assert mapped(raw("email_5_autoreply.eml"))["data"]["wants_reply"] is False


def test_bulk_mail_from_the_company_is_marketing() -> None:
    message = raw("email_2_outbound_reply.eml").replace(
        b"MIME-Version", b"List-Unsubscribe: <mailto:off@nordhaus.example>\r\nMIME-Version"
    )
    assert mapped(message)["data"]["category"] == "marketing"


def test_date_without_zone_is_utc() -> None:
    message = raw("email_5_autoreply.eml").replace(b"07:00:00 +0100", b"07:00:00 -0000")
    assert mapped(message)["occurred_at"] == "2026-11-05T07:00:00Z"


@pytest.mark.parametrize(
    ("header", "field"),
    [(b"Message-ID", "Message-ID"), (b"From", "From"), (b"Date", "Date")],
)
def test_message_missing_a_required_header_names_it(header: bytes, field: str) -> None:
    lines = raw("email_5_autoreply.eml").split(b"\r\n")
    message = b"\r\n".join(line for line in lines if not line.startswith(header + b":"))
    with pytest.raises(InvalidInput) as error:
        email.to_envelopes(message, COMPANY_DOMAINS)
    assert error.value.field == field


def test_outbound_mail_to_the_company_only_is_refused() -> None:
    message = raw("email_2_outbound_reply.eml").replace(
        b"<greta.novak@example.com>", b"<desk@nordhaus.example>"
    )
    with pytest.raises(InvalidInput) as error:
        email.to_envelopes(message, COMPANY_DOMAINS)
    assert error.value.field == "To"


def test_empty_body_is_refused() -> None:
    with pytest.raises(InvalidInput) as error:
        email.to_envelopes(b"  \r\n", COMPANY_DOMAINS)
    assert error.value.field == "body"


def test_body_in_an_unknown_charset_is_read_as_far_as_it_can_be() -> None:
    message = raw("email_5_autoreply.eml").replace(b"charset=us-ascii", b"charset=x-unknown")
    message = message.replace(b"nicht im Haus.", b"nicht im Haus \xe2\x80\x93 danke.")
    assert mapped(message)["data"]["text"] == "Ich bin bis 12.11. nicht im Haus – danke."


def test_message_id_without_brackets_is_taken_with_them() -> None:
    message = raw("email_5_autoreply.eml").replace(
        b"<auto.5531@mail.example.com>", b"auto.5531@mail.example.com"
    )
    assert mapped(message)["source"]["id"] == "<auto.5531@mail.example.com>"
