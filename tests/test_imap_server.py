"""IMAP against a running lab over loopback: imaplib, imapclient and raw sockets.

Mail arrives as it does for a student: over SMTP to smtp1.syr.edu, through the
queue and the MDA into the Maildir; then it is read over IMAP.  Blocking
clients run in threads, since the lab runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import smtplib
import socket
import time

import imapclient
import imapclient.imapclient
import pytest

from maillab.base.clock import Clock
from maillab.base.events import Notice, SessionClosed, SessionLine, SessionOpened
from maillab.imap.server import ImapServer
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab
from maillab.lab.world import load_world
from maillab.net.ports import Ports

from conftest import async_wait_for, free_offset
from netutil import free_port

# about the IMAP server, not TLS (tests/test_tls_servers.py): logins over plaintext, as the
# eavesdropping lesson's world allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

USER = "mafudge@syr.edu"
SYR = "127.0.0.1"                    # smtp1.syr.edu keeps syr.edu's mailboxes
BODY = b"From: santa@northpole.org\r\nTo: mafudge@syr.edu\r\nSubject: note %d\r\n\r\nHo ho ho, number %d.\r\n"


async def deliver(lab, count: int = 1, to: str = USER, start: int = 1) -> None:
    """Send `count` messages over SMTP, one at a time, so "note n" gets the n-th UID of the batch."""
    folder = lab.ctx.store.user(to).folder("INBOX")
    for i in range(start, start + count):
        before = folder.exists

        def send() -> None:
            with smtplib.SMTP(SYR, lab.ports.smtp, timeout=10) as s:
                s.sendmail("santa@northpole.org", [to], BODY % (i, i))
        await asyncio.to_thread(send)

        # the MDA indexes what it delivers; no refresh() here: on the loop it may fsync (test_imap_idle_sync)
        await async_wait_for(lambda: folder.exists > before, what=f"message {i} in the index")


def imap(lab, address: str = SYR) -> imaplib.IMAP4:
    return imaplib.IMAP4(address, lab.ports.imap, timeout=10)


def client(lab) -> imapclient.IMAPClient:
    c = imapclient.IMAPClient(SYR, port=lab.ports.imap, ssl=False, timeout=10)
    c.login(USER, "maillab")
    return c


async def test_imaplib_login_select_fetch_search_append(lab):
    await deliver(lab, 3)

    def session():
        m = imap(lab)
        out = {"welcome": m.welcome, "login": m.login(USER, "maillab"), "select": m.select("INBOX")}
        out["fetch"] = m.fetch("2", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)")
        out["body"] = m.fetch("3", "(BODY[TEXT])")
        out["search"] = m.search(None, "SUBJECT", '"note 2"')
        out["uid"] = m.uid("SEARCH", None, "SEEN")
        out["append"] = m.append("Sent", "(\\Seen)", None, b"Subject: sent by imaplib\r\n\r\nhello\r\n")
        out["list"] = m.list()
        out["status"] = m.status("Sent", "(MESSAGES UNSEEN)")
        out["logout"] = m.logout()
        return out

    out = await asyncio.to_thread(session)
    assert out["welcome"].startswith(b"* OK [CAPABILITY IMAP4rev1 ") and b"smtp1.syr.edu" in out["welcome"]
    assert out["login"][0] == "OK" and out["select"] == ("OK", [b"3"])
    (envelope, header), closing = out["fetch"][1]
    assert header == b"Subject: note 2\r\n\r\n" and b"FLAGS (\\Recent)" in envelope
    assert out["body"][1][0][1] == b"Ho ho ho, number 3.\r\n"
    assert out["search"] == ("OK", [b"2"])
    assert out["uid"] == ("OK", [b"3"])                      # BODY[TEXT] set \Seen on message 3
    assert out["append"][0] == "OK" and b"APPENDUID" in out["append"][1][0]
    assert b'(\\HasNoChildren \\Sent) "." "Sent"' in out["list"][1]
    assert out["status"] == ("OK", [b'"Sent" (MESSAGES 1 UNSEEN 0)'])
    assert out["logout"][0] == "BYE"


async def test_a_big_append_and_fetch_over_loopback(lab):
    data = b"Subject: big attachment\r\n\r\n" + (b"z" * 998 + b"\r\n") * 3000       # 3 MB

    def session():
        m = imap(lab)
        m.login(USER, "maillab")
        appended = m.append("INBOX", None, None, data)
        m.select("INBOX")
        fetched = m.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
        m.logout()
        return appended, fetched
    appended, fetched = await asyncio.to_thread(session)
    assert appended[0] == "OK"
    assert fetched[1][0][0].startswith(b"1 (RFC822.SIZE %d BODY[]" % len(data)) and fetched[1][0][1] == data


async def test_imapclient_sees_what_smtp_delivered(lab):
    await deliver(lab, 2)

    def session():
        c = client(lab)
        info = c.select_folder("INBOX")
        data = c.fetch(c.search("ALL"), ["ENVELOPE", "FLAGS", "BODYSTRUCTURE", "INTERNALDATE"])
        folders = c.list_folders()
        special = c.find_special_folder(imapclient.imapclient.SENT)
        c.add_flags([1], [imapclient.FLAGGED])
        flagged = c.search(["FLAGGED"])
        c.create_folder("Archive.2024")
        c.move([2], "Archive.2024")
        left = c.search("ALL")
        c.logout()
        return info, data, folders, special, flagged, left

    info, data, folders, special, flagged, left = await asyncio.to_thread(session)
    assert info[b"EXISTS"] == 2 and info[b"UIDNEXT"] == 3 and b"HIGHESTMODSEQ" in info
    assert [d[b"ENVELOPE"].subject for d in data.values()] == [b"note 1", b"note 2"]
    assert data[1][b"ENVELOPE"].from_[0].host == b"northpole.org"
    assert data[1][b"BODYSTRUCTURE"][0].lower() == b"text"
    assert special == "Sent" and any(name == "Trash" for _, _, name in folders)
    assert flagged == [1] and left == [1]


async def test_idle_sees_a_new_smtp_delivery(lab):
    await deliver(lab, 1)
    c = await asyncio.to_thread(client, lab)
    await asyncio.to_thread(c.select_folder, "INBOX")
    await asyncio.to_thread(c.idle)
    started = time.monotonic()
    await deliver(lab, 1, start=2)
    assert await asyncio.to_thread(idle_until, c, lambda r: r == (2, b"EXISTS"))
    assert time.monotonic() - started < 5
    await asyncio.to_thread(c.idle_done)
    await asyncio.to_thread(c.logout)


def idle_until(c: imapclient.IMAPClient, wanted, timeout: float = 5.0) -> tuple:
    """The first IDLE response that `wanted` accepts (others are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for response in c.idle_check(max(deadline - time.monotonic(), 0.01)):
            if wanted(response):
                return response
    raise AssertionError("no such IDLE response")


async def test_two_sessions_see_each_others_flags_and_expunges(lab):
    await deliver(lab, 3)
    a, b = await asyncio.gather(asyncio.to_thread(client, lab), asyncio.to_thread(client, lab))
    await asyncio.gather(asyncio.to_thread(a.select_folder, "INBOX"), asyncio.to_thread(b.select_folder, "INBOX"))
    await asyncio.to_thread(b.idle)

    await asyncio.to_thread(a.add_flags, [2], [b"\\Flagged"])
    seen = await asyncio.to_thread(idle_until, b, lambda r: r[:2] == (2, b"FETCH"))
    assert b"\\Flagged" in seen[2][seen[2].index(b"FLAGS") + 1]

    await asyncio.to_thread(a.delete_messages, [1])
    await asyncio.to_thread(a.expunge)
    assert await asyncio.to_thread(idle_until, b, lambda r: r == (1, b"EXPUNGE"))
    await asyncio.to_thread(b.idle_done)
    assert await asyncio.to_thread(b.search, "ALL") == [2, 3]      # imapclient speaks UIDs
    fetched = await asyncio.to_thread(b.fetch, [2], ["FLAGS"])
    assert b"\\Flagged" in fetched[2][b"FLAGS"]
    await asyncio.gather(asyncio.to_thread(a.logout), asyncio.to_thread(b.logout))


async def test_uids_are_unchanged_after_a_lab_restart(tmp_path):
    state, offset = StateDir(tmp_path / "state"), free_offset()

    async def run_lab() -> Lab:
        the_lab = Lab(world=dataclasses.replace(load_world(), auth_over_plaintext=True), state=state,
                      ports=Ports(offset), clock=Clock(), session_timeout=30)
        await the_lab.start()
        return the_lab

    def uids(lab: Lab) -> tuple[int, list[int], list[bytes]]:
        c = client(lab)
        info = c.select_folder("INBOX")
        found = c.search("ALL")
        data = c.fetch(found, ["ENVELOPE"])              # imapclient speaks UIDs: search and fetch by UID
        c.logout()
        return info[b"UIDVALIDITY"], found, [data[n][b"ENVELOPE"].subject for n in found]

    first = await run_lab()
    try:
        await deliver(first, 3)
        c = await asyncio.to_thread(client, first)
        await asyncio.to_thread(c.select_folder, "INBOX")
        await asyncio.to_thread(c.delete_messages, [1])
        await asyncio.to_thread(c.expunge)
        await asyncio.to_thread(c.logout)
        before = await asyncio.to_thread(uids, first)
    finally:
        await first.stop()
    second = await run_lab()
    try:
        after = await asyncio.to_thread(uids, second)
        await deliver(second, 1, start=4)
        newest = await asyncio.to_thread(uids, second)
    finally:
        await second.stop()
    assert before == after and after[1] == [2, 3]
    assert newest[1] == [2, 3, 4] and newest[0] == before[0]


async def test_bare_local_part_and_foreign_accounts(lab):
    def logins():
        out = []
        for user in ("mafudge", "santa@northpole.org", "mafudge@syr.edu"):
            m = imap(lab)
            try:
                out.append(m.login(user, "maillab")[0])
            except imaplib.IMAP4.error as e:
                out.append("refused" if "AUTHENTICATIONFAILED" in str(e) else str(e))
            m.logout()
        return out
    assert await asyncio.to_thread(logins) == ["OK", "refused", "OK"]
    # santa's mailbox lives on mail.northpole.org
    m = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.3", lab.ports.imap, 10)
    assert (await asyncio.to_thread(m.login, "santa", "maillab"))[0] == "OK"
    await asyncio.to_thread(m.logout)


async def test_session_events_transcript_and_maillog_notices(lab):
    sub = lab.bus.subscribe()

    def session():
        m = imap(lab)
        m.login(USER, "maillab")
        m.select("INBOX")
        m.append("INBOX", None, None, b"Subject: secret body\r\n\r\nthe body itself\r\n")
        m.logout()
    await asyncio.to_thread(session)
    await async_wait_for(lambda: any(isinstance(e, SessionClosed) for e in sub._items))
    events = sub.drain()
    opened = [e for e in events if isinstance(e, SessionOpened) and e.protocol == "imap"]
    assert len(opened) == 1 and opened[0].session.startswith("smtp1.syr.edu/imap/")
    lines = [(e.direction, e.text) for e in events if isinstance(e, SessionLine) and e.session == opened[0].session]
    assert any(d == "client" and t.endswith(f" LOGIN {USER} ***") for d, t in lines)
    assert any(t.startswith("{") and "bytes literal}" in t for _, t in lines)
    assert not any("the body itself" in t or "maillab" == t for _, t in lines)
    notices = [e.text for e in events if isinstance(e, Notice) and e.program in ("imap", "imap-login")]
    assert any(t.startswith(f"Login: user=<{USER}>, method=LOGIN, rip=127.0.0.1") for t in notices)
    assert any(t.startswith(f"Disconnected: Logged out user=<{USER}>") and "appended=1" in t for t in notices)
    assert [e for e in events if isinstance(e, SessionClosed) and e.session == opened[0].session][0].reason == \
        "Logged out"


async def _extra_server(lab, **kwargs) -> ImapServer:
    """A second IMAP server for smtp1.syr.edu on a free port of its own, with other limits."""
    changes = kwargs.pop("ctx", {})
    for _ in range(10):
        ctx = dataclasses.replace(lab.ctx, ports=Ports(free_port(SYR) - 1143), **changes)
        server = ImapServer(ctx, lab.world.hosts["smtp1.syr.edu"], ("syr.edu",), **kwargs)
        try:
            await server.start()
        except OSError:
            continue                    # taken between the check and the bind
        return server
    raise RuntimeError("no free port for a second IMAP server")


async def test_too_many_sessions_are_turned_away_and_the_others_live_on(lab):
    server = await _extra_server(lab, max_sessions=3)
    port = server.endpoints[0].port
    try:
        conns = []
        for _ in range(3):
            r, w = await asyncio.open_connection(SYR, port)
            assert (await r.readline()).startswith(b"* OK [CAPABILITY")
            conns.append((r, w))
        r, w = await asyncio.open_connection(SYR, port)
        assert await r.readline() == b"* BYE [UNAVAILABLE] Too many IMAP sessions on this host, try again later\r\n"
        assert await r.read() == b""
        r0, w0 = conns[0]
        w0.write(b"a NOOP\r\n")
        assert await r0.readline() == b"a OK NOOP completed\r\n"
        for _, w in conns:
            w.close()
    finally:
        await server.stop()


async def test_hundreds_of_silent_sessions_and_a_working_one(lab):
    socks = []
    try:
        for _ in range(300):
            s = socket.create_connection((SYR, lab.ports.imap), timeout=10)
            socks.append(s)
        socks[0].sendall(b"a LOGIN {100000000}\r\n")             # and one that announces too much
        m = await asyncio.to_thread(imap, lab)
        assert (await asyncio.to_thread(m.login, USER, "maillab"))[0] == "OK"
        await asyncio.to_thread(m.logout)
        got = await asyncio.to_thread(socks[0].recv, 4096)
        assert b"a BAD [TOOBIG]" in got
    finally:
        for s in socks:
            s.close()


async def test_autologout_and_stop_say_bye(lab):
    server = await _extra_server(lab, ctx={"session_timeout": 0.3}, autologout=0.5)
    port = server.endpoints[0].port
    try:
        r, w = await asyncio.open_connection(SYR, port)
        await r.readline()
        assert await asyncio.wait_for(r.readline(), 3) == b"* BYE Autologout; idle for too long\r\n"
        r, w = await asyncio.open_connection(SYR, port)
        await r.readline()
        started = time.monotonic()
        w.write(b"a LOGIN mafudge maillab\r\nb SELECT INBOX\r\nc IDLE\r\n")
        while (await asyncio.wait_for(r.readline(), 3)) != b"+ idling\r\n":
            pass
        assert await asyncio.wait_for(r.readline(), 3) == b"* BYE Autologout; idle for too long\r\n"
        assert time.monotonic() - started >= 0.5          # not before the autologout time after IDLE
        r, w = await asyncio.open_connection(SYR, port)
        await r.readline()
    finally:
        await server.stop()
    assert await asyncio.wait_for(r.readline(), 3) == b"* BYE Server shutting down\r\n"


async def test_a_client_that_never_finishes_a_literal_is_timed_out(lab):
    server = await _extra_server(lab, ctx={"session_timeout": 0.5}, autologout=0.5)
    port = server.endpoints[0].port
    try:
        r, w = await asyncio.open_connection(SYR, port)
        await r.readline()
        w.write(b"a LOGIN mafudge maillab\r\n")
        await r.readline()
        w.write(b"b APPEND INBOX {1000000}\r\n")
        assert await r.readline() == b"+ Ready for literal data\r\n"
        w.write(b"x" * 100_000)
        assert await asyncio.wait_for(r.readline(), 3) == b"* BYE Autologout; idle for too long\r\n"
    finally:
        await server.stop()
    assert lab.ctx.store.user(USER).folder("INBOX").exists == 0


@pytest.mark.parametrize("command", [b"a LOGIN mafudge maillab\r\nb SELECT INBOX\r\nc FETCH 1:* FLAGS\r\n"])
async def test_the_server_survives_a_client_that_vanishes_mid_command(lab, command):
    await deliver(lab, 2)
    s = socket.create_connection((SYR, lab.ports.imap), timeout=10)
    s.sendall(command)
    s.close()
    m = await asyncio.to_thread(imap, lab)
    assert (await asyncio.to_thread(m.login, USER, "maillab"))[0] == "OK"
    assert (await asyncio.to_thread(m.select, "INBOX"))[1] == [b"2"]
    await asyncio.to_thread(m.logout)
