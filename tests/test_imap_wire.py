"""The MUA's IMAP wire without sockets: server bytes in (split anywhere), responses out; commands out
with their X-ray lines, secrets masked."""

from __future__ import annotations

import pytest

from maillab.mua import imap_wire
from maillab.mua.imap_wire import ImapWireError, Literal, ResponseReader, Secret, command, fetch_items, quote

SERVER = (b"* OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] smtp1.syr.edu ready\r\n"
          b"* LIST (\\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
          b"* 3 FETCH (UID 17 FLAGS (\\Seen $Forwarded) RFC822.SIZE 42 "
          b"BODY[HEADER.FIELDS (FROM SUBJECT)] {37}\r\nFrom: a@b.test\r\nSubject: (hi) \"x\"\r\n\r\n)\r\n"
          b"* 4 FETCH (UID 18 BODY[] {0}\r\n INTERNALDATE \"04-Dec-2026 03:00:00 +0000\" X NIL)\r\n"
          b"* STATUS \"INBOX\" (MESSAGES 2 UNSEEN 1)\r\n"
          b"* 5 EXISTS\r\n"
          b"+ idling\r\n"
          b"M7 OK [APPENDUID 1796 9] APPEND completed\r\n"
          b"M8 NO [TRYCREATE] no such mailbox\r\n")


def parse_all(chunks: list[bytes]) -> list:
    reader = ResponseReader()
    out = []
    for c in chunks:
        out += reader.feed(c)
    return out


def test_every_response_kind_parses_and_splitting_anywhere_changes_nothing():
    whole = parse_all([SERVER])
    assert [r.tag for r in whole] == ["*"] * 6 + ["+", "M7", "M8"]
    greeting, listing, fetch, empty, status, exists, more, appended, refused = whole
    assert greeting.status == "OK" and greeting.code == "CAPABILITY IMAP4rev1 LITERAL+ IDLE"
    assert greeting.text == "smtp1.syr.edu ready"
    assert listing.values == ["LIST", ["\\HasNoChildren", "\\Sent"], ".", "Sent"]
    items = fetch_items(fetch)
    assert fetch.number() == (3, "FETCH")
    assert items["UID"] == "17" and items["FLAGS"] == ["\\Seen", "$Forwarded"] and items["RFC822.SIZE"] == "42"
    assert items["BODY[HEADER.FIELDS (FROM SUBJECT)]"] == b"From: a@b.test\r\nSubject: (hi) \"x\"\r\n\r\n"
    assert fetch.shown.endswith("{37} (37 octets) )")            # the X-ray shows no literal content
    assert fetch_items(empty) == {"UID": "18", "BODY[]": b"", "INTERNALDATE": "04-Dec-2026 03:00:00 +0000",
                                  "X": None}
    assert status.values == ["STATUS", "INBOX", ["MESSAGES", "2", "UNSEEN", "1"]]
    assert exists.number() == (5, "EXISTS") and more.text == "idling"
    assert appended.status == "OK" and appended.code == "APPENDUID 1796 9"
    assert refused.status == "NO" and refused.code == "TRYCREATE" and refused.text == "no such mailbox"
    bytewise = parse_all([SERVER[i:i + 1] for i in range(len(SERVER))])
    assert [(r.tag, r.values, r.code, r.text) for r in bytewise] == [(r.tag, r.values, r.code, r.text) for r in whole]


def test_a_quoted_string_keeps_its_escapes_and_parentheses_inside_it():
    [r] = parse_all([b'* LIST () "/" "a \\"b\\" (c) \\\\d"\r\n'])
    assert r.values[3] == 'a "b" (c) \\d'


def test_commands_mask_secrets_and_send_literals_without_waiting():
    data, shown = command("M3", "LOGIN", quote("santa@northpole.org"), Secret("maillab"))
    assert data == b'M3 LOGIN "santa@northpole.org" "maillab"\r\n'
    assert shown == 'M3 LOGIN "santa@northpole.org" ***'
    data, shown = command("M4", "APPEND", quote("Sent"), "(\\Seen)", Literal(b"Subject: x\r\n\r\nhi\r\n"))
    assert data == b'M4 APPEND "Sent" (\\Seen) {18+}\r\nSubject: x\r\n\r\nhi\r\n\r\n'
    assert shown == 'M4 APPEND "Sent" (\\Seen) {18+} (18 octets)'
    with pytest.raises(ValueError):
        quote("a\r\nM5 DELETE INBOX")


def test_bad_input_ends_with_a_clear_error_and_memory_stays_bounded(monkeypatch):
    with pytest.raises(ImapWireError, match="closing parenthesis"):
        parse_all([b"* 1 FETCH (UID 1\r\n"])
    with pytest.raises(ImapWireError, match="closing quote"):
        parse_all([b'* LIST () "/" "open\r\n'])
    monkeypatch.setattr(imap_wire, "MAX_LITERAL", 1000)
    with pytest.raises(ImapWireError, match="literal of 5000 octets"):
        parse_all([b"* 1 FETCH (BODY[] {5000}\r\n"])
    monkeypatch.setattr(imap_wire, "MAX_LINE", 1000)
    reader = ResponseReader()
    with pytest.raises(ImapWireError, match="without CRLF"):
        for _ in range(10):
            reader.feed(b"x" * 200)
