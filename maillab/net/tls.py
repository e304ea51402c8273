"""TLS for the lab's sockets: the SSLContexts of a server host and of a client trusting the lab
CA, and what a session's TLS turned out to be (files come from `lab/ca.py`).

    server_context(cert, key)   a host's server side: TLS 1.2 minimum, the ssl module's
                                defaults otherwise (ciphers, no compression, tickets)
    client_context(ca_file)     a client that trusts the lab CA (only): hostname checked,
                                TLS 1.2 minimum; for outbound SMTP between MTAs and tests
    TlsListener(ctx, accept, failed)  a listener for TLS on connect (2465, 1993, 1995): each
                                connection's handshake first, then `accept(reader, writer)`;
                                a failed one is told to `failed(ip, why)`
    await start_tls(writer, ctx)  the server side of a STARTTLS handshake on an accepted
                                connection: a new (reader, writer) pair;
                                the old reader, and any plaintext still buffered in it, is
                                dropped (RFC 3207 §4.2: nothing sent before TLS counts after)
    TlsInfo.of(ssl_object)      protocol, cipher and bits of an established session;
                                `.summary` ("TLSv1.3 with cipher X (256/256 bits)", Postfix's
                                words, used in Received and the maillog) and `.note`
                                ("TLS 1.3 X established", the transcript's line)

`HANDSHAKE_TIMEOUT` bounds every server handshake (a client that sends nothing, or garbage
instead of a ClientHello, is dropped, never left to hold a session).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HANDSHAKE_TIMEOUT = 10.0        # seconds for a client to finish its TLS handshake
STREAM_LIMIT = 2 ** 16          # asyncio's default StreamReader limit


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server side of a lab host's TLS, with its certificate chain and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(ca_file: Path) -> ssl.SSLContext:
    """A verifying client that trusts the lab CA and nothing else (the lab is its own Internet)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)      # CERT_REQUIRED, check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=ca_file)
    return ctx


class TlsListener:
    """A listener whose connections begin with a TLS handshake (RFC 8314's implicit TLS).

    Each handshake runs in a task of its own, bounded by HANDSHAKE_TIMEOUT; `accept(reader,
    writer)` then runs in that task (as asyncio.start_server's callback does), and a failed
    handshake is told to `failed(ip, why)` instead (the socket is closed).  The socket is
    accepted by hand and wrapped with `connect_accepted_socket`, which, unlike a server made
    with ssl=, says when and why a handshake fails."""

    def __init__(self, ctx: ssl.SSLContext, accept: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                             Awaitable[None]],
                 failed: Callable[[str, str], None]) -> None:
        self.ctx, self.accept, self.failed = ctx, accept, failed
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, backlog: int = 1024) -> None:
        sock = socket.create_server((host, port), backlog=backlog, reuse_port=False)
        sock.setblocking(False)
        self._sock = sock
        self._spawn(self._accepting(sock))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accepting(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(sock)
            except OSError:                 # EMFILE and the like: the admission gate's reserve is for this
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._handshake(conn, str(address[0])))

    async def _handshake(self, conn: socket.socket, ip: str) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, ssl=self.ctx,
                                                              ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, TimeoutError) as e:
            conn.close()
            self.failed(ip, handshake_error(e))
            return
        await self.accept(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    def close(self) -> None:
        """Stop listening and end every handshake and session begun here (cancelled)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for task in self._tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def handshake_error(e: BaseException) -> str:
    """Why a handshake failed, in a few words: "WRONG_VERSION_NUMBER", "timed out"."""
    if isinstance(e, TimeoutError):
        return "timed out"
    return getattr(e, "reason", None) or str(e) or type(e).__name__


async def start_tls(writer: asyncio.StreamWriter, ctx: ssl.SSLContext,
                    timeout: float = HANDSHAKE_TIMEOUT) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Run the server side of a TLS handshake on `writer`'s connection (at most `timeout`
    seconds); raises ssl.SSLError, ConnectionError/OSError or TimeoutError if it fails
    (the connection is then closed; `handshake_error` says why).  Reading should be paused
    (`transport.pause_reading()`) before the client may start its handshake, so that no byte
    of it goes to the old reader."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = await loop.start_tls(writer.transport, protocol, ctx, server_side=True,
                                     ssl_handshake_timeout=timeout)
    if transport is None:                   # the connection was closed during the handshake
        raise ConnectionResetError("closed during the TLS handshake")
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What an established TLS session is: "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256."""
    protocol: str
    cipher: str
    bits: int

    @classmethod
    def of(cls, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> "TlsInfo":
        name, _, bits = ssl_object.cipher() or ("?", "", 0)
        return cls(ssl_object.version() or "?", name, bits)

    @property
    def summary(self) -> str:
        """Postfix's words: "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"."""
        return f"{self.protocol} with cipher {self.cipher} ({self.bits}/{self.bits} bits)"

    @property
    def note(self) -> str:
        """The transcript's line: "TLS 1.3 TLS_AES_256_GCM_SHA384 established"."""
        return f"{self.protocol.replace('TLSv', 'TLS ')} {self.cipher} established"
