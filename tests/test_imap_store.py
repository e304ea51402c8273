"""Changing messages: STORE, COPY, MOVE, EXPUNGE, UIDPLUS, CONDSTORE, and what concurrent sessions
hear of each other's changes (RFC 3501 §6.4, §7.4.1; RFC 4315; RFC 6851; RFC 7162)."""

from __future__ import annotations

import pytest

from maillab.lab.state import StateDir
from maillab.store import MailStore

from imap_support import USER, msg, session


@pytest.fixture
def store(tmp_path) -> MailStore:
    s = MailStore(StateDir(tmp_path / "state"))
    for i in range(1, 6):
        s.deliver(USER, msg(f"message {i}"))
    return s


def inbox(store: MailStore):
    return store.user(USER).folder("INBOX")


def test_store_add_remove_set_and_silent(store):
    c = session(store)
    assert c.ok("a STORE 1:2 +FLAGS (\\Seen \\Flagged)") == [
        "* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent))", "* 2 FETCH (FLAGS (\\Flagged \\Seen \\Recent))"]
    assert c.ok("b STORE 2 -FLAGS \\Flagged") == ["* 2 FETCH (FLAGS (\\Seen \\Recent))"]
    out = c.ok("c STORE 3 FLAGS ($Label1 \\Answered)")
    assert out[0] == "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Label1)"    # a new keyword,
    assert out[2] == "* 3 FETCH (FLAGS (\\Answered $Label1 \\Recent))"         # announced first (RFC 3501 §7.2.6)
    assert c.ok("d STORE 4 +FLAGS.SILENT (\\Draft)") == []
    assert c.ok("e UID STORE 5 +FLAGS (\\Seen)") == ["* 5 FETCH (UID 5 FLAGS (\\Seen \\Recent))"]
    assert [sorted(m.flags) for m in inbox(store).messages()] == [
        ["\\Flagged", "\\Seen"], ["\\Seen"], ["$Label1", "\\Answered"], ["\\Draft"], ["\\Seen"]]
    assert c.ok("f NOOP") == []                       # our own changes are not reported again


def test_store_refuses_recent_and_unknown_system_flags(store):
    c = session(store)
    assert c.lines("a STORE 1 +FLAGS (\\Recent)") == ["a BAD \\Recent can not be set by a client"]
    assert c.lines("b STORE 1 +FLAGS (\\Important)") == ["b BAD unknown system flag \\Important"]
    assert c.lines("c STORE 9 +FLAGS (\\Seen)") == [
        "c BAD Message sequence number 9 does not exist (the mailbox has 5 messages)"]


def test_keywords_run_out_after_26(store):
    c = session(store)
    for i in range(26):
        c.ok(f"k{i} STORE 1 +FLAGS.SILENT (kw{i})")
    assert c.lines("z STORE 1 +FLAGS (kw26)")[-1] == "z NO [LIMIT] too many keywords (a Maildir holds 26)"


def test_copy_with_copyuid_and_trycreate(store):
    c = session(store)
    dest = store.user(USER).folder("Trash")
    c.ok("a STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert c.lines("b COPY 2:3 Trash") == [f"b OK [COPYUID {dest.uidvalidity} 2:3 1:2] COPY completed"]
    assert [sorted(m.flags) for m in dest.messages()] == [["\\Flagged"], []]
    assert c.lines("c UID COPY 5,1 Trash") == [f"c OK [COPYUID {dest.uidvalidity} 1,5 3:4] COPY completed"]
    assert c.lines("d COPY 1 Nowhere") == ["d NO [TRYCREATE] Mailbox doesn't exist: Nowhere"]
    assert c.lines("e UID COPY 99 Trash") == ["e OK UID COPY completed"]
    assert len(inbox(store).messages()) == 5
    # a copy into the selected mailbox itself shows up as new messages
    assert c.lines("f COPY 1 INBOX")[:2] == ["* 6 EXISTS", "* 6 RECENT"]


def test_move_sends_copyuid_then_expunges(store):
    c = session(store)
    dest = store.user(USER).folder("Junk")
    assert c.lines("a MOVE 2,4 Junk") == [f"* OK [COPYUID {dest.uidvalidity} 2,4 1:2] Moved UIDs",
                                          "* 4 EXPUNGE", "* 2 EXPUNGE", "a OK MOVE completed"]
    assert [m.uid for m in inbox(store).messages()] == [1, 3, 5]
    assert c.lines("b UID MOVE 5 Junk") == [f"* OK [COPYUID {dest.uidvalidity} 5 3] Moved UIDs", "* 3 EXPUNGE",
                                            "b OK UID MOVE completed"]
    e = session(store, mailbox=None)
    e.select("INBOX", "EXAMINE")
    assert e.lines("c MOVE 1 Junk") == ["c NO [CANNOT] Mailbox is read-only (selected with EXAMINE)"]


def test_expunge_and_uid_expunge(store):
    c = session(store)
    c.ok("a STORE 1,3,5 +FLAGS.SILENT (\\Deleted)")
    assert c.ok("b UID EXPUNGE 3:5") == ["* 5 EXPUNGE", "* 3 EXPUNGE"]   # only the listed UIDs
    assert [m.uid for m in inbox(store).messages()] == [1, 2, 4]
    assert c.ok("c EXPUNGE") == ["* 1 EXPUNGE"]
    assert c.ok("d EXPUNGE") == []
    assert c.ok("e FETCH 1:* UID") == ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 4)"]


def test_condstore_select_store_unchangedsince_and_modified(store):
    c = session(store, mailbox=None)
    folder = inbox(store)
    out = c.lines("s SELECT INBOX (CONDSTORE)")
    assert f"* OK [HIGHESTMODSEQ {folder.highestmodseq}] Highest" in out and c.conn.condstore
    before = folder.get(1).modseq
    [line] = c.ok(f"a STORE 1 (UNCHANGEDSINCE {before}) +FLAGS (\\Seen)")
    after = folder.get(1).modseq
    assert after > before and line == f"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) MODSEQ ({after}))"
    # the same condition again fails: the message changed since
    second = folder.get(2).modseq
    assert second < after
    assert c.lines(f"b STORE 1:2 (UNCHANGEDSINCE {second}) +FLAGS (\\Answered)") == [
        f"* 2 FETCH (UID 2 FLAGS (\\Answered \\Recent) MODSEQ ({folder.get(2).modseq}))",
        "b OK [MODIFIED 1] Conditional STORE failed"]
    assert c.lines(f"c UID STORE 1 (UNCHANGEDSINCE {before}) FLAGS ()") == [
        "c OK [MODIFIED 1] Conditional STORE failed"]
    # .SILENT still reports the new MODSEQ once CONDSTORE is on (RFC 7162 §3.1.3)
    assert c.ok("d STORE 3 +FLAGS.SILENT (\\Flagged)") == [f"* 3 FETCH (UID 3 MODSEQ ({folder.get(3).modseq}))"]
    assert c.ok(f"e FETCH 1:* (FLAGS) (CHANGEDSINCE {after})") == [
        f"* 2 FETCH (FLAGS (\\Answered \\Recent) MODSEQ ({folder.get(2).modseq}))",
        f"* 3 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ ({folder.get(3).modseq}))"]


# ---- two sessions on one mailbox ---------------------------------------------------------

def test_flag_changes_reach_the_other_session_with_modseq_once_condstore_is_on(store):
    a, b = session(store), session(store)
    b.ok("x ENABLE CONDSTORE")
    a.ok("a STORE 2 +FLAGS (\\Flagged)")
    modseq = inbox(store).get(2).modseq
    assert b.ok("b NOOP") == [f"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({modseq}))"]
    assert b.ok("c NOOP") == []
    a.ok("d STORE 2 -FLAGS (\\Flagged)")
    # FETCH responses may arrive during FETCH, STORE and SEARCH too
    assert b.ok("e SEARCH FLAGGED") == ["* SEARCH", f"* 2 FETCH (UID 2 FLAGS () MODSEQ ({inbox(store).get(2).modseq}))"]


def test_expunges_wait_for_a_command_that_allows_them(store):
    a, b = session(store), session(store)
    a.ok("a STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    a.ok("b EXPUNGE")
    # not during FETCH, STORE or SEARCH by sequence number: the numbers stay as b knows them
    assert b.ok("c FETCH 4 UID") == ["* 4 FETCH (UID 4)"]
    assert b.ok("d SEARCH ALL") == ["* SEARCH 1 4 5"]
    assert b.lines("e STORE 2 +FLAGS (\\Seen)") == ["e OK STORE completed"]
    assert b.ok("f NOOP") == ["* 3 EXPUNGE", "* 2 EXPUNGE"]
    assert b.ok("g FETCH 2 UID") == ["* 2 FETCH (UID 4)"]


def test_new_messages_reach_every_session_with_recent_for_one(store):
    a, b = session(store), session(store)
    store.deliver(USER, msg("late"))
    assert a.ok("a NOOP") == ["* 6 EXISTS", "* 6 RECENT"]      # a selected first: all six are its recent ones
    assert b.ok("b NOOP") == ["* 6 EXISTS", "* 0 RECENT"]


def test_idle_sees_flags_expunges_and_arrivals_from_another_session(store):
    a, b = session(store), session(store)
    assert a.cmd("i IDLE") == b"+ idling\r\n"
    b.ok("x STORE 1 +FLAGS.SILENT (\\Deleted \\Seen)")
    a.conn.idle_poll()
    assert a.conn.data_to_send() == b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Seen \\Recent))\r\n"
    b.ok("y EXPUNGE")
    store.deliver(USER, msg("late"))
    a.conn.idle_poll()
    assert a.conn.data_to_send() == b"* 1 EXPUNGE\r\n* 5 EXISTS\r\n* 5 RECENT\r\n"
    assert a.cmd("DONE") == b"i OK IDLE terminated\r\n"


def test_outside_changes_to_the_maildir_are_seen_at_noop(store, tmp_path):
    c = session(store)
    cur = tmp_path / "state" / "mail" / "syr.edu" / "mafudge" / "cur"
    first = sorted(cur.iterdir())[0]
    first.rename(first.with_name(first.name.split(":")[0] + ":2,S"))       # mutt marks it read
    (tmp_path / "state" / "mail" / "syr.edu" / "mafudge" / "new" / "1.outside.host").write_bytes(msg("outside"))
    assert c.ok("a NOOP") == ["* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))", "* 6 EXISTS", "* 6 RECENT"]
