"""Bad input to IMAP (SPEC: clear errors, bounded memory, the session survives): unknown and
malformed commands, wrong states, literals and lines over their limits, absurd sets, NUL, fuzz."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maillab.imap.protocol import Closed, State
from maillab.lab.state import StateDir
from maillab.store import MailStore

from imap_support import PASSWORD, USER, Client, msg, session


@pytest.fixture
def store(tmp_path) -> MailStore:
    return MailStore(StateDir(tmp_path / "state"))


def test_unknown_and_malformed_commands_get_bad(store):
    c = Client(store)
    assert c.cmd("a FROBNICATE") == b"a BAD Unknown command FROBNICATE\r\n"
    assert c.cmd("a") == b"a BAD Missing command (tag, space, command name)\r\n"
    assert c.cmd("") == b"* BAD Empty command line\r\n"
    assert c.cmd("+ NOOP") == b"* BAD Missing or invalid tag\r\n"
    assert c.cmd("a LOGIN") == b"a BAD Error in IMAP command LOGIN: Expected a space at end of line\r\n"
    assert c.cmd("a CAPABILITY now") == \
        b"a BAD Error in IMAP command CAPABILITY: Unexpected extra arguments near 'now'\r\n"
    assert c.cmd("a NOOP") == b"a OK NOOP completed\r\n"


def test_commands_in_the_wrong_state(store):
    store.deliver(USER, msg())
    c = Client(store)
    assert c.cmd("a SELECT INBOX") == (b"a BAD SELECT is not valid in the NOT AUTHENTICATED state: log in first "
                                       b"(LOGIN or AUTHENTICATE)\r\n")
    assert c.cmd("b UID FETCH 1 FLAGS").startswith(b"b BAD FETCH is not valid in the NOT AUTHENTICATED state")
    c.login()
    assert c.cmd("c FETCH 1 FLAGS") == b"c BAD FETCH needs a selected mailbox: SELECT or EXAMINE one first\r\n"
    assert c.cmd(f"d LOGIN {USER} {PASSWORD}") == b"d BAD LOGIN is not valid in the AUTHENTICATED state\r\n"
    assert c.cmd("e AUTHENTICATE PLAIN").startswith(b"e BAD AUTHENTICATE is not valid")


def test_a_huge_literal_is_refused_before_the_continuation(store):
    c = Client(store)
    assert c.cmd("a LOGIN {100000}") == (b"a BAD [TOOBIG] Literal too big: 100000 octets, the limit for this "
                                         b"command is 65536\r\n")
    c.login()
    assert c.cmd("c APPEND INBOX {67108865}") == (b"c NO [TOOBIG] Message too big: 67108865 octets, the limit "
                                                  b"is 67108864 (APPENDLIMIT)\r\n")
    assert c.cmd("d APPEND INBOX {99999999999999999999}").startswith(b"d NO [TOOBIG]")
    assert c.cmd("e NOOP") == b"e OK NOOP completed\r\n"


def test_an_append_before_login_is_small(store):
    c = Client(store)
    assert c.cmd("b APPEND INBOX {9000}") == (b"b NO [TOOBIG] Message too big: 9000 octets, the limit is 8192 "
                                              b"(APPENDLIMIT)\r\n")


def test_a_literal_plus_over_the_limit_is_dropped_as_it_arrives(store):
    c = session(store)
    big = b"x" * 70_000
    out = c.send(b"a LOGIN {70000+}\r\n" + big[:30_000])
    assert out.startswith(b"a BAD [TOOBIG]")
    assert c.conn.framer.buffered == 0
    assert c.send(big[30_000:] + b" more\r\nb NOOP\r\n") == b"b OK NOOP completed\r\n"


def test_absurd_sequence_sets_cost_nothing(store):
    for i in range(3):
        store.deliver(USER, msg(f"m{i}"))
    c = session(store)
    started = time.perf_counter()
    assert c.ok("a FETCH 1:4294967295 UID") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]
    assert c.ok("b UID FETCH 4294967295:1 UID") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]
    assert c.ok("c SEARCH 1:4294967295,2:4294967295 UID 1:4294967295") == ["* SEARCH 1 2 3"]
    assert c.ok("d STORE 1:4294967295 +FLAGS.SILENT (\\Seen)") == []
    assert time.perf_counter() - started < 1
    assert c.cmd("e FETCH 4294967296 UID").startswith(b"e BAD Error in IMAP command FETCH: Number out of range")
    assert c.cmd("f FETCH 0:2 UID").startswith(b"f BAD")
    assert c.cmd("g FETCH 7:9 UID") == \
        b"g BAD Message sequence number 7 does not exist (the mailbox has 3 messages)\r\n"
    assert c.cmd("h FETCH " + ",".join(["1"] * 10_001) + " UID").startswith(b"h BAD")


def test_an_empty_mailbox_has_no_message_numbers(store):
    c = session(store)
    assert c.cmd("a FETCH 1:* FLAGS") == b"a BAD No messages in the mailbox (use UID commands, or wait for EXISTS)\r\n"
    assert c.cmd("b UID FETCH 1:* FLAGS") == b"b OK UID FETCH completed\r\n"
    assert c.cmd("c SEARCH ALL") == b"* SEARCH\r\nc OK SEARCH completed\r\n"


def test_nul_bytes_and_invalid_utf8(store):
    c = Client(store)
    assert c.cmd(b"a NO\0OP") == b"a BAD NUL octet in command\r\n"
    assert c.cmd(b'a LOGIN "maf\0udge" x') == b"a BAD NUL octet in command\r\n"
    c.login()
    assert c.cmd(b"b CREATE caf\xc3\xa9") == b"b NO [CANNOT] mailbox name must be 7-bit printable (modified UTF-7)\r\n"
    assert c.cmd(b"c CREATE \xff\xfe").startswith(b"c NO [CANNOT]")
    c.select()
    assert c.cmd(b"d SEARCH SUBJECT \xff") == b"* SEARCH\r\nd OK SEARCH completed\r\n"
    assert c.cmd("e NOOP") == b"e OK NOOP completed\r\n"


def test_an_overlong_line_then_recovery(store):
    c = Client(store)
    out = c.send(b"a " + b"A" * 70_000)
    assert out == b"a BAD [TOOBIG] Line too long: the limit is 65536 octets\r\n"
    assert c.conn.framer.buffered < 70_000
    assert c.send(b"B" * 200_000) == b"" and c.conn.framer.buffered < 1000
    assert c.send(b"\r\nb NOOP\r\n") == b"b OK NOOP completed\r\n"


def test_a_literal_never_finished_holds_at_most_what_was_sent(store):
    c = session(store)
    assert c.cmd("a APPEND INBOX {10000000}") == b"+ Ready for literal data\r\n"
    for _ in range(16):
        assert c.send(b"x" * 65536) == b""
    assert c.conn.framer.buffered == 16 * 65536            # what came, never the announced 10 MB
    c.conn.receive_data(b"")
    assert c.conn.next_event() == Closed("Connection closed")
    assert store.user(USER).folder("INBOX").messages() == ()


def test_a_big_append_arrives_in_many_chunks(store):
    c = session(store)
    body = b"Subject: big\r\n\r\n" + b"y" * 78 * 1024 + b"\r\n"
    data = body * 60                                      # about 4.8 MB
    assert c.cmd(f"a APPEND INBOX {{{len(data)}}}") == b"+ Ready for literal data\r\n"
    for i in range(0, len(data), 65536):
        assert c.send(data[i:i + 65536]) == b""
    out = c.send(b"\r\n")
    assert out.startswith(b"* 1 EXISTS\r\n") and b"a OK [APPENDUID" in out
    folder = store.user(USER).folder("INBOX")
    assert folder.messages()[0].size == len(data)


def test_too_many_bad_commands_close_the_session(store):
    c = Client(store, max_bad_commands=5)
    for i in range(4):
        assert c.cmd(f"t{i} BOGUS").startswith(b"t")
    out = c.cmd("t5 BOGUS")
    assert out == b"t5 BAD Unknown command BOGUS\r\n* BYE Too many invalid commands\r\n"
    assert c.closed == Closed("Too many invalid commands") and c.conn.state is State.LOGOUT


def test_a_good_command_resets_the_bad_count(store):
    c = Client(store, max_bad_commands=3)
    for i in range(10):
        c.cmd(f"x{i} BOGUS")
        c.cmd(f"y{i} NOOP")
    assert c.closed is None


_WORDS = st.sampled_from([b"a", b"FETCH", b"STORE", b"SEARCH", b"SELECT", b"UID", b"1:*", b"*", b"4294967296",
                          b"(", b")", b"[", b"]", b"<0.5>", b"BODY[", b"BODY.PEEK[HEADER.FIELDS (", b"\"", b"\\",
                          b"{3}", b"{2+}", b"{99999999}", b"INBOX", b"+FLAGS", b"(\\Seen)", b"NOT", b"OR",
                          b"LIST", b"\"\"", b"%", b"APPEND", b"IDLE", b"DONE", b"LOGOUT", b"\xff", b"\x00", b"\r",
                          b"ENVELOPE", b"CHANGEDSINCE", b"MOVE", b"Trash", b"EXPUNGE", b"CLOSE", b"&Jjo"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_WORDS, max_size=12).map(b" ".join), max_size=15))
def test_fuzzed_command_lines_never_break_the_session(store, lines):
    if not store.user(USER).folder("INBOX").exists:
        store.deliver(USER, msg())
    c = session(store)
    for line in lines:
        if c.closed is not None:
            break
        out = c.send(b"t " + line + b"\r\n")
        if b"{" not in out:                   # no literal inside: every line is a response line
            assert all(r[:1] in (b"*", b"+", b"t") for r in out.split(b"\r\n") if r), out
    assert c.conn.framer.buffered <= 70_000
