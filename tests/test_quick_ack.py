"""A command written in pieces is acknowledged at once (session_server.quick_ack), over real sockets.

A client that leaves Nagle's algorithm on and writes an APPEND as three writes (the line, the
literal, the closing CRLF) waits for the server's ACK of the literal before the CRLF leaves;
the kernel delays that ACK ~40 ms on a socket that answers every command.  The session layer
asks for the ACK at once whenever a read left a command unfinished and no reply went back (a
reply carries the ACK), and only then: a client that writes whole commands costs no extra
system call.  (The rate itself is a benchmark:
`python3 bench/imap.py --write`, "APPEND/s in pieces".)
"""

from __future__ import annotations

import asyncio

import pytest

from maillab.net import session_server

from conftest import async_wait_for

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

USER, PASSWORD = "mafudge@syr.edu", "maillab"
MESSAGE = b"From: santa@northpole.org\r\nSubject: pieces\r\n\r\n" + b"x" * 2000 + b"\r\n"


@pytest.fixture
def acks(monkeypatch):
    calls: list[object] = []
    real = session_server.quick_ack

    def counting(writer):
        calls.append(writer)
        real(writer)
    monkeypatch.setattr(session_server, "quick_ack", counting)
    return calls


async def _line(reader: asyncio.StreamReader, tag: bytes) -> bytes:
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if not line or line.startswith(tag):
            return line


async def test_a_command_left_unfinished_by_a_read_is_acknowledged_at_once(lab, acks):
    """Each piece is written only once the server has asked for the ACK of the previous one, so
    every read ends where a piece ends, whatever the kernel does."""
    folder = lab.ctx.store.user(USER).folder("INBOX")
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.ports.imap)
    try:
        await reader.readline()
        writer.write(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
        assert (await _line(reader, b"a ")).startswith(b"a OK")
        writer.write(b"n NOOP\r\n")
        assert (await _line(reader, b"n ")).startswith(b"n OK")
        assert acks == [], "whole commands asked for a quick ACK"
        writer.write(b"k CAPABILITY\r\n")                  # answered by the protocol itself, no event
        assert (await _line(reader, b"k ")).startswith(b"k OK")
        assert acks == [], "whole commands asked for a quick ACK"
        writer.write(f"b APPEND INBOX {{{len(MESSAGE)}}}\r\n".encode())
        assert (await reader.readline()).startswith(b"+")    # the continuation carries the ACK
        writer.write(MESSAGE)
        await async_wait_for(lambda: len(acks) == 1, what="a quick ACK for the literal without its CRLF")
        writer.write(b"\r\n")
        assert (await _line(reader, b"b ")).startswith(b"b OK")
        await async_wait_for(lambda: folder.exists == 1, what="the appended message in INBOX")
        writer.write(b"c LOGOUT\r\n")
        assert (await _line(reader, b"c ")).startswith(b"c OK")
        assert len(acks) == 1
    finally:
        writer.close()
