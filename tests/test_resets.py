"""A client that resets the connection is a normal disconnect (issue 13): no traceback on stderr,
no call of the loop's exception handler, no "internal error" in the maillog."""

from __future__ import annotations

import asyncio
import gc
import imaplib
import socket
import struct
import time

import pytest

from conftest import async_wait_for
from maillab.base.events import Notice, SessionClosed, SessionOpened

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

HOST = "127.0.0.1"
USER, PASSWORD = "mafudge@syr.edu", "maillab"
LINGER_0 = struct.pack("ii", 1, 0)       # close() sends RST


def connect_and_reset(port: int, count: int) -> None:
    """`count` connections, each reset 0-9 ms after it is made: in the PTR look-up before the banner,
    or as the banner goes out (the client's behaviour, not a wait of the test)."""
    for n in range(count):
        s = socket.create_connection((HOST, port), timeout=10)
        time.sleep(n % 10 / 1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        s.close()


def take(sub, opened: set[str], closed: dict[str, str], notices: list[str] | None = None) -> None:
    """Sort the subscription's new events: sessions opened, sessions closed (with why), notices."""
    for e in sub.drain():
        if isinstance(e, SessionOpened):
            opened.add(e.session)
        elif isinstance(e, SessionClosed):
            closed[e.session] = e.reason
        elif notices is not None and isinstance(e, Notice):
            notices.append(e.text)


async def settled(lab, sub, opened: set[str], closed: dict[str, str]) -> None:
    """Until every session opened so far has closed and no SMTP connection is left (10 s)."""
    def connections() -> int:
        return sum(server.sessions for m in lab.mtas.values() for server in m.servers)

    def done() -> bool:
        take(sub, opened, closed)
        return opened <= set(closed) and not connections()
    await async_wait_for(done, 10, what=lambda: f"every session to close: {len(opened - set(closed))} "
                                                f"never closed, {connections()} SMTP connections left")


async def test_resets_before_the_smtp_banner_are_quiet_disconnects(lab, capfd):
    """300 connections reset at once (six clients in parallel), most while the PTR look-up before
    the banner runs; the old code had 10-60 of them raise RuntimeError on the banner's write."""
    loop = asyncio.get_running_loop()
    handled: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: handled.append(context))
    sub = lab.bus.subscribe()
    await asyncio.gather(*(asyncio.to_thread(connect_and_reset, lab.ports.smtp, 50) for _ in range(6)))
    opened: set[str] = set()
    closed: dict[str, str] = {}
    await settled(lab, sub, opened, closed)
    gc.collect()                    # a task's unretrieved exception is reported when it is freed
    loop.set_exception_handler(None)
    assert handled == []
    err = capfd.readouterr().err
    assert "Traceback" not in err and "RuntimeError" not in err
    assert all(reason.startswith("lost: ") or reason == "closed" for reason in closed.values()), closed


async def test_a_reset_during_a_big_fetch_is_a_lost_connection_not_an_internal_error(lab, capfd):
    big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 1000           # 1 MB each

    def fill() -> None:
        m = imaplib.IMAP4(HOST, lab.ports.imap, timeout=10)
        m.login(USER, PASSWORD)
        for _ in range(12):
            m.append("INBOX", None, None, big)
        m.logout()
    await asyncio.to_thread(fill)
    sub = lab.bus.subscribe(kinds=(Notice, SessionOpened, SessionClosed))

    def fetch_and_reset() -> None:
        s = socket.create_connection((HOST, lab.ports.imap), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        s.recv(4096)
        s.sendall(f"a LOGIN {USER} {PASSWORD}\r\nb SELECT INBOX\r\nc FETCH 1:* BODY.PEEK[]\r\n".encode())
        got = 0
        while got < 3_000_000:          # well into the FETCH, then reset
            got += len(s.recv(65536))
        s.close()
    for _ in range(5):
        await asyncio.to_thread(fetch_and_reset)
    opened: set[str] = set()
    closed: dict[str, str] = {}
    notices: list[str] = []

    def all_closed() -> bool:
        take(sub, opened, closed, notices)
        return len(closed) >= 5
    await async_wait_for(all_closed, 20, what=lambda: f"the 5 sessions to close, {len(closed)} closed")
    assert opened == set(closed)
    assert not [n for n in notices if "Internal error" in n], notices
    assert all(reason.startswith("Connection lost: ") for reason in closed.values()), closed
    assert "Traceback" not in capfd.readouterr().err
