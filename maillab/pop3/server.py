"""The POP3 server of a mailbox host: `Pop3Connection` on asyncio streams, the directory and the store.

`Pop3Server` listens on the host's own address, port `ctx.ports.pop3` (1110
by default, STLS) and `ctx.ports.pop3s` (1995, TLS on connect), and runs one
task per connection.  The adapter owns only I/O:
reading (at most one 64 KiB chunk past what the protocol has taken, so
memory stays bounded), writing, the autologout timer, and answering the
protocol's events with the directory and the store:

    Authenticate -> Directory.authenticate (a bare local part is tried in the
                    host's `domains`; accounts of other domains are refused;
                    SCRAM's carries the proven account: check_login), then
                    MailStore.lock_maildrop (RFC 1939 §8; a second session
                    gets -ERR [IN-USE]), then INBOX opened and refreshed
    Retrieve     -> Folder.read / read_header, CRLF form
    Update       -> Folder.store(\\Seen) for retrieved messages, Folder.remove
                    for deleted ones (RFC 1939 §6: only at QUIT)

Invariants: the maildrop lock is held from a good login to the end of the
session, however it ends (QUIT, EOF, timeout, error, `stop()`); store calls
that may block run in worker threads (`asyncio.to_thread`), as the store's
docs ask; every line of the dialogue becomes a `SessionLine` (protocol
"pop3"), between one `SessionOpened` and one `SessionClosed`; logins and
logouts also go to the maillog as `Notice`s in Dovecot's shape.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ..lab.world import Host
from ..net.ports import Ports
from ..net.session_server import ServerContext, Session, SessionServer
from ..store import (INBOX, SEEN, Folder, MailStore, MaildropBusy, MaildropLock, Message, MessageGone,
                     StoreError)
from .protocol import Authenticate, Pop3Connection, Retrieve, Update

MAX_SESSIONS = 1000             # per host; more get -ERR [SYS/TEMP] and are closed

class _Session(Session):
    conn: Pop3Connection

    def __init__(self, server: "Pop3Server", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(server, reader, writer, None)
        self.conn = Pop3Connection(server.host.name, tls_available=server.tls_context is not None,
                                   plaintext_auth=server.plaintext_auth(self))
        self.idle = False                   # waiting for the client's next command
        self.lock: MaildropLock | None = None
        self.folder: Folder | None = None


class Pop3Context(ServerContext, Protocol):
    """What the POP3 server needs of the lab beyond every server's: its ports and the mail store."""
    ports: Ports
    store: MailStore


class Pop3Server(SessionServer[_Session]):
    ctx: Pop3Context
    """POP3 for the mailboxes of `domains`, kept on `host` (RFC 1939)."""

    service = "pop3"
    tls_service = "pop3s"
    local_is_secure = True      # Dovecot: a client on the server's own address logs in before TLS
    REASONS = {"closed": "closed", "send timeout": "timeout while sending", "lost": "lost: {error}",
               "stopped": "server stopped",
               "stopped line": "server shutting down", "bug line": "internal error, closing the connection"}
    busy_reply = b"-ERR [SYS/TEMP] too many POP3 sessions on this host, try again later\r\n"
    client_busy_reply = b"-ERR [SYS/TEMP] too many connections\r\n"

    def __init__(self, ctx: Pop3Context, host: Host, domains: tuple[str, ...]) -> None:
        super().__init__(ctx, host, domains, MAX_SESSIONS)

    def port(self) -> int:
        return self.ctx.ports.pop3

    def tls_port(self) -> int:
        return self.ctx.ports.pop3s

    def new_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Session:
        return _Session(self, reader, writer)

    async def receive(self, s: _Session) -> bytes | None:
        s.idle = True                      # (stays True if cancelled while reading: stop() says goodbye)
        data = await self.read_chunk(s, self.ctx.session_timeout if s.lock else self.login_timeout())
        s.idle = False
        return data

    async def handle(self, s: _Session, event: object) -> None:
        if isinstance(event, Authenticate):
            await self._login(s, event)
        elif isinstance(event, Retrieve):
            await self._retrieve(s, event)
        elif isinstance(event, Update):
            await self._update(s, event)

    def idle(self, s: _Session) -> bool:
        return s.idle

    def closing(self, s: _Session) -> None:
        self._release(s)                   # before the last reply: a client may reconnect at once

    def ended(self, s: _Session) -> None:
        self._release(s)

    def _release(self, s: _Session) -> None:
        """Give the maildrop back (once) and log the logout, Dovecot-style."""
        if s.lock is None:
            return
        s.lock.release()
        s.lock = None
        st, quit_ = s.conn.stats, s.reason == "QUIT"
        self.notice("pop3", f"Disconnected: {s.reason}: user=<{s.conn.login}>, "
                     f"top={st['top']}/{st['top_bytes']}, retr={st['retr']}/{st['retr_bytes']}, "
                     f"del={st['dele'] if quit_ else 0}/{st['dele_bytes'] if quit_ else 0} ({s.id})")

    # ---- answering the protocol's events ------------------------------------------------------

    async def _login(self, s: _Session, ev: Authenticate) -> None:
        account = await self.check_login(s, ev, "pop3")
        if account is None:
            s.conn.login_failed("AUTH", "invalid login or password")
            return
        try:
            s.lock = self.ctx.store.lock_maildrop(account.address)
        except MaildropBusy:
            self.notice("pop3", f"Login refused: user=<{account.address}>, method={ev.mechanism}, rip={s.peer_ip}, "
                         f"reason=maildrop in use ({s.id})")
            s.conn.login_failed("IN-USE", "maildrop already locked: another POP3 session has it open")
            return
        try:
            s.folder, messages = await asyncio.to_thread(self._open_inbox, account.address)
        except (StoreError, OSError) as e:
            s.lock.release()
            s.lock = None
            s.conn.login_failed("SYS/TEMP", f"cannot open the maildrop: {e}")
            return
        self.notice("pop3", f"Login: user=<{account.address}>, method={ev.mechanism}, rip={s.peer_ip}, "
                     f"lip={self.host.address}, messages={len(messages)} ({s.id})")
        s.conn.login_ok(messages, account.address)

    def _open_inbox(self, address: str) -> tuple[Folder, tuple[Message, ...]]:
        """Blocking: the user's INBOX, caught up with the disk; its messages are the maildrop."""
        folder = self.ctx.store.user(address).folder(INBOX)
        folder.refresh()
        return folder, folder.messages()

    async def _retrieve(self, s: _Session, ev: Retrieve) -> None:
        assert s.folder is not None
        read = s.folder.read_header if ev.lines == 0 else s.folder.read
        try:
            data = await asyncio.to_thread(read, ev.uid, True)
        except MessageGone:
            s.conn.message_failed(None, f"message {ev.number} was removed by another session")
        except (StoreError, OSError) as e:
            s.conn.message_failed("SYS/TEMP", f"cannot read message {ev.number}: {e}")
        else:
            s.conn.message(data)

    async def _update(self, s: _Session, ev: Update) -> None:
        assert s.folder is not None
        folder = s.folder

        def apply() -> None:
            if ev.seen:
                folder.store(ev.seen, [SEEN], "add")
            if ev.delete:
                folder.remove(ev.delete)
        try:
            await asyncio.to_thread(apply)
        except (StoreError, OSError) as e:
            s.conn.update_done(str(e))
        else:
            s.conn.update_done()
