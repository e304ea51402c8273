"""The eavesdropper's view without a lab: each way a password crosses the wire in the clear is
found and decoded, SCRAM gives nothing away, and the wire tap keeps a bounded part of the plaintext."""

from __future__ import annotations

import base64

from maillab.base.events import WireTotals
from maillab.net.wiretap import KEEP, WireTap
from maillab.tui.eavesdrop import LESSON, wire_view


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


def secrets(protocol: str, *pieces: tuple[str, bytes]) -> list[str]:
    return [line.text for line in wire_view(protocol, list(pieces)) if line.kind == "secret"]


def test_every_clear_password_is_decoded():
    assert secrets("smtp", ("client", b"AUTH PLAIN " + b64(b"\0bob@luxsci.net\0s3cret") + b"\r\n")) == [
        "password of 'bob@luxsci.net': 's3cret' (decoded from base64)"]
    assert secrets("submission", ("client", b"AUTH PLAIN\r\n"), ("server", b"334 \r\n"),
                   ("client", b64(b"\0bob\0pw") + b"\r\n")) == ["password of 'bob': 'pw' (decoded from base64)"]
    assert secrets("smtp", ("client", b"AUTH LOGIN\r\n"), ("server", b"334 VXNlcm5hbWU6\r\n"),
                   ("client", b64(b"bob") + b"\r\n"), ("server", b"334 UGFzc3dvcmQ6\r\n"),
                   ("client", b64(b"pw") + b"\r\n")) == ["password of 'bob': 'pw' (decoded from base64)"]
    assert secrets("smtp", ("client", b"AUTH LOGIN " + b64(b"bob") + b"\r\n" + b64(b"pw") + b"\r\n")) == [
        "password of 'bob': 'pw' (decoded from base64)"]
    assert secrets("pop3", ("client", b"USER bob\r\nPASS pw\r\n")) == ["password of 'bob': 'pw' (as typed)"]
    assert secrets("imap", ("client", b'a LOGIN bob "p\\"w"\r\n')) == ["password of 'bob': 'p\"w' (as typed)"]
    assert secrets("imap", ("client", b"a AUTHENTICATE PLAIN\r\n"), ("server", b"+ \r\n"),
                   ("client", b64(b"\0bob\0pw") + b"\r\n")) == ["password of 'bob': 'pw' (decoded from base64)"]


def test_no_password_no_lesson_and_a_cancel_or_scram_gives_nothing():
    assert secrets("smtp", ("client", b"AUTH PLAIN\r\n*\r\nMAIL FROM:<a@b.example>\r\n")) == []
    assert secrets("smtp", ("client", b"AUTH SCRAM-SHA-256 " + b64(b"n,,n=bob,r=abc") + b"\r\n")) == []
    lines = wire_view("smtp", [("server", b"220 x ESMTP\r\n"), ("client", b"EHLO a\r\n")])
    assert [(line.kind, line.text) for line in lines] == [("server", "220 x ESMTP"), ("client", "EHLO a")]
    assert LESSON not in [line.text for line in lines]


def test_lines_join_across_pieces_and_the_tls_line_counts_each_way():
    totals = WireTotals(0, "h/smtp/1", "h", 20, 30, 1234, 5678)
    lines = wire_view("smtp", [("client", b"STAR"), ("server", b"220 x\r\n"), ("client", b"TTLS\r\n")],
                      "TLS 1.3", totals)
    assert [line.text for line in lines] == [
        "220 x", "STARTTLS", "… 33 more plaintext octets, readable too (not kept here)",
        "TLS 1.3, 1234 bytes client → server, 5678 server → client — ciphertext, nothing readable"]
    assert wire_view("pop3s", [], "TLS 1.2")[0].text == \
        "TLS 1.2 from the first byte: bytes counted when the session ends — nothing readable"


def test_the_tap_keeps_a_bounded_plaintext_then_only_counts():
    tap = WireTap()
    assert tap.seen("client", b"x" * (KEEP - 10)) == b"x" * (KEEP - 10)
    assert tap.seen("server", b"y" * 100) == b"y" * 10
    assert tap.seen("client", b"z") == b""
    tap.tls_up()
    assert tap.seen("client", b"secret") == b"" and tap.seen("server", b"reply!!") == b""
    assert tap.plain == {"client": KEEP - 9, "server": 100} and tap.tls == {"client": 6, "server": 7}
