"""The IMAP server of a mailbox host: `ImapConnection` on asyncio streams, the directory and the store.

`ImapServer` listens on the host's own address, port `ctx.ports.imap` (1143
by default, STARTTLS) and `ctx.ports.imaps` (1993, TLS on connect), and runs
one task per connection.  The adapter owns only I/O
and time: reading (one 64 KiB chunk at a time, and only when the protocol
says NEED_DATA, so memory stays bounded), writing with back-pressure, the
timers, and answering the protocol's events:

    Authenticate -> Directory.authenticate in a worker thread (a bare local
                    part is tried in the host's `domains`; accounts of other
                    domains are refused; SCRAM's carries the proven account:
                    check_login), then MailStore.user
    Execute      -> conn.execute(), sending each chunk it produces: on the loop
                    when the command is cheap (inline.py) and the user's store
                    lock is free at once (held for that call, so the loop never
                    waits on it), else in a worker thread
    StartTls     -> the handshake (`SessionServer.start_tls`), then conn.tls_started()

IDLE (RFC 2177): one bus subscription per server takes the store's change
events and wakes the idling sessions of that user, which then ask the
protocol for their updates (`idle_poll`); every `IDLE_REFRESH` seconds an
idling session also looks at its Maildir for changes other programs made.

Timers: `login_timeout()` (ctx.session_timeout, at most
ctx.admission.limits.preauth_timeout) before login, the autologout
(RFC 3501 §5.4: at least 30 minutes) after it.  At most `max_sessions`
connections per host; more get `* BYE [UNAVAILABLE]` and are closed.

Every line of the dialogue becomes a `SessionLine` (protocol "imap") between
one `SessionOpened` and one `SessionClosed`; logins and logouts also go to
the maillog as `Notice`s in Dovecot's shape (programs imap-login and imap).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from ..base.events import FlagsChanged, MailboxDeleted, MailboxRenamed, MessagesAdded, MessagesExpunged
from ..lab.world import Host
from ..net.ports import Ports
from ..net.session_server import ServerContext, Session, SessionServer
from ..store import MailStore, StoreError
from .protocol import Authenticate, Execute, ImapConnection, State

READ_CHUNK = 64 * 1024
MAX_SESSIONS = 1000             # per host
AUTOLOGOUT = 30 * 60.0          # RFC 3501 §5.4: at least 30 minutes once authenticated
IDLE_REFRESH = 2.0              # seconds between looks at the Maildir while idling

_STORE_EVENTS = (MessagesAdded, FlagsChanged, MessagesExpunged, MailboxDeleted, MailboxRenamed)
class _Session(Session):
    conn: ImapConnection

    def __init__(self, server: "ImapServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(server, reader, writer, None)
        self.conn = ImapConnection(server.host.name, tls_available=server.tls_context is not None,
                                   plaintext_auth=server.plaintext_auth(self))
        self.wake = asyncio.Event()                 # the store changed something of this user
        self.read_task: asyncio.Future[bytes] | None = None
        self.waiting_input = False                  # between commands: safe to say BYE
        self.in_thread = False                      # conn is being used by a worker thread


class ImapContext(ServerContext, Protocol):
    """What the IMAP server needs of the lab beyond every server's: its ports and the mail store."""
    ports: Ports
    store: MailStore


class ImapServer(SessionServer[_Session]):
    ctx: ImapContext
    """IMAP4rev1 for the mailboxes of `domains`, kept on `host` (RFC 3501)."""

    service = "imap"
    tls_service = "imaps"
    local_is_secure = True      # Dovecot: a client on the server's own address logs in before TLS
    REASONS = {"closed": "Connection closed", "send timeout": "Timeout while sending",
               "lost": "Connection lost: {error}",
               "stopped": "Server shutting down", "stopped line": "Server shutting down",
               "bug line": "[SERVERBUG] Internal error, closing the connection"}
    busy_reply = b"* BYE [UNAVAILABLE] Too many IMAP sessions on this host, try again later\r\n"
    client_busy_reply = b"* BYE Too many connections from IP\r\n"

    def __init__(self, ctx: ImapContext, host: Host, domains: tuple[str, ...], *,
                 max_sessions: int = MAX_SESSIONS, autologout: float | None = None) -> None:
        super().__init__(ctx, host, domains, max_sessions)
        self.autologout = autologout if autologout is not None else max(AUTOLOGOUT, ctx.session_timeout)
        self._by_user: dict[str, set[_Session]] = {}
        self._dispatcher: asyncio.Task[None] | None = None

    def port(self) -> int:
        return self.ctx.ports.imap

    def tls_port(self) -> int:
        return self.ctx.ports.imaps

    def new_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Session:
        return _Session(self, reader, writer)

    async def started(self) -> None:
        self._dispatcher = asyncio.ensure_future(self._dispatch())

    async def stopping(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None

    async def _dispatch(self) -> None:
        """Wake the sessions of the user whose mail changed (IDLE answers at once)."""
        by_user = self._by_user
        sub = self.ctx.bus.subscribe(maxlen=10_000, kinds=_STORE_EVENTS,
                                     accept=lambda e: e.user in by_user)  # type: ignore[attr-defined]
        try:
            while True:
                for event in await sub.next_batch():
                    for s in by_user.get(event.user, ()):     # type: ignore[attr-defined]
                        s.wake.set()
        finally:
            sub.close()

    # ---- one connection --------------------------------------------------------------------

    async def handle(self, s: _Session, event: object) -> None:
        if isinstance(event, Execute):
            await self._execute(s, event)
        elif isinstance(event, Authenticate):
            await self._login(s, event)

    def idle(self, s: _Session) -> bool:
        return s.waiting_input and not s.in_thread

    def writable(self, s: _Session) -> bool:
        return not s.in_thread

    def ended(self, s: _Session) -> None:
        if s.read_task is not None:
            s.read_task.cancel()
        s.conn.framer.release()             # however it ended: its APPEND literal holds no budget
        self._logout(s)

    async def receive(self, s: _Session) -> bytes | None:
        """The next chunk from the client (b"" at EOF); None when the session timed out.

        While the session idles, store events and the refresh timer are served too."""
        conn = s.conn
        loop = asyncio.get_running_loop()
        limit = self.login_timeout() if conn.state is State.NOT_AUTHENTICATED else self.autologout
        deadline = loop.time() + limit
        s.waiting_input = True              # (stays True if cancelled while waiting: stop() says BYE)
        if s.read_task is None and not conn.idling:     # the everyday case: one read, no task made for it
            try:
                async with asyncio.timeout(limit):
                    data = await s.reader.read(READ_CHUNK)
            except TimeoutError:
                data = None
                conn.timed_out()
            s.waiting_input = False
            return data
        while True:
            if s.read_task is None:
                s.read_task = asyncio.ensure_future(s.reader.read(READ_CHUNK))
            remaining = deadline - loop.time()
            if remaining <= 0:
                s.waiting_input = False
                conn.timed_out()
                return None
            if not conn.idling:
                await asyncio.wait({s.read_task}, timeout=remaining)
            else:
                wake = asyncio.ensure_future(s.wake.wait())
                try:
                    await asyncio.wait({s.read_task, wake}, timeout=min(remaining, IDLE_REFRESH),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    wake.cancel()
                if not s.read_task.done():
                    if not s.wake.is_set():
                        await self._refresh(s)
                    s.wake.clear()
                    conn.idle_poll()
                    await self.flush(s)
                    continue
            if s.read_task.done():
                s.waiting_input = False
                task, s.read_task = s.read_task, None
                return task.result()

    async def _refresh(self, s: _Session) -> None:
        """Look for changes other programs made in the idling session's mailbox."""
        view = s.conn.view
        if view is not None and not view.folder.closed:
            s.in_thread = True
            try:
                await asyncio.to_thread(view.folder.refresh)
            except (StoreError, OSError):
                pass                    # the mailbox went away: idle_poll reports it
            finally:
                s.in_thread = False

    async def _execute(self, s: _Session, event: Execute) -> None:
        conn = s.conn
        lock = conn.user.lock if conn.user is not None else None
        while True:
            if not event.blocking and (lock is None or lock.acquire(blocking=False)):
                try:                        # cheap (inline.py) and nobody holds the store: on the loop
                    more = conn.execute()
                finally:
                    if lock is not None:
                        lock.release()
            else:
                s.in_thread = True
                try:
                    more = await asyncio.to_thread(conn.execute)
                finally:
                    s.in_thread = False
            if not more:
                return
            await self.flush(s)

    # ---- logins --------------------------------------------------------------------------------

    async def _login(self, s: _Session, ev: Authenticate) -> None:
        account = await self.check_login(s, ev, "imap-login")
        if account is None:
            s.conn.login_failed()
            return
        try:
            user = await asyncio.to_thread(self.ctx.store.user, account.address)
        except (StoreError, OSError) as e:
            s.conn.login_failed(f"Cannot open the mailbox: {e}", "UNAVAILABLE")
            return
        s.conn.login_ok(user, account.address)
        self._by_user.setdefault(account.address, set()).add(s)
        self.notice("imap-login", f"Login: user=<{account.address}>, method={ev.mechanism}, rip={s.peer_ip}, "
                                   f"lip={self.host.address}, session=<{s.id}>")

    def _logout(self, s: _Session) -> None:
        """Forget the session's user and log the logout, Dovecot-style."""
        login = s.conn.login
        if login is None:
            return
        sessions = self._by_user.get(login)
        if sessions is not None:
            sessions.discard(s)
            if not sessions:
                del self._by_user[login]
        st = s.conn.stats
        self.notice("imap", f"Disconnected: {s.reason} user=<{login}>, in={st['in']} out={s.conn.out.octets} "
                             f"fetched={st['fetched']} deleted={st['deleted']} expunged={st['expunged']} "
                             f"appended={st['appended']} ({s.id})")
