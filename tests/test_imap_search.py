"""SEARCH (RFC 3501 §6.4.4, RFC 7162 MODSEQ): every key family, decoded text, UID SEARCH, charsets."""

from __future__ import annotations

import calendar
import random
import threading
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maillab.lab.state import StateDir
from maillab.store import MailStore

from imap_support import USER, session


def day(y: int, m: int, d: int) -> float:
    return calendar.timegm((y, m, d, 12, 0, 0))


MESSAGES = [
    # (stored message, flags, internal date)
    (b"From: Santa Claus <santa@northpole.org>\nTo: mafudge@syr.edu\nSubject: Christmas list\n"
     b"Date: Sun, 24 Dec 2023 23:00:00 -0500\n\nToys, please.\n", ("\\Seen",), day(2023, 12, 25)),
    (b"From: =?utf-8?q?Bj=C3=B6rn?= <bjorn@luxsci.net>\nTo: mafudge@syr.edu\nCc: bob@luxsci.net\n"
     b"Subject: =?utf-8?q?Caf=C3=A9?= tonight\nDate: Mon, 15 Jan 2024 10:00:00 +0000\nX-Priority: 1\n"
     b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
     b"VGhlIHNlY3JldCB3b3JkIGlzIGJhbmFuYS4K\n", ("\\Flagged", "$Work"), day(2024, 1, 15)),
    (b"From: promo@cheap-pills.biz\nTo: mafudge@syr.edu\nSubject: Deals\nDate: Tue, 16 Jan 2024 10:00:00 +0000\n"
     b"Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/html; charset=utf-8\n"
     b"Content-Transfer-Encoding: quoted-printable\n\n<p>=C3=9Cber cheap PILLS</p>\n--b--\n" + b"pad\n" * 500,
     ("\\Deleted",), day(2024, 1, 16)),
    (b"From: tajorgen@syr.edu\nTo: mafudge@syr.edu\nSubject: lunch?\n\nno date header here\n", (), day(2024, 2, 1)),
]


@pytest.fixture
def client(tmp_path):
    store = MailStore(StateDir(tmp_path / "state"))
    inbox = store.user(USER).folder("INBOX")
    for data, flags, when in MESSAGES:
        inbox.append(data, flags, when)
    return session(store)


def hits(client, keys: str, uid: bool = False) -> list[int]:
    [line] = client.ok(f"s {'UID ' if uid else ''}SEARCH {keys}")
    assert line.startswith("* SEARCH")
    return [int(n) for n in line[len("* SEARCH"):].split()]


@pytest.mark.parametrize("keys, expected", [
    ("ALL", [1, 2, 3, 4]),
    ("SEEN", [1]), ("UNSEEN", [2, 3, 4]),
    ("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4]),
    ("DELETED", [3]), ("UNDELETED", [1, 2, 4]),
    ("ANSWERED", []), ("UNANSWERED", [1, 2, 3, 4]), ("DRAFT", []), ("UNDRAFT", [1, 2, 3, 4]),
    ("KEYWORD $work", [2]), ("UNKEYWORD $Work", [1, 3, 4]),
    ("RECENT", [1, 2, 3, 4]), ("NEW", [2, 3, 4]), ("OLD", []),
])
def test_flag_keys(client, keys, expected):
    assert hits(client, keys) == expected


@pytest.mark.parametrize("keys, expected", [
    ("FROM santa", [1]), ("FROM NORTHPOLE.ORG", [1]), ("FROM björn", [2]), ("FROM claus", [1]),
    ('SUBJECT "café"', [2]), ("SUBJECT CAFÉ", [2]), ("SUBJECT list", [1]), ("SUBJECT nothing", []),
    ("TO mafudge", [1, 2, 3, 4]), ("CC bob", [2]), ("BCC anyone", []),
    ("HEADER X-Priority 1", [2]), ("HEADER x-priority \"\"", [2]), ("HEADER Date 2024", [2, 3]),
    ("BODY banana", [2]), ("BODY über", [3]), ("BODY pills", [3]), ("BODY Christmas", []),
    ("TEXT christmas", [1]), ("TEXT banana", [2]), ("TEXT zebra", []),
])
def test_text_keys_decode_encoded_words_transfer_encodings_and_case(client, keys, expected):
    assert hits(client, f"CHARSET UTF-8 {keys}") == expected


@pytest.mark.parametrize("keys, expected", [
    ("SINCE 15-Jan-2024", [2, 3, 4]), ("BEFORE 15-Jan-2024", [1]), ("ON 16-Jan-2024", [3]),
    ("SENTSINCE 15-Jan-2024", [2, 3]), ("SENTBEFORE 1-Jan-2024", [1]), ("SENTON 24-Dec-2023", [1]),
    ("LARGER 1000", [3]), ("SMALLER 143", [4]), ("SMALLER 144", [1, 4]), ("LARGER 143", [2, 3]),
])
def test_date_and_size_keys(client, keys, expected):
    assert hits(client, keys) == expected


@pytest.mark.parametrize("keys, expected", [
    ("1,3", [1, 3]), ("2:*", [2, 3, 4]), ("*", [4]), ("UID 2:3", [2, 3]), ("UID 3:*", [3, 4]),
    ("1:4294967295", [1, 2, 3, 4]),
    ("OR SEEN FLAGGED", [1, 2]), ("NOT SEEN", [2, 3, 4]), ("NOT (SEEN OR FLAGGED DELETED)", [1, 2, 3, 4]),
    ("NOT (OR SEEN OR FLAGGED DELETED)", [4]),
    ("(UNSEEN UNDELETED) FROM syr.edu", [4]), ("OR (FROM santa) OR (SUBJECT deals) (BODY banana)", [1, 2, 3]),
    ("UNDELETED NOT NOT FLAGGED", [2]),
])
def test_sets_and_boolean_keys(client, keys, expected):
    assert hits(client, keys) == expected


def test_uid_search_answers_uids(client):
    client.ok("e STORE 1 +FLAGS (\\Deleted)")
    assert client.ok("x EXPUNGE") == ["* 3 EXPUNGE", "* 1 EXPUNGE"]
    assert hits(client, "ALL") == [1, 2]
    assert hits(client, "ALL", uid=True) == [2, 4]
    assert hits(client, "UID 4 FROM syr.edu", uid=True) == [4]
    assert hits(client, "2", uid=True) == [4]


def test_modseq_key_reports_the_highest_modseq(client):
    client.ok("a STORE 4 +FLAGS (\\Answered)")
    [line] = client.ok("s SEARCH ANSWERED MODSEQ 1")
    modseq = client.conn.view.folder.get(4).modseq
    assert line == f"* SEARCH 4 (MODSEQ {modseq})"
    assert client.conn.condstore
    assert client.ok(f"t SEARCH MODSEQ {modseq + 1}") == ["* SEARCH"]


def test_unknown_charset_and_bad_keys(client):
    assert client.lines("a SEARCH CHARSET KOI8-R FROM x") == [
        "a NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset KOI8-R"]
    assert client.lines("b SEARCH CHARSET US-ASCII FROM santa") == ["* SEARCH 1", "b OK SEARCH completed"]
    assert client.lines("c SEARCH SINCE 32-Jan-2024")[-1].startswith("c BAD")
    assert client.lines("d SEARCH 9")[-1] == "d OK SEARCH completed"      # a search by number is not an error


def test_search_caches_decoded_headers_on_the_message(client):
    hits(client, "SUBJECT tonight")
    m = client.conn.view.folder.get(2)
    assert m.cache["h:subject"] == "café tonight"


def test_body_search_finds_every_message_while_other_threads_rename_their_files(tmp_path):
    """Flag changes rename message files (Maildir info ":2,FS"); a SEARCH reading bodies meanwhile
    must still find every message: the retry after a rename happens under the folder's lock, so a
    second rename can not make a message that exists look gone (issue 13, IMAP item 3).  Two
    threads toggle \\Seen on all messages until the searches are done."""
    store = MailStore(StateDir(tmp_path / "state"))
    inbox = store.user(USER).folder("INBOX")
    uids = [inbox.append(f"Subject: m{i}\n\nneedle {i}\n".encode()).uid for i in range(10)]
    c = session(store)
    done = threading.Event()
    errors: list[BaseException] = []

    def toggle() -> None:
        try:
            while not done.is_set():
                inbox.store(uids, ["\\Seen"], "add")
                inbox.store(uids, ["\\Seen"], "remove")
        except BaseException as e:      # reported by the test
            errors.append(e)
            raise

    threads = [threading.Thread(target=toggle) for _ in range(2)]
    for t in threads:
        t.start()
    def found() -> int:         # the flag changes come with the reply: keep the SEARCH line
        [line] = [line for line in c.ok("s SEARCH BODY needle") if line.startswith("* SEARCH")]
        return len(line.split()) - 2
    try:
        short = [n for n in (found() for _ in range(3000)) if n != len(uids)]
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors
    assert short == [], f"{len(short)} of 3000 searches missed messages that exist"


def test_address_keys_match_addresses_as_envelope_parses_them(tmp_path):
    """FROM/TO/CC/BCC match the envelope's addresses (RFC 3501 §6.4.4), parsed as ENVELOPE parses
    them: comments inside an address do not hide it (issue 13); the raw text still matches too."""
    store = MailStore(StateDir(tmp_path / "state"))
    inbox = store.user(USER).folder("INBOX")
    inbox.append(b"From: <user-from (comment)@ (comment) domain.org>\n"
                 b"To: =?utf-8?q?J=C3=BCrgen?= <juergen (home) @ example.net>, friends: ann@a.org;\n"
                 b"Subject: commented\n\nbody\n")
    inbox.append(b"From: other@domain.org\nTo: nobody@example.net\nSubject: plain\n\nbody\n")
    c = session(store)
    envelope = c.ok("f FETCH 1 ENVELOPE")[0]
    assert '(NIL NIL "user-from" "domain.org")' in envelope
    assert hits(c, 'FROM "user-from@domain.org"') == [1]
    assert hits(c, 'FROM "user-from@domain"') == [1]
    assert hits(c, 'TO "juergen@example.net"') == [1]
    assert hits(c, 'CHARSET UTF-8 TO "jürgen <juergen@example.net>"') == [1]
    assert hits(c, 'TO friends') == [1]                             # a group's name
    assert hits(c, 'FROM "(comment)"') == [1]                       # the raw text, as HEADER FROM
    assert hits(c, 'HEADER FROM "comment) domain"') == [1]
    assert hits(c, 'FROM "@domain.org"') == [1, 2]
    assert hits(c, 'NOT FROM "user-from@domain.org"') == [2]


# ---- set-at-a-time evaluation against a message-by-message reading of RFC 3501 §6.4.4 ----------

_FLAGS = ("\\Seen", "\\Flagged", "\\Deleted", "\\Answered", "$Work")
_SUBJECTS = ("invoice due", "lunch", "Invoice 2", "party")


def _key(draw: st.DrawFn, depth: int = 0) -> tuple[str, Callable[[int, dict], bool]]:
    """A random SEARCH key and the reference test of a message (seq, facts) against it."""
    kinds = ["flag", "size", "seq", "uid", "subject", "all"] + (["and", "or", "not"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "flag":
        flag, present = draw(st.sampled_from(_FLAGS)), draw(st.booleans())
        words = {"\\Seen": "SEEN", "\\Flagged": "FLAGGED", "\\Deleted": "DELETED", "\\Answered": "ANSWERED"}
        text = (words[flag] if present else "UN" + words[flag]) if flag in words else \
            f"{'KEYWORD' if present else 'UNKEYWORD'} {flag.lower()}"
        return text, lambda seq, m: (flag in m["flags"]) == present
    if kind == "size":
        larger, n = draw(st.booleans()), draw(st.integers(50, 120))
        return f"{'LARGER' if larger else 'SMALLER'} {n}", \
            lambda seq, m: m["size"] > n if larger else m["size"] < n
    if kind in ("seq", "uid"):
        spans = draw(st.lists(st.tuples(st.integers(1, 45), st.integers(1, 45) | st.just(0)), min_size=1, max_size=3))
        text = ",".join(f"{a}:{b or '*'}" if a != b else str(a) for a, b in spans)
        def within(n: int, largest: int) -> bool:
            return any(min(a, b or largest) <= n <= max(a, b or largest) for a, b in spans)
        if kind == "seq":
            return text, lambda seq, m: within(seq, m["exists"])
        return f"UID {text}", lambda seq, m: within(m["uid"], m["max_uid"])
    if kind == "subject":
        word = draw(st.sampled_from(("invoice", "LUNCH", "2", "nothing")))
        return f"SUBJECT {word}", lambda seq, m: word.casefold() in m["subject"].casefold()
    if kind == "all":
        return "ALL", lambda seq, m: True
    if kind == "not":
        text, test = _key(draw, depth + 1)
        return f"NOT ({text})", lambda seq, m: not test(seq, m)
    (ta, a), (tb, b) = _key(draw, depth + 1), _key(draw, depth + 1)
    if kind == "or":
        return f"OR ({ta}) ({tb})", lambda seq, m: a(seq, m) or b(seq, m)
    return f"({ta}) ({tb})", lambda seq, m: a(seq, m) and b(seq, m)


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_key_tree_finds_what_a_message_by_message_reading_finds(mixed_box, data):
    client, facts = mixed_box
    text, test = _key(data.draw)
    expected = [seq for seq, m in enumerate(facts, 1) if test(seq, m)]
    assert hits(client, text) == expected, text
    assert hits(client, text, uid=True) == [facts[s - 1]["uid"] for s in expected], text


@pytest.fixture(scope="module")
def mixed_box(tmp_path_factory):
    """40 messages with random flags, sizes and subjects; every fifth UID expunged, so
    sequence numbers and UIDs differ."""
    rng = random.Random(13)
    store = MailStore(StateDir(tmp_path_factory.mktemp("mixed") / "state"))
    inbox = store.user(USER).folder("INBOX")
    for i in range(50):
        flags = tuple(f for f in _FLAGS if rng.random() < 0.4)
        inbox.append(f"Subject: {rng.choice(_SUBJECTS)}\n\n{'x' * rng.randint(0, 80)}\n".encode(), flags)
    client = session(store)
    client.ok("s SELECT INBOX")
    client.ok("d STORE 1:* -FLAGS (\\Deleted)")
    client.ok("e STORE " + ",".join(str(n) for n in range(5, 51, 5)) + " +FLAGS (\\Deleted)")
    client.ok("x EXPUNGE")
    for n in range(1, 41):
        client.ok(f"f{n} STORE {n} {'+' if rng.random() < 0.3 else '-'}FLAGS (\\Deleted)")
    facts = []
    view = client.conn.view
    for uid in view.uids:
        m = view.folder.get(uid)
        facts.append({"uid": uid, "flags": set(m.flags), "size": m.size, "exists": len(view.uids),
                      "max_uid": view.uids[-1],
                      "subject": view.folder.read_header(uid).split(b"Subject: ")[1].split(b"\n")[0].decode()})
    return client, facts
