"""Cheap IMAP commands run on the event loop, big ones in a worker thread (maillab/imap/inline.py).

Over real sockets with imaplib against a running lab: each call of
`ImapConnection.execute` records the thread it ran in.  FETCH of a few
headers, SEARCH on flags, STORE of one flag and a NOOP whose look at the
Maildir is two stat() calls run in the loop's thread; a FETCH of many bodies,
a first SEARCH SUBJECT (no header cached yet), a NOOP that must list the
Maildir, and a cheap command while another thread holds the user's store lock
run in a worker thread, and the loop goes on serving another session meanwhile.
"""

from __future__ import annotations

import asyncio
import imaplib
import threading

import pytest

from maillab.imap import inline
from maillab.imap.protocol import Execute, ImapConnection
from maillab.lab.state import StateDir
from maillab.store import MailStore

from conftest import async_wait_for, wait_for
from imap_support import msg, session as imap_session

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

USER = "mafudge@syr.edu"


@pytest.fixture
def threads_of(monkeypatch):
    """The thread of every `execute` call, by command label: {label: [thread, ...]}."""
    seen: dict[str, list[threading.Thread]] = {}
    real = ImapConnection.execute

    def execute(self: ImapConnection) -> bool:
        assert self._job_cmd is not None
        seen.setdefault(self._job_cmd.label, []).append(threading.current_thread())
        return real(self)
    monkeypatch.setattr(ImapConnection, "execute", execute)
    return seen


def fill(lab, count: int) -> None:
    inbox = lab.ctx.store.user(USER).folder("INBOX")
    for i in range(count):
        inbox.append(f"From: santa@northpole.org\nSubject: note {i}\n\n{'x' * 20_000}\n".encode())


def session(lab) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", lab.ports.imap, timeout=10)
    c.login(USER, "maillab")
    c.select("INBOX")
    return c


async def test_cheap_commands_run_on_the_loop_and_big_ones_in_a_thread(lab, threads_of):
    fill(lab, inline.READ_MESSAGES + 10)
    loop_thread = threading.current_thread()

    def work() -> None:
        c = session(lab)
        assert c.fetch("1:10", "(FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")[0] == "OK"
        assert c.search(None, "UNSEEN") == ("OK", [" ".join(str(n) for n in range(1, 31)).encode()])
        assert c.store("3", "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert c.noop()[0] == "OK"                  # cur/ just changed: its look at the Maildir lists it
        inbox = lab.ctx.store.user(USER).folder("INBOX")
        wait_for(lambda: c.noop()[0] == "OK" and not inbox.scan_due(), what="a scan that trusts cur/'s mtime")
        assert c.noop()[0] == "OK"                  # two stat() calls: on the loop
        assert c.search(None, "SUBJECT", '"note 7"') == ("OK", [b"8"])     # reads 30 headers: a thread
        assert c.search(None, "SUBJECT", '"note 9"') == ("OK", [b"10"])    # cached now: the loop
        status, data = c.fetch("1:*", "(BODY.PEEK[])")                      # 30 x 20 KB: a thread
        assert status == "OK" and len([d for d in data if isinstance(d, tuple)]) == 30
        c.logout()
    await asyncio.to_thread(work)
    assert {label: {t is loop_thread for t in ts} for label, ts in threads_of.items()} == {
        "SELECT": {False}, "FETCH": {True, False}, "SEARCH": {True, False}, "STORE": {True}, "NOOP": {True, False}}
    assert threads_of["NOOP"][0] is not loop_thread and threads_of["NOOP"][-1] is loop_thread
    assert threads_of["FETCH"][0] is loop_thread and threads_of["FETCH"][-1] is not loop_thread
    assert [t is loop_thread for t in threads_of["SEARCH"]] == [True, False, True]


async def test_a_cheap_command_waits_for_the_store_lock_in_a_thread_not_on_the_loop(lab, threads_of):
    fill(lab, 3)
    lock = lab.ctx.store.user(USER).lock
    c = await asyncio.to_thread(session, lab)
    other = await asyncio.to_thread(session, lab)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(30)
    keeper = threading.Thread(target=holder)
    keeper.start()
    try:
        assert await asyncio.to_thread(held.wait, 10)
        store = asyncio.ensure_future(asyncio.to_thread(c.store, "1", "+FLAGS", "(\\Flagged)"))
        await async_wait_for(lambda: "STORE" in threads_of, what="the STORE to start")
        assert (await asyncio.to_thread(other.capability))[0] == "OK"  # the loop serves the others meanwhile
        assert not store.done()                                         # the STORE still waits for the lock
    finally:
        release.set()
        await asyncio.to_thread(keeper.join, 10)
    assert (await asyncio.wait_for(store, 10))[0] == "OK"
    assert threads_of["STORE"] == [threads_of["STORE"][0]] and threads_of["STORE"][0] is not threading.current_thread()
    await asyncio.to_thread(c.logout)
    await asyncio.to_thread(other.logout)


def test_what_counts_as_cheap(tmp_path):
    """The bounds of inline.py, as the protocol announces them in Execute.blocking (sans-IO)."""
    store = MailStore(StateDir(tmp_path / "state"))
    store.deliver(USER, msg("big", "x" * (inline.READ_OCTETS + 1)))
    for i in range(inline.INDEX_MESSAGES):
        store.deliver(USER, msg(f"m{i}"))
    c = imap_session(store)

    def blocking(line: str) -> bool:
        c.ok(line)
        event = c.events[-1]
        assert isinstance(event, Execute)
        return event.blocking
    assert not blocking(f"f1 FETCH 1:{inline.INDEX_MESSAGES} (FLAGS UID RFC822.SIZE)")
    assert blocking("f2 FETCH 1:* (FLAGS)")                                       # 501 messages
    assert not blocking(f"f3 FETCH 2:{inline.READ_MESSAGES + 1} (BODY.PEEK[HEADER])")
    assert blocking(f"f4 FETCH 2:{inline.READ_MESSAGES + 2} (BODY.PEEK[HEADER])")
    assert not blocking("f5 FETCH 2 (BODY.PEEK[])") and blocking("f6 FETCH 1 (BODY.PEEK[])")  # 256 KiB
    assert not blocking("s1 SEARCH UNSEEN LARGER 100")
    assert blocking("s2 SEARCH SUBJECT m7") and not blocking("s3 SEARCH SUBJECT m8")  # cached by s2
    assert blocking("s4 SEARCH BODY line")
    assert not blocking(f"t1 STORE 1:{inline.STORE_MESSAGES} +FLAGS (\\Flagged)")
    assert blocking(f"t2 STORE 1:{inline.STORE_MESSAGES + 1} -FLAGS (\\Flagged)")
