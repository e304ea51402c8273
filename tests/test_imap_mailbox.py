"""Mailbox commands (RFC 3501 §6.3): SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, LIST, LSUB,
STATUS, APPEND (UIDPLUS), CHECK, CLOSE, UNSELECT; unsafe and modified UTF-7 names."""

from __future__ import annotations

import calendar

import pytest

from maillab.imap.protocol import State
from maillab.lab.state import StateDir
from maillab.store import DELETED, SEEN, MailStore, decode_mutf7

from imap_support import USER, code, msg, session

DEFAULT_LIST = ['* LIST (\\HasNoChildren) "." "INBOX"', '* LIST (\\Drafts \\HasNoChildren) "." "Drafts"',
                '* LIST (\\HasNoChildren \\Junk) "." "Junk"', '* LIST (\\HasNoChildren \\Sent) "." "Sent"',
                '* LIST (\\HasNoChildren \\Trash) "." "Trash"']


@pytest.fixture
def store(tmp_path) -> MailStore:
    return MailStore(StateDir(tmp_path / "state"))


def test_select_reports_the_mailbox(store):
    for i in range(3):
        store.deliver(USER, msg(f"m{i}"), flags=("\\Seen",) if i == 0 else ())
    folder = store.user(USER).folder("INBOX")
    c = session(store, mailbox=None)
    out = c.lines("s SELECT INBOX")
    assert out == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] Flags permitted",
        "* 3 EXISTS", "* 3 RECENT", "* OK [UNSEEN 2] First unseen",
        f"* OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid", "* OK [UIDNEXT 4] Predicted next UID",
        f"* OK [HIGHESTMODSEQ {folder.highestmodseq}] Highest", "s OK [READ-WRITE] SELECT completed"]
    assert c.conn.state is State.SELECTED
    # \Recent went to this session: another one sees none
    other = session(store, mailbox=None)
    assert "* 0 RECENT" in other.lines("t SELECT INBOX")


def test_examine_is_read_only_and_claims_no_recent(store):
    store.deliver(USER, msg())
    store.deliver(USER, msg("two"))
    c = session(store, mailbox=None)
    out = c.lines("e EXAMINE INBOX")
    assert "* OK [PERMANENTFLAGS ()] Read-only mailbox" in out and out[-1] == "e OK [READ-ONLY] EXAMINE completed"
    # RFC 3501 §6.3.2: EXAMINE reports \Recent (as STATUS and SELECT would) but does not clear it
    assert "* 2 RECENT" in out
    assert store.user(USER).folder("INBOX").recent == 2
    store.deliver(USER, msg("three"))                # a new message seen by the EXAMINE session
    assert c.lines("n NOOP")[:2] == ["* 3 EXISTS", "* 3 RECENT"]
    assert "* 3 RECENT" in session(store, mailbox=None).lines("s SELECT INBOX")
    assert c.lines("x STORE 1 +FLAGS (\\Seen)") == ["x NO [CANNOT] Mailbox is read-only (selected with EXAMINE)"]
    assert c.lines("y EXPUNGE")[-1].startswith("y NO")


def test_select_of_a_missing_mailbox_leaves_selected_state(store):
    c = session(store)
    assert c.lines("a SELECT Nowhere") == ["* OK [CLOSED] Previous mailbox closed",
                                           "a NO [NONEXISTENT] Mailbox doesn't exist: Nowhere"]
    assert c.conn.state is State.AUTHENTICATED
    assert c.lines("b FETCH 1 FLAGS")[0].startswith("b BAD FETCH needs a selected mailbox")


def test_create_list_delete_with_hierarchy(store):
    c = session(store, mailbox=None)
    c.ok("a CREATE Lists.Python.")               # a trailing delimiter is allowed (RFC 3501 §6.3.3)
    c.ok("b CREATE Projects")
    assert c.ok('c LIST "" *') == DEFAULT_LIST[:3] + [
        '* LIST (\\HasChildren) "." "Lists"', '* LIST (\\HasNoChildren) "." "Lists.Python"',
        '* LIST (\\HasNoChildren) "." "Projects"'] + DEFAULT_LIST[3:]
    assert c.ok('d LIST "" %') == DEFAULT_LIST[:3] + [
        '* LIST (\\HasChildren) "." "Lists"', '* LIST (\\HasNoChildren) "." "Projects"'] + DEFAULT_LIST[3:]
    assert c.ok("e LIST Lists. %") == ['* LIST (\\HasNoChildren) "." "Lists.Python"']
    assert c.ok('f LIST "" inbox') == [DEFAULT_LIST[0]]        # INBOX in any case
    assert c.ok('g LIST "" ""') == ['* LIST (\\Noselect) "." ""']
    assert c.ok('h LIST "" (Dr* Tr*)') == [DEFAULT_LIST[1], DEFAULT_LIST[4]]
    assert c.lines("i CREATE Projects") == ["i NO [ALREADYEXISTS] mailbox Projects already exists"]
    assert c.lines("j CREATE INBOX") == ["j NO [ALREADYEXISTS] mailbox INBOX already exists"]
    c.ok("k DELETE Lists")                        # has children and messages of its own: they stay
    assert c.ok('l LIST "" Lists*') == ['* LIST (\\HasChildren \\Noselect) "." "Lists"',
                                        '* LIST (\\HasNoChildren) "." "Lists.Python"']
    assert c.lines("m DELETE INBOX") == ["m NO [CANNOT] INBOX can not be deleted"]
    assert c.lines("n DELETE Nope") == ["n NO [NONEXISTENT] mailbox Nope does not exist"]


@pytest.mark.parametrize("name", ["..", "../../etc", "a..b", "a/b", "/tmp", ".hidden", "x.",
                                  "a*", "&Jjo", "&AGE-", '"caf\u00e9"'])
def test_unsafe_or_invalid_names_are_refused(store, tmp_path, name):
    c = session(store, mailbox=None)
    for command in ("CREATE", "DELETE", "SELECT", "STATUS", "RENAME INBOX", "APPEND"):
        args = f"{command} {name}" if command != "RENAME INBOX" else f"RENAME {name} Other"
        if command == "STATUS":
            args += " (MESSAGES)"
        if command == "APPEND":
            args += " {1+}\nx"
        out = c.lines(f"t {args}")
        if name == "x." and command == "CREATE":
            continue                                  # "x." is "x" declared as a parent
        assert out[-1].startswith("t NO") or out[-1].startswith("t BAD"), (command, out)
    root = tmp_path / "state" / "mail" / "syr.edu" / "mafudge"
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == [
        ".Drafts", ".Junk", ".Sent", ".Trash"] + ([".x"] if name == "x." else [])
    assert not (tmp_path / "state" / "mail" / "syr.edu" / "etc").exists()


def test_modified_utf7_names_round_trip(store):
    c = session(store, mailbox=None)
    name = "&ZeVnLIqe-.caf&AOk-"                 # 日本語.café
    assert decode_mutf7(name) == "\u65e5\u672c\u8a9e.caf\u00e9"
    c.ok(f"a CREATE {name}")
    assert c.ok('b LIST "" &ZeVnLIqe-*') == ['* LIST (\\HasChildren) "." "&ZeVnLIqe-"',
                                              f'* LIST (\\HasNoChildren) "." "{name}"']
    assert c.ok(f"c STATUS {name} (MESSAGES)") == [f'* STATUS "{name}" (MESSAGES 0)']
    c.ok("d CREATE a&-b")
    assert c.ok('e LIST "" a*') == ['* LIST (\\HasNoChildren) "." "a&-b"']


def test_rename_moves_children_and_renaming_inbox_moves_its_messages(store):
    store.deliver(USER, msg("one"))
    store.deliver(USER, msg("two"))
    c = session(store, mailbox=None)
    c.ok("a CREATE Work.2024")
    c.ok("b RENAME Work Archive.Work")
    assert c.ok('c LIST "" Archive*') == ['* LIST (\\HasChildren) "." "Archive"',
                                          '* LIST (\\HasChildren) "." "Archive.Work"',
                                          '* LIST (\\HasNoChildren) "." "Archive.Work.2024"']
    assert c.lines("d RENAME Nope X") == ["d NO [NONEXISTENT] mailbox Nope does not exist"]
    assert c.lines("e RENAME Sent Drafts") == ["e NO [ALREADYEXISTS] mailbox Drafts already exists"]
    c.ok("f RENAME INBOX Old")
    assert c.ok("g STATUS Old (MESSAGES)") == ['* STATUS "Old" (MESSAGES 2)']
    assert c.ok("h STATUS INBOX (MESSAGES)") == ['* STATUS "INBOX" (MESSAGES 0)']


def test_deleting_or_renaming_the_selected_mailbox_leaves_it_first(store):
    c = session(store, mailbox=None)
    c.ok("a CREATE Box")
    c.select("Box")
    assert c.lines("b DELETE Box") == ["* OK [CLOSED] Mailbox closed", "b OK DELETE completed"]
    assert c.conn.state is State.AUTHENTICATED
    c.ok("c CREATE Box2")
    c.select("Box2")
    assert c.lines("d RENAME Box2 Box3") == ["* OK [CLOSED] Mailbox closed", "d OK RENAME completed"]


def test_selected_mailbox_deleted_by_another_session_says_bye(store):
    a, b = session(store, mailbox=None), session(store, mailbox=None)
    a.ok("a CREATE Shared")
    a.select("Shared")
    b.ok("b DELETE Shared")
    out = a.lines("c NOOP")
    assert out == ["* BYE The selected mailbox was deleted or renamed by another session",
                   "c NO [NONEXISTENT] Selected mailbox is gone"]
    assert a.closed is not None


def test_a_mailbox_deleted_before_idle_starts_ends_the_session_cleanly(store):
    a, b = session(store, mailbox=None), session(store, mailbox=None)
    a.ok("a CREATE Shared")
    a.select("Shared")
    b.ok("b DELETE Shared")
    assert a.lines("c IDLE") == ["+ idling", "* BYE The selected mailbox was deleted or renamed by another session",
                                 "c NO [NONEXISTENT] Selected mailbox is gone"]
    assert a.closed is not None and not a.conn.idling


def test_subscribe_and_lsub(store):
    c = session(store, mailbox=None)
    c.ok("a CREATE Lists.Python")
    c.ok("b SUBSCRIBE Lists.Python")
    c.ok("c SUBSCRIBE Gone.Away")
    assert c.ok('d LSUB "" *') == ['* LSUB () "." "Sent"', '* LSUB () "." "Drafts"', '* LSUB () "." "Trash"',
                                   '* LSUB () "." "Junk"', '* LSUB () "." "INBOX"', '* LSUB () "." "Lists.Python"',
                                   '* LSUB () "." "Gone.Away"']
    assert c.ok('e LSUB "" Lists.%') == ['* LSUB () "." "Lists.Python"']
    assert c.ok('f LSUB "" L%') == ['* LSUB (\\Noselect) "." "Lists"']    # RFC 3501 §6.3.9
    c.ok("g UNSUBSCRIBE Gone.Away")
    c.ok("h UNSUBSCRIBE Never.Subscribed")
    assert c.ok('i LSUB "" G*') == []
    assert c.ok('j LIST (SUBSCRIBED) "" L*') == ['* LIST (\\HasNoChildren \\Subscribed) "." "Lists.Python"']
    assert c.ok('k LIST "" S* RETURN (SUBSCRIBED)') == ['* LIST (\\HasNoChildren \\Sent \\Subscribed) "." "Sent"']
    assert c.ok('l LIST (SPECIAL-USE) "" *') == DEFAULT_LIST[1:]
    assert c.lines('m LIST (RECURSIVEMATCH) "" *') == ["m BAD Unsupported LIST selection option RECURSIVEMATCH"]


def test_list_return_status(store):
    store.deliver(USER, msg())
    c = session(store, mailbox=None)
    assert c.ok('a LIST "" INBOX RETURN (STATUS (MESSAGES UNSEEN))') == [
        DEFAULT_LIST[0], '* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)']


def test_status(store):
    for i in range(3):
        store.deliver(USER, msg(f"m{i}"), flags=("\\Seen",) if i else ())
    folder = store.user(USER).folder("INBOX")
    c = session(store, mailbox=None)
    [line] = c.ok("a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE)")
    assert line == (f'* STATUS "INBOX" (MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY {folder.uidvalidity} UNSEEN 1 '
                    f"HIGHESTMODSEQ {folder.highestmodseq} SIZE {folder.total_size})")
    assert c.conn.condstore                       # HIGHESTMODSEQ is CONDSTORE-enabling (RFC 7162 §3.1)
    assert c.lines("b STATUS Nope (MESSAGES)") == ["b NO [NONEXISTENT] Mailbox doesn't exist: Nope"]
    c.select()
    assert c.ok("c STATUS INBOX (RECENT)") == ['* STATUS "INBOX" (RECENT 3)']


def test_append_with_flags_date_appenduid_and_trycreate(store):
    c = session(store)
    out = c.lines('a APPEND Sent (\\Seen $Sent) "05-Mar-2024 10:00:00 +0100" {25}\nSubject: sent\n\nhi there')
    folder = store.user(USER).folder("Sent")
    m = folder.messages()[0]
    assert out == ["+ Ready for literal data",          # a new keyword: the selected mailbox's FLAGS grow
                   "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Sent)",
                   "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Sent \\*)] "
                   "Flags permitted",
                   f"a OK [APPENDUID {folder.uidvalidity} {m.uid}] APPEND completed"]
    assert m.flags == {SEEN, "$Sent"} and m.internaldate == calendar.timegm((2024, 3, 5, 9, 0, 0))
    assert folder.read(m.uid) == b"Subject: sent\n\nhi there"
    assert c.lines("b APPEND Nope {1+}\nx") == ["b NO [TRYCREATE] Mailbox doesn't exist: Nope"]
    assert c.lines("c APPEND INBOX {0+}\n") == ["c NO Can't save a zero-length message"]
    assert c.lines("d APPEND INBOX (\\Bogus) {1+}\nx") == ["d BAD unknown system flag \\Bogus"]
    assert c.lines("e APPEND INBOX {3+}\na\0b")[-1].startswith("e BAD NUL octets")
    # into the selected mailbox: the session hears of it before the tagged OK
    out = c.lines("f APPEND INBOX (\\Recent) {1+}\nx")
    assert out[:2] == ["* 1 EXISTS", "* 1 RECENT"] and code(out[2]).startswith("APPENDUID")


def test_check_close_unselect(store):
    for i in range(2):
        store.deliver(USER, msg(f"m{i}"))
    c = session(store)
    assert c.lines("a CHECK") == ["a OK CHECK completed"]
    c.ok("b STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert c.lines("c UNSELECT") == ["c OK UNSELECT completed"]      # no expunge
    assert len(store.user(USER).folder("INBOX").messages()) == 2
    c.select()
    assert c.lines("d CLOSE") == ["d OK CLOSE completed"]             # expunges silently
    assert [DELETED in m.flags for m in store.user(USER).folder("INBOX").messages()] == [False]
    assert c.conn.state is State.AUTHENTICATED
    c.select("INBOX", "EXAMINE")
    c.ok("e CLOSE")


def test_recent_never_exceeds_exists_when_a_message_arrives_and_goes_during_the_catch_up(store, monkeypatch):
    """A message delivered between the catch-up's look at new UIDs and its claim of \\Recent
    (another thread, in the lab) must not be claimed by a view that does not have it: once it
    is expunged, nothing would take its \\Recent back (issue 13: "* 3 EXISTS" then "* 4 RECENT")."""
    store.deliver(USER, msg("first"))
    c = session(store)
    folder = store.user(USER).folder("INBOX")
    store.deliver(USER, msg("second"))
    take = folder.take_recent
    interloper: list[int] = []

    def racing(*args: object, **kwargs: object) -> frozenset[int]:
        if not interloper:                          # once: a delivery lands right now
            interloper.append(folder.append(msg("third"), ["\\Deleted"]).uid)
        return take(*args, **kwargs)                # type: ignore[arg-type]
    monkeypatch.setattr(folder, "take_recent", racing)
    assert c.ok("n1 NOOP") == ["* 2 EXISTS", "* 2 RECENT"]
    session(store, mailbox=None).ok("s SELECT INBOX")     # someone else, who claims the interloper
    other = session(store)
    other.ok("x EXPUNGE")
    assert folder.get(interloper[0]) is None
    store.deliver(USER, msg("fourth"))
    out = c.ok("n2 NOOP")
    exists = [int(line.split()[1]) for line in out if line.endswith(" EXISTS")]
    recent = [int(line.split()[1]) for line in out if line.endswith(" RECENT")]
    assert exists and recent and recent[-1] <= exists[-1], out
