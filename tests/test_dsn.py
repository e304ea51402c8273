"""build_dsn: parse the notification back with the email package (RFC 3464, RFC 6522)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime

import pytest

from maillab.mta.dsn import DsnRecipient, build_dsn, is_bounce, original_headers, original_subject

ORIGINAL = (b"Received: from client (localhost [127.0.0.1])\r\n"
            b"\tby smtp1.syr.edu with ESMTP id ABC123\r\n"
            b"From: Michael Fudge <mafudge@syr.edu>\r\n"
            b"To: bob@luxsci.net, nobody@luxsci.net\r\n"
            b"Subject: Lunch on Friday?\r\n"
            b"Message-ID: <lunch.1@syr.edu>\r\n"
            b"\r\n"
            b"Body text that must not be returned.\r\n")

BOB = DsnRecipient("bob@luxsci.net", "5.1.1",
                   "smtp; 550 5.1.1 <bob@luxsci.net>: Recipient address rejected: "
                   "User unknown in virtual mailbox table", "mx1.luxsci.net")
NOBODY = DsnRecipient("nobody@luxsci.net", "5.2.2", "mailbox full")


def build(**overrides: object) -> bytes:
    args: dict[str, object] = dict(
        reporting_host="smtp1.syr.edu", original_sender="mafudge@syr.edu", original=ORIGINAL,
        queue_id="ABC123", arrival=1_700_000_000.0, now=1_700_432_000.0,
        recipients=[BOB, NOBODY])
    args.update(overrides)
    return build_dsn(**args)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_crlf_only_and_short_lines() -> None:
    raw = build()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_top_level_headers() -> None:
    raw = build()
    msg = parse(raw)
    assert b"\r\nFrom: MAILER-DAEMON@smtp1.syr.edu (Mail Delivery System)\r\n" in b"\r\n" + raw
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@smtp1.syr.edu"
    assert msg["To"].addresses[0].addr_spec == "mafudge@syr.edu"
    assert msg["Subject"] == "Undeliverable: Lunch on Friday?"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@smtp1.syr.edu>")
    assert msg["Date"].datetime.timestamp() == 1_700_432_000.0
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"


def test_three_parts_in_order() -> None:
    parts = parse(build()).get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]


def test_human_part() -> None:
    text = parse(build()).get_payload()[0].get_content()
    assert text.startswith("This is the mail system at host smtp1.syr.edu.")
    assert "could not\r\nbe delivered" in text or "could not\nbe delivered" in text
    assert ("<bob@luxsci.net>: host mx1.luxsci.net said: 550 5.1.1 <bob@luxsci.net>: "
            "Recipient address rejected: User unknown in virtual mailbox table") in text
    assert "<nobody@luxsci.net>: mailbox full" in text


def test_delivery_status_fields() -> None:
    status = parse(build()).get_payload()[1]
    per_message, bob, nobody = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; smtp1.syr.edu"
    assert per_message["X-Maillab-Queue-ID"] == "ABC123"
    assert parsedate_to_datetime(per_message["Arrival-Date"]).timestamp() == 1_700_000_000.0
    assert bob["Final-Recipient"] == "rfc822; bob@luxsci.net"
    assert bob["Original-Recipient"] == "rfc822; bob@luxsci.net"
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx1.luxsci.net"
    assert bob["Diagnostic-Code"] == BOB.diagnostic       # folded on the wire, same value
    assert nobody["Status"] == "5.2.2"
    assert nobody["Remote-MTA"] is None
    assert nobody["Diagnostic-Code"] == "X-Maillab; mailbox full"


def test_original_headers_are_returned_without_the_body() -> None:
    raw = build()
    part = parse(raw).get_payload()[2]
    headers = part.get_payload()
    assert "Subject: Lunch on Friday?" in headers
    assert "Message-ID: <lunch.1@syr.edu>" in headers
    assert "\tby smtp1.syr.edu with ESMTP id ABC123" in headers
    assert b"Body text" not in raw


def test_encoded_subject_is_decoded_then_encoded_again() -> None:
    original = b"Subject: =?utf-8?q?Caf=C3=A9?= au lait\r\n\r\nbody\r\n"
    msg = parse(build(original=original))
    assert msg["Subject"] == "Undeliverable: Café au lait"
    assert msg["Subject"].isascii() is False
    assert b"Caf\xc3\xa9" not in build(original=original).split(b"\r\n\r\n")[0]


def test_subject_without_original_subject_and_with_line_breaks() -> None:
    assert parse(build(original=b"From: a@b\r\n\r\nx\r\n"))["Subject"] == \
        "Undeliverable: (no subject)"
    folded = b"Subject: a very\r\n long subject\r\n\r\n"
    assert parse(build(original=folded))["Subject"] == "Undeliverable: a very long subject"


def test_header_values_never_carry_line_breaks() -> None:
    evil = DsnRecipient("bob@luxsci.net\r\nBcc: victim@x", "5.1.1",
                        "smtp; 550 bad\r\nX-Injected: yes", "mx\n1")
    msg = parse(build(recipients=[evil], reporting_host="smtp1.syr.edu\r\nX-Evil: 1"))
    assert msg["X-Evil"] is None and msg["Bcc"] is None
    status = msg.get_payload()[1].get_payload()[1]
    assert status["X-Injected"] is None and status["Bcc"] is None
    assert status["Diagnostic-Code"] == "smtp; 550 bad X-Injected: yes"


def test_delayed_notice() -> None:
    msg = parse(build(action="delayed", recipients=[
        DsnRecipient("bob@luxsci.net", "4.4.1", "X-Maillab; connect to 127.0.0.5:2525: "
                                                "Connection refused")]))
    assert msg["Subject"] == "Delayed Mail (still being retried): Lunch on Friday?"
    text = msg.get_payload()[0].get_content()
    assert "THIS IS A WARNING ONLY" in text and "5.0 days" in text
    assert msg.get_payload()[1].get_payload()[1]["Action"] == "delayed"


def test_utf8_header_block_survives() -> None:
    original = "From: Jörg <jörg@syr.edu>\r\nSubject: Grüße\r\n\r\nx\r\n".encode()
    raw = build(original=original)
    msg = parse(raw)
    assert msg["Subject"] == "Undeliverable: Grüße"
    assert "jörg@syr.edu".encode() in raw
    assert msg.get_payload()[2]["Content-Transfer-Encoding"] == "8bit"


def test_boundary_never_inside_a_part() -> None:
    tricky = b"X-Trap: --ABC123.1700432000/smtp1.syr.edu\r\n\r\n"
    msg = parse(build(original=tricky))
    assert len(msg.get_payload()) == 3
    assert "X-Trap" in msg.get_payload()[2].get_payload()


@pytest.mark.parametrize("bad", [
    dict(action="bounced"),
    dict(original_sender=""),
    dict(original_sender="<>"),
    dict(recipients=[]),
    dict(recipients=[DsnRecipient("a@b", "550", "x")]),
])
def test_bad_arguments(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build(**bad)


def test_is_bounce() -> None:
    assert is_bounce("") and is_bounce("<>") and is_bounce(" <> ")
    assert not is_bounce("mafudge@syr.edu")
    assert not is_bounce("MAILER-DAEMON@smtp1.syr.edu")


def test_helpers() -> None:
    assert original_headers(b"A: 1\nB: 2\n\nbody") == b"A: 1\r\nB: 2\r\n"
    assert original_headers(b"\r\nbody only\r\n") == b""
    assert original_headers(b"A: 1") == b"A: 1\r\n"
    assert original_subject(b"Subject: =?bogus?q?x?=\r\n") == "=?bogus?q?x?="
    assert original_subject(b"From: x\r\n") == ""


def test_legacy_parser_sees_the_same_structure() -> None:
    msg: Message = email.message_from_bytes(build())
    assert msg.is_multipart()
    assert [p.get_content_type() for p in msg.walk()][:3] == [
        "multipart/report", "text/plain", "message/delivery-status"]
