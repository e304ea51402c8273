"""What the SMTP, IMAP and POP3 servers share: the listener, the set of live sessions, transcript flushing.

`SessionServer` listens on the host's own address, runs one task per
connection (turning clients away with `busy_reply` past `max_sessions`), and
on `stop()` cancels every session task and waits for it, so each session
ends through its own clean-up.

Every connection first passes `ctx.admission.limits` (per client address, per
service, the descriptor reserve); one refused gets `client_busy_reply` or
`busy_reply` and a maillog warning.  `login_timeout()` is the idle time
allowed before login: the session timeout, but at most the limits'
`preauth_timeout`.

`run` is the session loop both protocols share: greet, then answer the sans-IO
connection's events — NEED_DATA by flushing and `receive`, StartTls by flushing
the go-ahead and handshaking (`start_tls`), a SASL exchange's ScramLookup with
the directory's keys (`conn.scram_credentials`), Closed with a last flush, the
protocol's own events through `handle` — and end however it ends (timeout,
lost connection, `stop()`, a bug of ours) with the transcript published, the
`ended` clean-up, a `WireTotals` and one `SessionClosed`.  What crosses the
wire is counted (`net/wiretap.py`): the plaintext (its first `wiretap.KEEP`
octets published as `WireData`, for the TUI's eavesdropper view), then the
octets inside TLS.  A session is a `Session` (its
id, peer, streams, end reason, TLS, wire tap and sans-IO `conn`, which offers `greet()`,
`next_event()`, `receive_data()`, `abort()`, `transcript()`, `data_to_send()`,
`tls_started()` and `tls_active`), with the protocol's own state added by a
subclass.  Subclasses of `SessionServer` set `service` (the endpoint's and the
protocol's name), `tls_service` (the name of its TLS-on-connect endpoint, if
it has one) and `REASONS`, and fill in `port`, `tls_port`, `new_session`,
`receive`, `handle`, `idle`, `writable`, `closing` and `ended`;
`started`/`stopping` are hooks too.

TLS (`net/tls.py`, with the host's context from `ctx.server_tls`): STARTTLS
(or STLS) hands the handshake a new reader, so neither the protocol's buffer
(its `tls_started()` empties it) nor the stream's keeps a byte the client sent
in plaintext (RFC 3207 §4.2, CVE-2011-0411); TLS on connect (RFC 8314: 2465,
1993, 1995) handshakes before the greeting.  A handshake that fails (garbage
instead of a ClientHello, a TLS 1.1 client, silence past HANDSHAKE_TIMEOUT)
closes the connection with a maillog line; one that succeeds is a note in the
transcript, a `TlsEstablished` event and a maillog line in Postfix's words.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import socket
import ssl
from collections import defaultdict
from typing import Any, Generic, Iterator, Protocol, TypeVar

from ..base.clock import Clock
from ..base.events import (EventBus, Notice, SessionClosed, SessionLine, SessionOpened, TlsEstablished, WireData,
                           WireTotals)
from ..base.sansio import NEED_DATA, PAUSED, Authenticate, Closed, StartTls
from ..base.sasl import ScramLookup
from ..lab.directory import Account, Directory
from ..lab.world import Host, World
from ..smtp.transcript import printable
from .admission import Admission
from .authguard import AuthGuard, penalise
from .ports import Endpoint
from .tls import TlsInfo, TlsListener, handshake_error, start_tls
from .wiretap import Side, WireTap

READ_CHUNK = 64 * 1024         # read at most this past what the protocol has taken: memory stays bounded
_numbers: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))   # per service


def quick_ack(writer: asyncio.StreamWriter) -> None:
    """Acknowledge what was read at once (Linux TCP_QUICKACK), not after the delayed-ACK timer.

    A client that leaves Nagle's algorithm on and writes one command in pieces (an APPEND
    line, its literal, the closing CRLF) holds each small piece until the last is ACKed;
    a server that answers every command keeps its socket in the kernel's interactive
    ("pingpong") mode, so that ACK waits ~40 ms for a reply that is not coming: 20 APPEND/s.
    Called when a read left a command unfinished and no reply went back (a reply carries
    the ACK): the ACK goes out now and the next piece follows."""
    sock = writer.get_extra_info("socket")
    if sock is not None and hasattr(socket, "TCP_QUICKACK"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class ServerContext(Protocol):
    """What every server of the lab needs of it (the supervisor's LabContext is one): the event
    bus and clock, the admission gate and limits, failed-login penalties, the directory of
    users, the session timeout, the world's settings and each host's TLS context."""
    world: World
    server_tls: dict[str, ssl.SSLContext]
    bus: EventBus
    clock: Clock
    admission: Admission
    auth_guard: AuthGuard
    directory: Directory
    session_timeout: float


class Session:
    """One connection as `SessionServer.run` sees it: "host/service/n", the peer, the streams,
    the sans-IO connection, when it was accepted (its SessionOpened says that time, however long
    the server took before the banner: a PTR look-up, the admission gate), and why it ended
    (the server's REASONS["closed"] until told otherwise)."""

    def __init__(self, server: "SessionServer[Any]", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, conn: Any) -> None:
        self.reader, self.writer = reader, writer
        self.id = f"{server.host.name}/{server.service}/{next(_numbers[server.service])}"
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer_ip, self.peer_port = str(peer[0]), peer[1]
        self.local_ip = str((writer.get_extra_info("sockname") or ("?", 0))[0])
        self.conn = conn
        self.accepted = server.ctx.clock.now()
        self.reason = server.REASONS["closed"]
        self.client_name: str | None = None         # the peer's PTR name, where the server looks it up
        self.implicit_tls = False                   # came in on the TLS-on-connect port
        self.tls: TlsInfo | None = None             # once the handshake is done
        self.wire = WireTap()                       # what an eavesdropper sees of it


S = TypeVar("S", bound=Session)


class SessionServer(Generic[S]):
    service = ""
    busy_reply = b""            # past the service's limit (or the descriptor reserve)
    client_busy_reply = b""     # past the per-client limit (ConnectionLimits.per_client)
    tls_service = ""            # the TLS-on-connect endpoint's name ("imaps"), if tls_port() has one
    local_is_secure = False     # a client on the server's own address may log in before TLS (Dovecot)
    program = ""                # the maillog's program for the server's notices ("" = service)
    # How a session's end is told (SessionClosed, maillog) and the last line stop() sends:
    # keys "closed" (a clean end), "send timeout", "lost" (with {error}), "stopped",
    # "stopped line", "bug line".
    REASONS: dict[str, str] = {}

    def __init__(self, ctx: ServerContext, host: Host, domains: tuple[str, ...], max_sessions: int) -> None:
        self.ctx = ctx
        self.host = host
        self.domains = tuple(d.lower() for d in domains)
        self.max_sessions = max_sessions
        self.endpoints: list[Endpoint] = []
        self._server: asyncio.Server | None = None
        self._tls_server: TlsListener | None = None         # TLS on connect
        self._sessions: dict[asyncio.Task[None], S] = {}

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def port(self) -> int:
        raise NotImplementedError

    def tls_port(self) -> int | None:
        """The port of the service with TLS on connect (RFC 8314), if it has one."""
        return None

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        """This host's server TLS context (None: no TLS: STARTTLS not offered, no TLS port)."""
        return self.ctx.server_tls.get(self.host.name)

    def plaintext_auth(self, s: Session) -> bool:
        """Whether the client of `s` may log in before TLS: the world's auth_over_plaintext says
        so, or the server counts a client on its own address as secure (`local_is_secure`:
        Dovecot's disable_plaintext_auth exempts a connection whose local and remote IP are
        the same, as no wire between two machines carries it; Postfix's smtpd_tls_auth_only
        has no such exemption)."""
        return self.ctx.world.auth_over_plaintext or (self.local_is_secure and s.peer_ip == s.local_ip)

    def login_timeout(self) -> float:
        """How long a client that has not logged in may stay idle."""
        return min(self.ctx.session_timeout, self.ctx.admission.limits.preauth_timeout)

    def new_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> S:
        raise NotImplementedError

    async def receive(self, s: Any) -> bytes | None:
        """The client's next bytes (b"" at EOF), or None after telling `conn` of a timeout."""
        raise NotImplementedError

    async def read_chunk(self, s: Any, limit: float) -> bytes | None:
        """At most READ_CHUNK of the client's bytes (b"" at EOF), or None once `limit` seconds
        passed without any (`conn.timed_out()` has been told)."""
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel (stop())
            async with asyncio.timeout(limit):
                return await s.reader.read(READ_CHUNK)
        except TimeoutError:
            s.conn.timed_out()
            return None

    async def handle(self, s: Any, event: object) -> None:
        """Answer one of the protocol's own events (not StartTls, not Closed)."""
        raise NotImplementedError

    def idle(self, s: Any) -> bool:
        """Between commands: a last line from `stop()` would not cut a reply in two."""
        raise NotImplementedError

    def writable(self, s: Any) -> bool:
        """No worker thread is using `s.conn` right now."""
        return True

    def protocol(self, s: Any) -> str:
        """What the session speaks, as its SessionOpened says: the service, or the name of its
        TLS-on-connect endpoint ("imaps": the explain mode knows the wire carried ciphertext)."""
        return self.tls_service if s.implicit_tls else self.service

    def opened(self, s: Any) -> SessionOpened:
        """The event that opens the session's transcript."""
        return SessionOpened(s.accepted, s.id, self.protocol(s), self.host.name, f"{s.peer_ip}:{s.peer_port}")

    def closing(self, s: Any) -> None:
        """The protocol said Closed: what to do before its last reply goes out."""

    def ended(self, s: Any) -> None:
        """The session is over, however it ended: release what it holds."""

    async def run(self, s: Any) -> None:
        self.ctx.bus.publish(self.opened(s))
        conn = s.conn
        try:
            if s.implicit_tls:
                conn.tls_active = True
                self._tls_up(s)
            conn.greet()
            partial = False             # the last bytes read made no event: a command in pieces?
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    if not await self.flush(s) and partial:     # a reply carries the ACK, else ask for it
                        quick_ack(s.writer)
                    data = await self.receive(s)
                    if data is not None:
                        self._tapped(s, "client", data)
                        conn.receive_data(data)
                        partial = bool(data)
                    continue
                partial = False
                if isinstance(event, StartTls):     # the go-ahead goes out in plaintext, then the handshake
                    s.writer.transport.pause_reading()      # what comes next is for the handshake alone
                    await self.flush(s)
                    if not await self.start_tls(s):
                        return
                    conn.tls_started()
                elif isinstance(event, ScramLookup):
                    conn.scram_credentials(self.ctx.directory.scram_credentials(event.login, self.domains))
                elif isinstance(event, Closed):
                    s.reason = event.reason
                    self.closing(s)
                    await self.flush(s)
                    return
                elif event is PAUSED:                 # every event is answered before looping
                    raise AssertionError(f"{self.service} protocol paused with no event in hand")
                else:
                    await self.handle(s, event)
        except TimeoutError:
            s.reason = self.REASONS["send timeout"]
        except (ConnectionError, OSError) as e:
            s.reason = self.REASONS["lost"].format(error=e)
        except asyncio.CancelledError:
            s.reason = self.REASONS["stopped"]
            if self.idle(s):
                self._last_words(s, "server stopped", self.REASONS["stopped line"])
            raise
        except Exception as e:                         # our bug: this session ends, the server lives on
            s.reason = f"Internal error: {type(e).__name__}: {e}"
            self.notice(self.service, f"Error: {s.reason} ({s.id})")
            if self.writable(s):
                self._last_words(s, "internal error", self.REASONS["bug line"])
        finally:
            if self.writable(s):
                self.publish_transcript(s)
            self.ended(s)
            with contextlib.suppress(Exception):
                s.writer.close()
            now, wire = self.ctx.clock.now(), s.wire
            self.ctx.bus.publish(WireTotals(now, s.id, self.host.name, wire.plain["client"], wire.plain["server"],
                                            wire.tls["client"], wire.tls["server"]))
            self.ctx.bus.publish(SessionClosed(now, s.id, self.host.name, s.reason))

    @staticmethod
    def _last_words(s: Any, reason: str, line: str) -> None:
        with contextlib.suppress(Exception):
            s.conn.abort(reason, line)
            s.writer.write(s.conn.data_to_send())

    async def start_tls(self, s: Any) -> bool:
        """The TLS handshake on `s`'s connection: True once it is up (the session's streams are
        the TLS ones); False, with the session's end reason and a maillog line, if it failed."""
        assert self.tls_context is not None
        try:
            s.reader, s.writer = await start_tls(s.writer, self.tls_context)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as e:
            s.reason = f"TLS handshake failed: {handshake_error(e)}"
            self._tls_failed(self.client_label(s), handshake_error(e), f" ({s.id})")
            return False
        self._tls_up(s)
        return True

    def _tls_failed(self, client: str, why: str, where: str = "") -> None:
        self.notice(self.program or self.service, f"SSL_accept error from {client}: {why}{where}")

    def _tls_up(self, s: Any) -> None:
        """Say what the session's TLS is: a transcript note, TlsEstablished, the maillog."""
        s.tls = info = TlsInfo.of(s.writer.get_extra_info("ssl_object"))
        s.wire.tls_up()
        now, bus = self.ctx.clock.now(), self.ctx.bus
        bus.publish(SessionLine(now, s.id, self.host.name, "note", f"({info.note})"))
        bus.publish(TlsEstablished(now, s.id, self.host.name, info.protocol, info.cipher, info.bits,
                                   s.implicit_tls))
        self.notice(self.program or self.service,
                    f"Anonymous TLS connection established from {self.client_label(s)}: {info.summary} ({s.id})")

    def client_label(self, s: Any) -> str:
        """The client as the maillog names it: "name[ip]" (Postfix's words)."""
        return f"{s.client_name or 'unknown'}[{s.peer_ip}]"

    async def started(self) -> None:
        """After the listener is up."""

    async def stopping(self) -> None:
        """After every session has ended, before the listener is gone."""

    async def start(self) -> None:
        port = self.port()
        self._server = await asyncio.start_server(self._accept, self.host.address, port,
                                                  reuse_address=True, backlog=1024)
        self.endpoints = [Endpoint(self.service, self.host.name, self.host.address, port)]
        tls_port = self.tls_port()
        if tls_port is not None and self.tls_context is not None:
            self._tls_server = TlsListener(self.tls_context, functools.partial(self._accept, implicit_tls=True),
                                           lambda ip, why: self._tls_failed(f"unknown[{ip}]", why))
            await self._tls_server.start(self.host.address, tls_port)
            self.endpoints.append(Endpoint(self.tls_service, self.host.name, self.host.address, tls_port))
        await self.started()

    async def stop(self) -> None:
        listeners = [server for server in (self._server, self._tls_server) if server is not None]
        for server in listeners:
            server.close()
        tasks = list(self._sessions)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.stopping()
        for server in listeners:
            await server.wait_closed()
        self._server = self._tls_server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      implicit_tls: bool = False) -> None:
        limits, host = self.ctx.admission.limits, self.host.name
        ip = str((writer.get_extra_info("peername") or ("?",))[0])
        refusal = limits.admit(host, self.service, ip, self.max_sessions)
        if refusal is not None:
            self.notice(self.program or self.service, limits.warning(refusal, self.service, ip))
            with contextlib.suppress(OSError, RuntimeError):      # RuntimeError: uvloop, already reset
                writer.write(self.client_busy_reply if refusal == "client" else self.busy_reply)
                writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        session = self._sessions[task] = self.new_session(reader, writer)
        session.implicit_tls = implicit_tls
        try:
            await self.run(session)
        except asyncio.CancelledError:
            pass        # stop() cancelled us; asyncio's stream callback would log a cancelled task as an error
        finally:
            del self._sessions[task]
            limits.leave(host, self.service, ip)
            if session.reader.exception() is not None:
                # reset: the stream's close future holds the error too, and if the garbage
                # collector frees it before its protocol it is logged as "Future exception was
                # never retrieved"; it is done, so this await takes it at once
                with contextlib.suppress(Exception):
                    await session.writer.wait_closed()

    def _tapped(self, s: Any, side: Side, data: bytes) -> None:
        """Count what crossed the wire; publish what an eavesdropper read of it (plaintext)."""
        kept = s.wire.seen(side, data)
        if kept:
            self.ctx.bus.publish(WireData(self.ctx.clock.now(), s.id, self.host.name, side, kept))

    def publish_transcript(self, s: Any) -> None:
        now, bus, host = self.ctx.clock.now(), self.ctx.bus, self.host.name
        for direction, text in s.conn.transcript():
            bus.publish(SessionLine(now, s.id, host, direction, text))

    async def check_login(self, s: Any, ev: Authenticate, program: str) -> Account | None:
        """The account `ev` names if its password is right (or SCRAM proved it) and it lives in
        one of this host's domains; else None, with the failure in the maillog (Dovecot's
        words), once the client address's auth penalty (`authguard`) has been waited."""
        directory = self.ctx.directory
        if ev.password is None:             # SCRAM: the exchange checked the proof against the keys
            account = directory.account(ev.proven) if ev.proven else None
            account = account if account is not None and account.enabled else None     # disabled since
        else:
            account = await asyncio.to_thread(directory.authenticate, ev.login, ev.password, self.domains)
        if account is not None and account.domain in self.domains:
            self.ctx.auth_guard.succeeded(s.peer_ip)
            return account
        self.notice(program, self.login_failed_text(s, ev))
        if ev.password is None and directory.scram_missing(ev.login, self.domains):
            self.notice(program, f"{ev.mechanism} keys of <{printable(ev.login.encode(), 80)}> are not stored "
                                 f"yet: they are made at its next PLAIN or LOGIN login ({s.id})")
        await penalise(self.ctx.auth_guard, self.ctx.bus, self.ctx.clock, self.host.name, program, s.peer_ip, s.id)
        return None

    def login_failed_text(self, s: Any, ev: Authenticate) -> str:
        """The maillog line of a failed login (Dovecot's words)."""
        shown = printable(ev.login.encode("utf-8", "replace"), 80)
        return (f"Login failed: user=<{shown}>, method={ev.mechanism}, rip={s.peer_ip}, "
                f"lip={self.host.address}, reason=bad login or password ({s.id})")

    def notice(self, program: str, text: str) -> None:
        self.ctx.bus.publish(Notice(self.ctx.clock.now(), self.host.name, program, text))

    async def flush(self, s: Any) -> bool:
        """Transcript lines to the bus, reply bytes to the client (bounded by the session timeout);
        whether there were any."""
        self.publish_transcript(s)
        data = s.conn.data_to_send()
        if not data:
            return False
        if s.writer.transport.is_closing():         # the client reset: uvloop's write would raise RuntimeError
            raise ConnectionResetError("reset by peer")
        self._tapped(s, "server", data)
        s.writer.write(data)
        if s.writer.transport.get_write_buffer_size():         # the kernel took it all: nothing to wait for
            async with asyncio.timeout(self.ctx.session_timeout):
                await s.writer.drain()
        return True
