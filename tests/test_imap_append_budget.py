"""APPEND literals of all sessions share one memory budget (maillab.imap.framing.APPEND_IN_FLIGHT).

Over real sockets: while one session is half-way through a big APPEND, another
session's APPEND that would go over the budget gets a tagged NO [LIMIT] before
it sends its message (no "+" for a synchronizing literal; a LITERAL+ one, RFC
7888, is read and dropped), and the session goes on working.  What the budget
holds never passes its limit, is the announced size of the literal being
collected, and is all given back, also when a client vanishes mid-literal.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from maillab.imap.framing import APPEND_IN_FLIGHT

from conftest import async_wait_for

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

SYR = "127.0.0.1"
LIMIT = 1_000_000
SIZE = 800_000


class Raw:
    """A blocking raw-socket IMAP client (run it in a thread)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((SYR, port), timeout=10)
        self.f = self.sock.makefile("rb")
        assert self.f.readline().startswith(b"* OK")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        line = self.f.readline()
        assert line, "connection closed"
        return line

    def tagged(self, tag: bytes) -> bytes:
        """Lines up to the tagged reply; returns that reply."""
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return line
            assert not line.startswith(b"+"), f"a continuation request before {tag!r}'s reply: {line!r}"

    def close(self) -> None:
        self.f.close()                      # (the socket's file descriptor stays open while its file does)
        self.sock.close()


def message(size: int) -> bytes:
    head = b"From: santa@northpole.org\r\nSubject: big\r\n\r\n"
    return head + b"x" * (size - len(head) - 2) + b"\r\n"


async def test_appends_over_the_budget_get_no_limit_before_the_literal(lab, monkeypatch):
    monkeypatch.setattr(APPEND_IN_FLIGHT, "limit", LIMIT)
    assert APPEND_IN_FLIGHT.held == 0
    port = lab.ports.imap
    a = await asyncio.to_thread(Raw, port)
    b = await asyncio.to_thread(Raw, port)
    for c in (a, b):
        c.send(b"L LOGIN mafudge maillab\r\n")
        assert (await asyncio.to_thread(c.tagged, b"L")).startswith(b"L OK")
    data = message(SIZE)

    # a: half of a big APPEND, then it stalls
    a.send(b"A1 APPEND INBOX {%d}\r\n" % SIZE)
    assert (await asyncio.to_thread(a.line)).startswith(b"+ ")
    a.send(data[:SIZE // 2])
    assert await async_wait_for(lambda: APPEND_IN_FLIGHT.held == SIZE)

    # b: a synchronizing APPEND over the budget: NO [LIMIT], never a "+"
    b.send(b"B1 APPEND INBOX {%d}\r\n" % SIZE)
    reply = await asyncio.to_thread(b.tagged, b"B1")
    assert reply.startswith(b"B1 NO [LIMIT]"), reply
    # b: a LITERAL+ one over the budget: NO [LIMIT]; its octets are dropped, the session lives on
    b.send(b"B2 APPEND INBOX {%d+}\r\n" % SIZE + data + b"\r\nB3 NOOP\r\n")
    reply = await asyncio.to_thread(b.tagged, b"B2")
    assert reply.startswith(b"B2 NO [LIMIT]"), reply
    assert (await asyncio.to_thread(b.tagged, b"B3")).startswith(b"B3 OK")
    assert APPEND_IN_FLIGHT.held == SIZE                  # b took nothing

    # a finishes: its APPEND is stored, its octets given back when it is answered
    a.send(data[SIZE // 2:] + b"\r\n")
    assert (await asyncio.to_thread(a.tagged, b"A1")).startswith(b"A1 OK [APPENDUID")
    a.send(b"A2 NOOP\r\n")
    assert (await asyncio.to_thread(a.tagged, b"A2")).startswith(b"A2 OK")
    assert await async_wait_for(lambda: APPEND_IN_FLIGHT.held == 0)

    # now b's APPEND fits
    b.send(b"B4 APPEND INBOX {%d}\r\n" % SIZE)
    assert (await asyncio.to_thread(b.line)).startswith(b"+ ")
    b.send(data + b"\r\n")
    assert (await asyncio.to_thread(b.tagged, b"B4")).startswith(b"B4 OK [APPENDUID")

    # a client that vanishes mid-literal gives its share back
    a.send(b"A3 APPEND INBOX {%d}\r\n" % SIZE)
    assert (await asyncio.to_thread(a.line)).startswith(b"+ ")
    a.send(data[:1000])
    assert await async_wait_for(lambda: APPEND_IN_FLIGHT.held == SIZE)
    a.close()
    assert await async_wait_for(lambda: APPEND_IN_FLIGHT.held == 0)
    b.close()
    assert lab.ctx.store.user("mafudge@syr.edu").folder("INBOX").exists == 2
