"""The mail store: UIDs that last, outside changes seen, flags in file names, folder operations, events."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from maillab.base.events import (EventBus, FlagsChanged, MailboxCreated, MailboxDeleted, MailboxRenamed,
                                 MessagesAdded, MessagesExpunged)
from maillab.base.fsutil import finish
from maillab.lab.directory import Account
from maillab.lab.state import StateDir
from maillab.mta.mda import Mda
from maillab.store import (FlagError, KeywordLimit, MailboxExists, MailboxNameError, MailboxNotAllowed,
                           MaildropBusy, MailStore, MessageGone, NoSuchMailbox, StoreError)
from maillab.store.maildir import folder_totals
from maillab.store.uidlist import UidList

USER = "mafudge@syr.edu"
MSG = b"From: santa@northpole.org\nSubject: hello\n\nline one\nline two\n"


@pytest.fixture
def state(tmp_path) -> StateDir:
    return StateDir(tmp_path / "state")


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def store(state, bus) -> MailStore:
    return MailStore(state, bus)


def maildir(state: StateDir) -> Path:
    return state.maildir("syr.edu", "mafudge")


def mutt_flags(folder_path: Path) -> dict[str, str]:
    """What a Maildir reader such as mutt sees: base name → the letters after ':2,'."""
    out = {}
    for sub in ("cur", "new"):
        for name in os.listdir(folder_path / sub):
            base, _, info = name.partition(":")
            out[base] = info[2:] if info.startswith("2,") else ""
    return out


def drop_in(folder_path: Path, name: str, data: bytes, sub: str = "new") -> Path:
    """A message written by another program (mutt, an outside MDA): tmp, then rename."""
    tmp = folder_path / "tmp" / name
    tmp.write_bytes(data)
    os.rename(tmp, folder_path / sub / name)
    return folder_path / sub / name


# ---- layout, special use, subscriptions -------------------------------------------------

def test_first_use_makes_the_maildir_and_special_use_folders(store, state):
    user = store.user("MaFudge@SYR.edu")
    root = maildir(state)
    assert user.root == root and user.address == USER
    for sub in ("cur", "new", "tmp"):
        assert (root / sub).is_dir()
    for name in ("Sent", "Drafts", "Trash", "Junk"):
        assert (root / f".{name}" / "cur").is_dir()
        assert (root / f".{name}" / "maildirfolder").exists()
    listing = {i.name: i.attributes for i in user.list()}
    assert listing["INBOX"] == {"\\HasNoChildren"}
    assert listing["Sent"] == {"\\HasNoChildren", "\\Sent"}
    assert "\\Drafts" in listing["Drafts"] and "\\Trash" in listing["Trash"] and "\\Junk" in listing["Junk"]
    assert user.special_use("\\Sent") == "Sent"
    assert set(user.subscriptions()) == {"INBOX", "Sent", "Drafts", "Trash", "Junk"}
    assert store.user(USER) is user


def test_unsafe_addresses_are_refused(store):
    for address in ("nobody", "../x@syr.edu", "x@../etc", ".hidden@syr.edu", "a/b@syr.edu", "x@a/b"):
        with pytest.raises(StoreError):
            store.user(address)


def test_subscriptions_persist(store, state):
    user = store.user(USER)
    user.subscribe("Lists.Python")            # RFC 3501 §6.3.6: a name that does not exist yet is fine
    assert user.unsubscribe("Junk") is True
    assert user.unsubscribe("Junk") is False
    again = MailStore(state).user(USER)
    assert set(again.subscriptions()) == {"INBOX", "Sent", "Drafts", "Trash", "Lists.Python"}
    with pytest.raises(MailboxNameError):
        user.subscribe("../../etc")


# ---- UIDs and UIDVALIDITY ---------------------------------------------------------------

def test_uids_and_uidvalidity_survive_a_restart(store, state):
    inbox = store.user(USER).folder("INBOX")
    uids = [store.deliver(USER, MSG + b"%d\n" % i).uid for i in range(5)]
    assert uids == [1, 2, 3, 4, 5]
    inbox.remove([2])
    before = [(m.uid, m.key, m.size, m.internaldate) for m in inbox.messages()]
    validity, uidnext, modseq = inbox.uidvalidity, inbox.uidnext, inbox.highestmodseq

    again = MailStore(state).user(USER).folder("INBOX")      # a new lab process
    assert [(m.uid, m.key, m.size, m.internaldate) for m in again.messages()] == before
    assert (again.uidvalidity, again.uidnext, again.highestmodseq) == (validity, uidnext, modseq)
    assert store.deliver(USER, MSG).uid == 6
    third = MailStore(state).user(USER).folder("INBOX")
    assert [m.uid for m in third.messages()] == [1, 3, 4, 5, 6] and third.uidnext == 7


def test_uidnext_never_goes_back_after_expunging_the_last(store, state):
    inbox = store.user(USER).folder("INBOX")
    store.deliver(USER, MSG)
    store.deliver(USER, MSG)
    inbox.remove([2])
    assert MailStore(state).user(USER).folder("INBOX").uidnext == 3


def test_outside_changes_are_found_and_announced(store, state, bus):
    sub = bus.subscribe()
    inbox = store.user(USER).folder("INBOX")
    first = store.deliver(USER, MSG)
    sub.drain()
    root = maildir(state)
    # an outside MDA (and the old maillab MDA) writes names with S= only, or none at all
    drop_in(root, "1700000000.M1P1Q1.elsewhere,S=40", b"Subject: a\r\n\r\nCRLF already\r\n")
    drop_in(root, "1700000001.M2P1Q1.elsewhere", b"Subject: b\n\nbody\n")
    changes = inbox.refresh()
    assert changes.added == (2, 3)
    assert [e.uids for e in sub.drain() if isinstance(e, MessagesAdded)] == [(2, 3)]
    assert os.listdir(root / "new") == []                     # moved to cur/, as IMAP servers do
    assert sorted(n.partition(":")[2] for n in os.listdir(root / "cur")) == ["2,", "2,", "2,"]
    assert inbox.get(2).size == len(b"Subject: a\r\n\r\nCRLF already\r\n")
    assert inbox.get(3).size == len(b"Subject: b\r\n\r\nbody\r\n")
    assert inbox.read(3, crlf=True) == b"Subject: b\r\n\r\nbody\r\n"

    # mutt marks one read (rename) and deletes another (unlink)
    path = inbox.path_of(2)
    os.rename(path, str(path).replace(":2,", ":2,S"))
    os.unlink(inbox.path_of(first.uid))
    modseq = inbox.highestmodseq
    changes = inbox.refresh()
    assert changes.expunged == (1,) and changes.flags == (2,)
    assert inbox.get(2).flags == {"\\Seen"} and inbox.get(2).modseq > modseq
    kinds = {type(e): e for e in sub.drain()}
    assert kinds[MessagesExpunged].uids == (1,) and kinds[FlagsChanged].uids == (2,)
    assert inbox.refresh() == inbox.refresh(force=True)      # nothing more to find

    # while the lab is down, mutt adds one and deletes one: UIDs of the rest stay
    os.unlink(inbox.path_of(3))
    drop_in(root, "1700000002.M3P1Q1.elsewhere", b"Subject: c\n\nc\n", sub="cur")
    again = MailStore(state).user(USER).folder("INBOX")
    assert [(m.uid, m.flags) for m in again.messages()] == [(2, {"\\Seen"}), (4, frozenset())]


def test_a_lost_uidlist_means_a_new_uidvalidity(store, state):
    inbox = store.user(USER).folder("INBOX")
    store.deliver(USER, MSG)
    old = inbox.uidvalidity
    (maildir(state) / "maillab-uidlist").unlink()
    again = MailStore(state).user(USER).folder("INBOX")
    assert again.uidvalidity > old and [m.uid for m in again.messages()] == [1]


def test_a_torn_uidlist_line_is_ignored(store, state):
    inbox = store.user(USER).folder("INBOX")
    store.deliver(USER, MSG)
    store.deliver(USER, MSG)
    uidlist = maildir(state) / "maillab-uidlist"
    with open(uidlist, "a") as f:
        f.write("= 2 99 cur/half-writ")              # a crash in the middle of an append
    again = MailStore(state).user(USER).folder("INBOX")
    assert [m.uid for m in again.messages()] == [1, 2] and again.uidvalidity == inbox.uidvalidity
    assert uidlist.read_text().endswith("\n") and "half-writ" not in uidlist.read_text()
    assert MailStore(state).user(USER).folder("INBOX").uidnext == 3


def test_the_uidlist_is_compacted(store, state):
    inbox = store.user(USER).folder("INBOX")
    store.deliver(USER, MSG)
    uidlist = maildir(state) / "maillab-uidlist"
    for i in range(1100):
        inbox.store([1], ["\\Seen"], "add" if i % 2 == 0 else "remove")
    lines = uidlist.read_text().splitlines()
    assert len(lines) < 1000                 # rewritten once dead records passed 2 × live + 1000
    assert lines[0].startswith(f"maillab-uidlist 1 V{inbox.uidvalidity} ")
    again = MailStore(state).user(USER).folder("INBOX")
    assert again.get(1).flags == frozenset() and again.get(1).modseq == inbox.get(1).modseq



def test_folder_totals_count_what_a_maildir_reader_sees(store, state):
    inbox = store.user(USER).folder("INBOX")
    read = store.deliver(USER, MSG).uid
    store.deliver(USER, MSG)
    inbox.store([read], ["\\Seen"], "add")                       # into cur/ with S
    drop_in(inbox.path, "1700000000.outside.host", b"Subject: x\r\n\r\nhi\r\n")    # no S=/W=: stat'ed
    drop_in(inbox.path, "1700000001.outside.host:2,F", b"Subject: y\n\nyo\n", sub="cur")
    (inbox.path / "new" / ".hidden").write_bytes(b"not a message")
    messages, unseen, size = folder_totals(inbox.path)
    assert messages == 4 and unseen == 3                          # all but the one marked seen
    assert size == 2 * inbox.get(read).size + len(b"Subject: x\r\n\r\nhi\r\n") + len(b"Subject: y\n\nyo\n")


# ---- flags ----------------------------------------------------------------------------

def test_flags_live_in_the_file_name(store, state):
    user = store.user(USER)
    inbox = user.folder("INBOX")
    uid = store.deliver(USER, MSG).uid
    inbox.store([uid], ["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Deleted", "$Forwarded"], "set")
    key = inbox.get(uid).key
    assert mutt_flags(inbox.path)[key] == "DFPRST"           # the Maildir letters, in ASCII order
    inbox.store([uid], ["\\seen", "\\DELETED"], "remove")    # case-insensitive
    assert mutt_flags(inbox.path)[key] == "DFPR"
    inbox.store([uid], ["NonJunk", "$label1"], "add")
    assert mutt_flags(inbox.path)[key] == "DFPRab"
    assert (user.root / "maillab-keywords").read_text() == "0 $label1\n1 NonJunk\n"
    assert inbox.get(uid).flags == {"\\Draft", "\\Flagged", "$Forwarded", "\\Answered", "NonJunk", "$label1"}
    again = MailStore(state).user(USER).folder("INBOX")
    assert again.get(uid).flags == inbox.get(uid).flags
    assert again.get(uid).modseq == inbox.get(uid).modseq


def test_mutt_sets_flags_we_read(store, state):
    inbox = store.user(USER).folder("INBOX")
    drop_in(maildir(state), "1700000000.M1P1Q1.mutt:2,FRSx", b"Subject: x\n\nx\n", sub="cur")
    inbox.refresh()
    m = inbox.messages()[0]
    assert m.flags == {"\\Flagged", "\\Answered", "\\Seen"}
    inbox.store([m.uid], ["\\Deleted"], "add")
    assert mutt_flags(inbox.path)[m.key] == "FRSTx"          # an unknown letter is kept


def test_bad_flags_are_refused(store):
    user = store.user(USER)
    inbox = user.folder("INBOX")
    uid = store.deliver(USER, MSG).uid
    for bad in (["\\Recent"], ["\\Bogus"], ["two words"], ["br(ace"], [""]):
        with pytest.raises(FlagError):
            inbox.store([uid], bad, "add")
    inbox.store([uid], [f"kw{i}" for i in range(26)], "add")
    with pytest.raises(KeywordLimit):
        inbox.store([uid], ["one-too-many"], "add")
    assert len(inbox.get(uid).flags) == 26


def test_condstore_modseq_and_unchanged_since(store):
    inbox = store.user(USER).folder("INBOX")
    a, b = store.deliver(USER, MSG).uid, store.deliver(USER, MSG).uid
    start = inbox.highestmodseq
    result = inbox.store([a], ["\\Seen"], "add")
    assert result.modseq == start + 1 == inbox.highestmodseq == inbox.get(a).modseq
    assert inbox.store([a], ["\\Seen"], "add").changed == ()            # no change, no new MODSEQ
    assert inbox.highestmodseq == start + 1
    result = inbox.store([a, b], ["\\Flagged"], "add", unchanged_since=start)
    assert result.modified == (a,) and [m.uid for m in result.changed] == [b]
    assert inbox.get(a).flags == {"\\Seen"}
    inbox.store([b], ["\\Deleted"], "add")
    before = inbox.highestmodseq
    inbox.expunge()
    assert inbox.highestmodseq > before


# ---- messages ---------------------------------------------------------------------------

def test_append_stores_lf_with_flags_date_and_crlf_size(store, bus):
    sub = bus.subscribe()
    drafts = store.user(USER).folder("Drafts")
    wire = b"Subject: draft\r\n\r\nhello\r\nworld\r\n"
    m = drafts.append(wire, ["\\Draft", "\\Seen"], internaldate=1_000_000_000)
    assert m.uid == 1 and m.size == len(wire) and m.internaldate == 1_000_000_000
    path = drafts.path_of(m.uid)
    assert path.parent.name == "cur" and path.name.endswith(f",S={len(wire) - 4},W={len(wire)}:2,DS")
    assert path.read_bytes() == wire.replace(b"\r\n", b"\n")
    assert int(path.stat().st_mtime) == 1_000_000_000
    assert drafts.read(m.uid, crlf=True) == wire
    assert drafts.read_header(m.uid) == b"Subject: draft\n\n"
    assert drafts.read_header(m.uid, crlf=True) == b"Subject: draft\r\n\r\n"
    assert [e for e in sub.drain() if isinstance(e, MessagesAdded)][0].uids == (1,)
    assert drafts.status().size == len(wire) and drafts.total_size == len(wire)


def test_headers_without_a_body_and_outside_crlf_files(store, state):
    inbox = store.user(USER).folder("INBOX")
    drop_in(maildir(state), "1.M1P1Q1.x", b"Subject: no body\n")
    drop_in(maildir(state), "2.M1P1Q1.x", b"Subject: crlf\r\nX: y\r\n\r\nbody\r\n")
    inbox.refresh()
    assert inbox.read_header(1) == b"Subject: no body\n"
    assert inbox.read_header(2) == b"Subject: crlf\r\nX: y\r\n\r\n"
    assert inbox.read_header(2, crlf=True) == b"Subject: crlf\r\nX: y\r\n\r\n"


def test_copy_move_expunge(store, bus):
    user = store.user(USER)
    inbox, trash = user.folder("INBOX"), user.folder("Trash")
    uids = [store.deliver(USER, MSG + b"%d\n" % i).uid for i in range(4)]
    inbox.store([uids[0]], ["\\Seen", "keep"], "add")
    sub = bus.subscribe()

    pairs = inbox.copy([uids[0], uids[1], 999], trash)          # unknown UIDs are skipped
    assert pairs == [(1, 1), (2, 2)]
    assert trash.get(1).flags == {"\\Seen", "keep"} and trash.get(1).internaldate == inbox.get(1).internaldate
    assert trash.read(1) == inbox.read(1)
    assert os.stat(trash.path_of(1)).st_nlink == 2              # a hard link, as Dovecot does
    assert inbox.copy([1], inbox) == [(1, 5)]                   # COPY into the same mailbox

    pairs = inbox.move([3, 4], trash)
    assert pairs == [(3, 3), (4, 4)] and [m.uid for m in inbox.messages()] == [1, 2, 5]
    assert trash.read(4) == MSG + b"3\n"

    inbox.store([1, 2], ["\\Deleted"], "add")
    assert inbox.expunge([2, 5]) == (2,)                        # UID EXPUNGE: only those listed
    assert inbox.expunge() == (1,)
    assert [m.uid for m in inbox.messages()] == [5]
    with pytest.raises(MessageGone):
        inbox.read(1)
    assert trash.read(1) == MSG + b"0\n"                        # the copy outlives the original

    seen = [(type(e).__name__, e.mailbox, e.uids) for e in sub.drain()
            if isinstance(e, (MessagesAdded, MessagesExpunged))]
    assert seen == [("MessagesAdded", "Trash", (1, 2)), ("MessagesAdded", "INBOX", (5,)),
                    ("MessagesAdded", "Trash", (3, 4)), ("MessagesExpunged", "INBOX", (3, 4)),
                    ("MessagesExpunged", "INBOX", (2,)), ("MessagesExpunged", "INBOX", (1,))]


def test_status_counts(store):
    inbox = store.user(USER).folder("INBOX")
    for _ in range(3):
        store.deliver(USER, MSG)
    inbox.store([1], ["\\Seen"], "add")
    inbox.store([2], ["\\Deleted"], "add")
    status = store.user(USER).status("INBOX")
    assert (status.messages, status.unseen, status.deleted, status.uidnext) == (3, 2, 1, 4)
    assert status.size == 3 * (len(MSG) + MSG.count(b"\n"))


def test_a_message_renamed_by_mutt_can_still_be_read(store):
    inbox = store.user(USER).folder("INBOX")
    uid = store.deliver(USER, MSG).uid
    inbox.refresh()
    path = inbox.path_of(uid)
    os.rename(path, str(path) + "S")
    assert inbox.read(uid) .endswith(b"line two\n")
    assert inbox.get(uid).flags == {"\\Seen"}


def test_recent_goes_to_the_first_session_that_asks(store, state):
    inbox = store.user(USER).folder("INBOX")
    store.deliver(USER, MSG)
    store.deliver(USER, MSG)
    assert inbox.recent == 2
    assert inbox.take_recent() == {1, 2}
    assert inbox.take_recent() == frozenset() and inbox.recent == 0
    store.deliver(USER, MSG)                                  # still in new/ when the lab stops
    assert MailStore(state).user(USER).folder("INBOX").take_recent() == {3}


# ---- folders ----------------------------------------------------------------------------

def test_create_list_delete(store, state, bus):
    user = store.user(USER)
    sub = bus.subscribe()
    user.create("Lists.Python.")                              # trailing delimiter: parent declared
    assert (maildir(state) / ".Lists" / "cur").is_dir()         # the parent was made too
    assert (maildir(state) / ".Lists.Python" / "cur").is_dir()
    assert [e.mailbox for e in sub.drain() if isinstance(e, MailboxCreated)] == ["Lists", "Lists.Python"]
    with pytest.raises(MailboxExists):
        user.create("Lists.Python")
    with pytest.raises(MailboxExists):
        user.create("inbox")
    listing = {i.name: i.attributes for i in user.list()}
    assert listing["Lists"] == {"\\HasChildren"} and listing["Lists.Python"] == {"\\HasNoChildren"}

    user.delete("Lists")                                      # RFC 3501 §6.3.4: children stay
    listing = {i.name: i.attributes for i in user.list()}
    assert listing["Lists"] == {"\\HasChildren", "\\Noselect"} and "Lists.Python" in listing
    with pytest.raises(MailboxNotAllowed):
        user.delete("Lists")
    with pytest.raises(NoSuchMailbox):
        user.folder("Lists")
    with pytest.raises(MailboxNotAllowed):
        user.delete("INBOX")
    with pytest.raises(NoSuchMailbox):
        user.delete("Nothing")
    assert [e.mailbox for e in sub.drain() if isinstance(e, MailboxDeleted)] == ["Lists"]
    assert not [p for p in maildir(state).iterdir() if p.name.startswith("..")]


def test_folder_names_can_not_escape_the_maildir(store, state, tmp_path):
    user = store.user(USER)
    before = sorted(p for p in tmp_path.rglob("*"))
    for name in ("..", "../../../evil", "/tmp/evil", "a/b", "a..b", ".x", "x\x00y", "&Zé-", "&AGE-",
                 "Entwürfe", "*", "&ZeVnLIqe"):
        for op in (user.create, user.delete, user.folder, user.subscribe, lambda n: user.rename("Sent", n)):
            with pytest.raises(MailboxNameError):
                op(name)
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_folders_made_by_mutt_are_listed_and_symlinks_are_not(store, state, tmp_path):
    user = store.user(USER)
    root = maildir(state)
    for sub in ("cur", "new", "tmp"):
        (root / ".mutt-made" / sub).mkdir(parents=True)
    drop_in(root / ".mutt-made", "1.M1P1Q1.mutt", b"Subject: m\n\nm\n")
    outside = tmp_path / "outside"
    (outside / "cur").mkdir(parents=True)
    (root / ".escape").symlink_to(outside)
    names = user.names()
    assert "mutt-made" in names and "escape" not in names
    assert user.folder("mutt-made").exists == 1
    with pytest.raises(NoSuchMailbox):
        user.folder("escape")


def test_a_folder_removed_behind_our_back(store, state):
    user = store.user(USER)
    user.create("Gone")
    folder = user.folder("Gone")
    shutil.rmtree(maildir(state) / ".Gone")
    with pytest.raises(NoSuchMailbox):
        folder.refresh()
    assert folder.closed and "Gone" not in user.names()


def test_modified_utf7_folders_round_trip(store, state):
    user = store.user(USER)
    user.create("&ZeVnLIqe-.Entw&APw-rfe")
    assert (maildir(state) / ".&ZeVnLIqe-.Entw&APw-rfe" / "cur").is_dir()
    folder = user.folder("&ZeVnLIqe-.Entw&APw-rfe")
    folder.append(b"Subject: x\r\n\r\n")
    names = [i.name for i in MailStore(state).user(USER).list()]
    assert "&ZeVnLIqe-" in names and "&ZeVnLIqe-.Entw&APw-rfe" in names


def test_rename_with_children_and_a_new_uidvalidity(store, state, bus):
    user = store.user(USER)
    user.create("Work.2024")
    work = user.folder("Work")
    work.append(b"Subject: w\r\n\r\n")
    old_validity = work.uidvalidity
    sub = bus.subscribe()
    user.rename("Work", "Archive.Work")
    assert work.closed
    with pytest.raises(NoSuchMailbox):
        work.messages()
    names = [i.name for i in user.list()]
    assert {"Archive", "Archive.Work", "Archive.Work.2024"} <= set(names) and "Work" not in names
    moved = user.folder("Archive.Work")
    assert [m.uid for m in moved.messages()] == [1] and moved.uidvalidity > old_validity
    assert [(e.mailbox, e.new_name) for e in sub.drain() if isinstance(e, MailboxRenamed)] == \
        [("Work", "Archive.Work"), ("Work.2024", "Archive.Work.2024")]
    with pytest.raises(MailboxExists):
        user.rename("Sent", "Trash")
    with pytest.raises(MailboxNotAllowed):
        user.rename("Archive", "Archive.Inner")
    with pytest.raises(NoSuchMailbox):
        user.rename("Nothing", "Something")


def test_rename_inbox_moves_its_messages(store):
    user = store.user(USER)
    inbox = user.folder("INBOX")
    for _ in range(2):
        store.deliver(USER, MSG)
    user.rename("INBOX", "Old")
    assert inbox.exists == 0 and not inbox.closed
    assert len(user.folder("Old").messages()) == 2
    assert store.deliver(USER, MSG).uid == 3                    # INBOX carries on, UIDs unbroken


def test_recreated_mailbox_gets_a_higher_uidvalidity(store):
    user = store.user(USER)
    user.create("Tmp")
    first = user.folder("Tmp").uidvalidity
    user.delete("Tmp")
    user.create("Tmp")
    assert user.folder("Tmp").uidvalidity > first


def test_delivery_falls_back_to_inbox_and_can_file_into_junk(store):
    user = store.user(USER)
    assert store.deliver(USER, MSG, mailbox="Junk").mailbox == "Junk"
    assert user.folder("Junk").exists == 1
    user.delete("Junk")
    assert store.deliver(USER, MSG, mailbox="Junk").mailbox == "INBOX"
    seen = store.deliver(USER, MSG, flags=("\\Seen",))
    assert "/cur/" in seen.path and seen.path.endswith(":2,S")


# ---- POP3 lock, events across threads, the MDA -----------------------------------------------

def test_maildrop_lock(store):
    lock = store.lock_maildrop(USER)
    with pytest.raises(MaildropBusy):
        store.lock_maildrop("MAFUDGE@syr.edu")
    assert store.maildrop_locked(USER)
    lock.release()
    lock.release()                                            # idempotent
    with store.lock_maildrop(USER):
        assert store.maildrop_locked(USER)
    assert not store.maildrop_locked(USER)


async def test_events_from_worker_threads_reach_the_loop(state):
    bus = EventBus()
    sub = bus.subscribe()
    store = MailStore(state, bus)                             # built on the loop: remembers it
    inbox = await asyncio.to_thread(lambda: store.user(USER).folder("INBOX"))
    sub.drain()
    started = time.perf_counter()
    delivery = await asyncio.to_thread(store.deliver, USER, MSG)
    events = await asyncio.wait_for(sub.next_batch(), 2)
    assert time.perf_counter() - started < 1
    assert [(type(e), e.uids) for e in events] == [(MessagesAdded, (delivery.uid,))]
    assert inbox.get(delivery.uid) is not None


async def test_events_keep_commit_order_across_threads(state):
    bus = EventBus()
    sub = bus.subscribe()
    store = MailStore(state, bus)
    inbox = store.user(USER).folder("INBOX")
    await asyncio.sleep(0)
    sub.drain()
    uid = (await asyncio.to_thread(store.deliver, USER, MSG)).uid     # committed in a worker
    inbox.store([uid], ["\\Seen"], "add")                             # then on the loop thread
    inbox.store([uid], ["\\Deleted"], "add")
    await asyncio.to_thread(inbox.expunge)
    await asyncio.sleep(0)
    kinds = [type(e).__name__ for e in sub.drain()]
    assert kinds == ["MessagesAdded", "FlagsChanged", "FlagsChanged", "MessagesExpunged"]


def test_the_mda_delivers_through_the_store(state, bus):
    store = MailStore(state, bus)
    sub = bus.subscribe()
    mda = Mda(None, store)  # type: ignore[arg-type]   # the directory is not needed here
    result = finish(mda.deliver(Account(USER, "Professor Fudge"), USER, "santa@northpole.org", b"Subject: hi\r\n\r\nho\r\n"))
    assert result.ok and result.status == "2.0.0"
    path = Path(result.path)
    assert path.parent == maildir(state) / "new"
    assert path.read_bytes() == (b"Return-Path: <santa@northpole.org>\nDelivered-To: mafudge@syr.edu\n"
                                 b"Subject: hi\n\nho\n")
    assert ",S=" in path.name and ",W=" in path.name
    added = [e for e in sub.drain() if isinstance(e, MessagesAdded)]
    assert added and added[-1].uids == (1,) and added[-1].mailbox == "INBOX"


async def test_deliveries_through_the_syncer_are_filed_in_its_thread_with_shared_flushes(store, state, monkeypatch):
    """Forty deliveries at once through the group-commit thread, the lock free: the syncer's
    thread files them itself (no pool thread), every flush shared: far fewer flush rounds
    than deliveries, UIDs 1..40 in one index, nothing left in tmp/."""
    import threading

    from maillab.base.syncer import Syncer
    from maillab.store import folder as folder_module
    store.user(USER).folder("INBOX")                        # open: nothing may block
    filers: set[str] = set()
    real_file_steps = folder_module.Folder._file_steps

    def file_steps(self):
        filers.add(threading.current_thread().name)
        return (yield from real_file_steps(self))

    monkeypatch.setattr(folder_module.Folder, "_file_steps", file_steps)
    syncer = Syncer(state.root)
    try:
        messages = await asyncio.gather(*(syncer.run(store.deliver_steps(USER, f"Subject: {i}\n\n{i}\n".encode()))
                                          for i in range(40)))
    finally:
        syncer.close()
    assert sorted(m.uid for m in messages) == list(range(1, 41))
    assert filers == {"maillab-sync"}
    assert syncer.flushes <= 12                 # tmp files, folder, index: a few rounds, not 120 flushes
    assert os.listdir(maildir(state) / "tmp") == []
    reopened = MailStore(state).user(USER).folder("INBOX")          # a new lab process
    assert [reopened.read(m.uid) for m in messages] == [f"Subject: {i}\n\n{i}\n".encode() for i in range(40)]


async def test_a_delivery_through_the_syncer_waits_for_a_lock_another_thread_holds_without_holding_up_flushes(
        store, state):
    """An IMAP session holds the user's lock: a delivery waits for it in a pool thread, and
    meanwhile the syncer goes on flushing for everyone else; released, the message is filed."""
    import threading

    from maillab.base.syncer import Syncer
    inbox = store.user(USER).folder("INBOX")
    syncer = Syncer(state.root)
    held, release = threading.Event(), threading.Event()

    def imap_session() -> None:
        with inbox.lock:
            held.set()
            release.wait(10)

    session = threading.Thread(target=imap_session)
    session.start()
    try:
        held.wait(5)
        delivery = asyncio.ensure_future(syncer.run(store.deliver_steps(USER, b"Subject: late\n\nx\n")))
        await asyncio.wait_for(syncer.flush([state.root]), 5)       # not held up by the waiting delivery
        await asyncio.sleep(0.05)
        assert not delivery.done()
        release.set()
        message = await asyncio.wait_for(delivery, 5)
    finally:
        release.set()
        session.join(5)
        syncer.close()
    assert message.uid == 1 and inbox.read(1) == b"Subject: late\n\nx\n"


def test_deliveries_waiting_for_the_lock_are_filed_together_in_order(store, state, bus, monkeypatch):
    """Ten MDA deliveries arrive while an IMAP session holds the user's lock: the first to get it
    files all ten with one folder fsync and one index fsync; UIDs are unique, one MODSEQ, one event."""
    import threading

    from maillab.base import fsutil
    inbox = store.user(USER).folder("INBOX")
    fsyncs: list[str] = []
    real_fsync_path = fsutil.fsync_path
    monkeypatch.setattr(fsutil, "fsync_path", lambda p: (fsyncs.append(Path(p).name), real_fsync_path(p)))
    appends: list[int] = []
    real_append = inbox._list.append
    monkeypatch.setattr(inbox._list, "append",
                        lambda lines, sync=True: (appends.append(len(lines)), real_append(lines, sync)))
    sub = bus.subscribe()
    results: list = []
    waiting = threading.Barrier(11)

    def deliver(i: int) -> None:
        steps = inbox.add_steps(f"Subject: {i}\n\nbody {i}\n".encode(), None, None, "new", keep_unindexed=True)
        next(steps)                             # the tmp/ file, written
        waiting.wait()
        try:
            while True:                         # flushed: now file it (MAY_BLOCK, then blocks on the lock)
                steps.send(None)
        except StopIteration as stop:
            results.append(stop.value)

    with inbox.lock:                            # an IMAP session holds the lock meanwhile
        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        waiting.wait()
        deadline = time.monotonic() + 5
        while len(inbox._arrivals) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
    for t in threads:
        t.join(5)
    assert sorted(m.uid for m in results) == list(range(1, 11))
    assert len({m.modseq for m in results}) == 1
    assert fsyncs == ["new", UidList.FILENAME] and appends == [10]
    added = [e.uids for e in sub.drain() if isinstance(e, MessagesAdded)]
    assert added == [tuple(range(1, 11))]
    assert sorted(os.listdir(maildir(state) / "new")) == sorted(inbox.path_of(m.uid).name for m in results)
    assert os.listdir(maildir(state) / "tmp") == []
    reopened = MailStore(state).user(USER).folder("INBOX")     # a new lab process
    assert [reopened.read(u) for u in range(1, 11)] == [inbox.read(m.uid) for m in sorted(results, key=lambda m: m.uid)]


def test_claiming_recent_does_not_fsync_and_a_lost_record_is_recovered(state, bus, monkeypatch):
    """take_recent appends its rename records without fsync (\\Recent is session state); if a crash
    loses them, the next load finds the files in cur/ by their base names: same UIDs, nothing lost,
    the messages recent again."""
    store = MailStore(state, bus)
    for i in range(3):
        store.deliver(USER, f"Subject: {i}\n\nbody {i}\n".encode())
    inbox = store.user(USER).folder("INBOX")
    before = inbox._list.path.read_bytes()
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    assert inbox.take_recent() == {1, 2, 3}
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert fsyncs == []
    assert not os.listdir(maildir(state) / "new")
    inbox._list.path.write_bytes(before)                    # the crash: the unsynced records are lost
    again = MailStore(state, EventBus()).user(USER).folder("INBOX")
    assert [(m.uid, m.relpath[:4]) for m in again.messages()] == [(1, "cur/"), (2, "cur/"), (3, "cur/")]
    assert [again.read(m.uid) for m in again.messages()] == [f"Subject: {i}\n\nbody {i}\n".encode()
                                                            for i in range(3)]
    assert again.recent == 3                                # recent again: RFC 3501 allows it


def test_flag_changes_do_not_fsync_until_checkpoint_and_a_lost_one_reverts(state, bus, monkeypatch):
    """STORE renames and records without fsync (as Dovecot's fsync_mode=optimized); checkpoint()
    (CHECK, CLOSE) fsyncs cur/ and the uidlist once.  If a crash loses the rename and its record,
    the next load has the message with its old flags, same UID, same octets: only the flag is lost."""
    store = MailStore(state, bus)
    for i in range(3):
        store.deliver(USER, f"Subject: {i}\n\nbody {i}\n".encode())
    inbox = store.user(USER).folder("INBOX")
    inbox.take_recent()
    before_list, before_name = inbox._list.path.read_bytes(), inbox.path_of(2).name
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    result = inbox.store([1, 2], ["\\Seen"], "add")
    assert [m.uid for m in result.changed] == [1, 2] and fsyncs == []
    assert MailStore(state, EventBus()).user(USER).folder("INBOX").get(2).flags == {"\\Seen"}
    inbox.checkpoint()
    assert len(fsyncs) == 2                                 # cur/ and the uidlist
    inbox.checkpoint()
    assert len(fsyncs) == 2                                 # nothing new to make durable
    monkeypatch.setattr(os, "fsync", real_fsync)
    os.rename(inbox.path_of(2), maildir(state) / "cur" / before_name)     # the crash: rename lost,
    inbox._list.path.write_bytes(before_list)                               # and its record
    again = MailStore(state, EventBus()).user(USER).folder("INBOX")
    assert [(m.uid, m.flags) for m in again.messages()] == [(1, {"\\Seen"}), (2, frozenset()), (3, frozenset())]
    assert again.read(2) == b"Subject: 1\n\nbody 1\n"
