"""FETCH (RFC 3501 §6.4.5, §7.4.2): ENVELOPE, BODYSTRUCTURE, BODY[section]<partial>, \\Seen rules,
UID FETCH, CONDSTORE's MODSEQ and CHANGEDSINCE, chunked output for big fetches."""

from __future__ import annotations

import re
import time

import pytest

from maillab.imap.fetch import internaldate
from maillab.lab.state import StateDir
from maillab.store import SEEN, MailStore

from imap_support import USER, msg, session

MIME = b"""From: "Fudge, Michael" <mafudge@syr.edu>
To: Santa <santa@northpole.org>, undisclosed-recipients:;
Cc: =?utf-8?q?Bj=C3=B6rn?= <bjorn@luxsci.net>, (comment) bare@luxsci.net (Bare Name)
Subject: =?utf-8?q?R=C3=A9sum=C3=A9?= attached
Date: Tue, 2 Jan 2024 09:30:00 -0500
Message-ID: <m1@syr.edu>
In-Reply-To: <m0@syr.edu>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 au lait
--inner
Content-Type: text/html; charset=utf-8

<p>Caf&eacute;</p>
--inner--
--outer
Content-Type: message/rfc822

From: bob@luxsci.net
Subject: inner message

inner body
--outer
Content-Type: application/pdf; name="cv.pdf"
Content-Disposition: attachment; filename="cv.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer--
"""


@pytest.fixture
def store(tmp_path) -> MailStore:
    return MailStore(StateDir(tmp_path / "state"))


@pytest.fixture
def mime(store) -> MailStore:
    store.deliver(USER, MIME)
    return store


def literal_items(out: bytes) -> dict[str, bytes]:
    """label -> literal octets, for every `LABEL {n}` CRLF data in a FETCH response."""
    items, pos = {}, 0
    for m in re.finditer(rb"(BODY\[[^\]]*\](?:<\d+>)?|RFC822(?:\.HEADER|\.TEXT)?) \{(\d+)\}\r\n", out):
        if m.start() < pos:
            continue
        start = m.end()
        pos = start + int(m.group(2))
        items[m.group(1).decode()] = out[start:pos]
    return items


def test_envelope_with_groups_encoded_words_and_comments(mime):
    c = session(mime)
    [line] = c.ok("a FETCH 1 ENVELOPE")
    assert line == (
        '* 1 FETCH (ENVELOPE ("Tue, 2 Jan 2024 09:30:00 -0500" "=?utf-8?q?R=C3=A9sum=C3=A9?= attached" '
        '(("Fudge, Michael" NIL "mafudge" "syr.edu")) (("Fudge, Michael" NIL "mafudge" "syr.edu")) '
        '(("Fudge, Michael" NIL "mafudge" "syr.edu")) '
        '(("Santa" NIL "santa" "northpole.org")(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        '(("=?utf-8?q?Bj=C3=B6rn?=" NIL "bjorn" "luxsci.net")("Bare Name" NIL "bare" "luxsci.net")) NIL '
        '"<m0@syr.edu>" "<m1@syr.edu>"))')


def test_envelope_of_a_bare_message_and_odd_addresses(store):
    store.deliver(USER, b"From: <>\nTo: local-only, \"quoted \\\"name\\\"\" <q@x.org>\nSubject: a\"b\n\nx\n")
    c = session(store)
    [line] = c.ok("a FETCH 1 ENVELOPE")
    assert line == ('* 1 FETCH (ENVELOPE (NIL "a\\"b" NIL NIL NIL ((NIL NIL "local-only" "MISSING_DOMAIN")'
                    '("quoted \\"name\\"" NIL "q" "x.org")) NIL NIL NIL NIL))')


def test_bodystructure_and_body_of_a_nested_multipart(mime):
    c = session(mime)
    [line] = c.ok("a FETCH 1 (BODYSTRUCTURE BODY)")
    assert line == (
        '* 1 FETCH (BODYSTRUCTURE ((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 17 1 '
        'NIL NIL NIL NIL)'
        '("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 18 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "inner") '
        'NIL NIL NIL)("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 58 (NIL "inner message" ((NIL NIL "bob" "luxsci.net")) '
        '((NIL NIL "bob" "luxsci.net")) ((NIL NIL "bob" "luxsci.net")) NIL NIL NIL NIL NIL) '
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL)'
        '("APPLICATION" "PDF" ("NAME" "cv.pdf") NIL NIL "BASE64" 12 NIL ("ATTACHMENT" ("FILENAME" "cv.pdf")) NIL NIL) '
        '"MIXED" ("BOUNDARY" "outer") NIL NIL NIL) '
        'BODY ((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 17 1)'
        '("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 18 1) "ALTERNATIVE")'
        '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 58 (NIL "inner message" ((NIL NIL "bob" "luxsci.net")) '
        '((NIL NIL "bob" "luxsci.net")) ((NIL NIL "bob" "luxsci.net")) NIL NIL NIL NIL NIL) '
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1) 4)("APPLICATION" "PDF" ("NAME" "cv.pdf") NIL NIL '
        '"BASE64" 12) "MIXED"))')


def test_body_sections_agree_with_bodystructure_sizes(mime):
    c = session(mime)
    out = c.cmd("a FETCH 1 (BODY.PEEK[1.1] BODY.PEEK[1.2] BODY.PEEK[2] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] "
                "BODY.PEEK[3] BODY.PEEK[3.MIME] BODY.PEEK[2.HEADER.FIELDS (SUBJECT)] BODY.PEEK[] RFC822.SIZE)")
    items = literal_items(out)
    assert items["BODY[1.1]"] == b"Caf=C3=A9 au lait"
    assert items["BODY[1.2]"] == b"<p>Caf&eacute;</p>"
    assert items["BODY[2]"] == b"From: bob@luxsci.net\r\nSubject: inner message\r\n\r\ninner body"
    assert items["BODY[2.TEXT]"] == items["BODY[2.1]"] == b"inner body"
    assert items["BODY[3]"] == b"JVBERi0xLjQK"
    assert items["BODY[3.MIME]"].startswith(b"Content-Type: application/pdf;")
    assert items["BODY[3.MIME]"].endswith(b"base64\r\n\r\n")
    assert items["BODY[2.HEADER.FIELDS (SUBJECT)]"] == b"Subject: inner message\r\n\r\n"
    assert items["BODY[]"] == MIME.replace(b"\n", b"\r\n")
    assert f"RFC822.SIZE {len(items['BODY[]'])}".encode() in out
    assert out.endswith(b"a OK FETCH completed\r\n")


def test_header_fields_not_text_and_missing_parts(mime):
    c = session(mime)
    out = c.cmd("a FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (To Cc Content-Type MIME-Version From Date)] "
                "BODY.PEEK[TEXT]<0.8> BODY.PEEK[9] BODY.PEEK[1.1]<4.1000> BODY.PEEK[]<5000.10>)")
    items = literal_items(out)
    assert items["BODY[HEADER.FIELDS.NOT (TO CC CONTENT-TYPE MIME-VERSION FROM DATE)]"] == (
        b"Subject: =?utf-8?q?R=C3=A9sum=C3=A9?= attached\r\nMessage-ID: <m1@syr.edu>\r\n"
        b"In-Reply-To: <m0@syr.edu>\r\n\r\n")
    assert items["BODY[TEXT]<0>"] == b"preamble"
    assert items["BODY[1.1]<4>"] == b"C3=A9 au lait"
    assert b"BODY[9] NIL" in out                          # no such part
    assert b'BODY[]<5000> ""' in out                      # a partial beyond the end is empty


def test_header_fields_asked_again_and_otherwise_answer_each_list(mime):
    """The last small HEADER.FIELDS subset of a message is kept in its cache: asking again, asking
    other fields, the .NOT form of the same list and again the first all answer what they name."""
    c = session(mime)
    asks = [("HEADER.FIELDS (SUBJECT FROM)", b'From: "Fudge, Michael" <mafudge@syr.edu>\r\n'
                                              b"Subject: =?utf-8?q?R=C3=A9sum=C3=A9?= attached\r\n\r\n"),
            ("HEADER.FIELDS (MESSAGE-ID)", b"Message-ID: <m1@syr.edu>\r\n\r\n"),
            ("HEADER.FIELDS.NOT (MESSAGE-ID)", None),
            ("HEADER.FIELDS (SUBJECT FROM)", None)]
    seen: dict[str, bytes] = {}
    for i, (section, expected) in enumerate(asks):
        items = literal_items(c.cmd(f"a{i} FETCH 1 BODY.PEEK[{section}]"))
        value = items[f"BODY[{section}]"]
        if expected is not None:
            assert value == expected
        seen.setdefault(section, value)
        assert value == seen[section]
    assert b"Message-ID" not in seen["HEADER.FIELDS.NOT (MESSAGE-ID)"]
    assert b"In-Reply-To: <m0@syr.edu>" in seen["HEADER.FIELDS.NOT (MESSAGE-ID)"]


def test_body_peek_sets_no_seen_but_body_does_and_says_so(mime):
    c = session(mime)
    folder = mime.user(USER).folder("INBOX")
    c.ok("a FETCH 1 (BODY.PEEK[] BODY.PEEK[TEXT] RFC822.HEADER RFC822.SIZE)")
    assert SEEN not in folder.messages()[0].flags
    out = c.cmd("b FETCH 1 BODY[1.1]")
    assert out.startswith(b"* 1 FETCH (BODY[1.1] {17}\r\nCaf=C3=A9 au lait FLAGS (\\Seen \\Recent))\r\n")
    assert SEEN in folder.messages()[0].flags
    again = c.cmd("c FETCH 1 BODY[1.1]")
    assert b"FLAGS" not in again                          # already seen: no change to report
    assert c.cmd("d NOOP") == b"d OK NOOP completed\r\n"    # and no second report of our own change


def test_examine_never_sets_seen(mime):
    c = session(mime, mailbox=None)
    c.select("INBOX", "EXAMINE")
    c.ok("a FETCH 1 (RFC822 BODY[TEXT])")
    assert SEEN not in mime.user(USER).folder("INBOX").messages()[0].flags


def test_flags_internaldate_uid_and_uid_fetch(store):
    for i in range(3):
        store.deliver(USER, msg(f"m{i}"), flags=("\\Flagged",) if i == 1 else ())
    c = session(store)
    folder = store.user(USER).folder("INBOX")
    m = folder.messages()[1]
    [line] = c.ok("a FETCH 2 (FLAGS INTERNALDATE RFC822.SIZE UID)")
    assert line == (f'* 2 FETCH (FLAGS (\\Flagged \\Recent) INTERNALDATE "{internaldate(m.internaldate)}" '
                    f"RFC822.SIZE {m.size} UID {m.uid})")
    assert re.fullmatch(r"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}", internaldate(time.time()))
    assert c.ok("b UID FETCH 2:* FLAGS") == ["* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))",
                                             "* 3 FETCH (UID 3 FLAGS (\\Recent))"]
    assert c.ok("c UID FETCH 100:* FLAGS") == ["* 3 FETCH (UID 3 FLAGS (\\Recent))"]   # n:* has the last one
    assert c.ok("c UID FETCH 100:200 FLAGS") == []
    assert c.ok("d FETCH 2:99 UID") == ["* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]


def test_fetch_modseq_and_changedsince(store):
    for i in range(3):
        store.deliver(USER, msg(f"m{i}"))
    c = session(store)
    folder = store.user(USER).folder("INBOX")
    c.ok("a STORE 2 +FLAGS.SILENT (\\Answered)")
    high = folder.highestmodseq
    assert c.ok(f"b FETCH 1:* (FLAGS) (CHANGEDSINCE {high - 1})") == [
        f"* 2 FETCH (FLAGS (\\Answered \\Recent) MODSEQ ({high}))"]
    assert c.conn.condstore
    [line] = c.ok("c UID FETCH 1 MODSEQ")
    assert line == f"* 1 FETCH (UID 1 MODSEQ ({folder.messages()[0].modseq}))"


def test_a_big_fetch_is_produced_in_chunks_and_summarised_in_the_transcript(store):
    body = "x" * 76 + "\n"
    for i in range(40):
        store.deliver(USER, msg(f"big {i}", body * 400))        # about 31 KB each
    c = session(store)
    c.conn.transcript()
    out = c.cmd("a FETCH 1:* BODY.PEEK[]")
    assert c.chunks >= 4                                      # 1.2 MB in several flushes
    assert out.count(b" FETCH (BODY[] {") == 40 and out.endswith(b"a OK FETCH completed\r\n")
    lines = c.conn.transcript()
    assert sum(1 for d, t in lines if d == "server" and "FETCH (BODY[]" in t) == 20
    assert ("note", next(t for d, t in lines if d == "note" and t.startswith("(... 20 more untagged responses")))\
        in lines
    assert not any("xxxxxxxx" in t for _, t in lines)         # literals are never dumped


def test_fetch_of_a_message_expunged_by_another_session(store):
    for i in range(2):
        store.deliver(USER, msg(f"m{i}"))
    a, b = session(store), session(store)
    b.ok("b1 STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("b2 EXPUNGE")
    out = a.lines("a1 FETCH 1:2 UID")
    assert out == ["* 2 FETCH (UID 2)", "a1 NO [EXPUNGEISSUED] Some of the requested messages no longer exist"]
    # a UID command may carry the EXPUNGE (RFC 3501 §7.4.1); it comes after the FETCH data
    assert a.ok("a2 UID FETCH 1:2 UID") == ["* 2 FETCH (UID 2)", "* 1 EXPUNGE"]
    assert a.ok("a3 NOOP") == []
    assert a.ok("a4 FETCH 1 UID") == ["* 1 FETCH (UID 2)"]
