"""The SMTP server of an MTA host: `SmtpConnection` on `session_server`, answered by the host's policy.

`SmtpServer` is one listener (service "smtp", port 25's stand-in, or
"submission" on a mailbox host, AUTH required) run by `SessionServer` like
IMAP and POP3: admission and per-client limits at accept, one session loop,
the transcript as `SessionLine`s between one `SessionOpened` and one
`SessionClosed`, the session timeout (421 4.4.2).  The adapter owns only I/O
and the answers to the connection's events:

    before the banner  PTR look-up of the client (as Postfix), the host's faults:
                       "421" refuses at the greeting, "silent" never speaks; then
                       the connect checkpoint (a reject: 554 instead of the 220);
                       a host with STARTTLS stripped (`mta.starttls_stripped`, read
                       as each session begins) offers none, and says so in a note
    Helo, Mail, Rcpt   the host's checkpoints (`mta.checkpoints`, checkpoints.py):
                       today's policy (policy.standard_checks: addresses, chaos,
                       sender_login_match, greylisting, relay rules, the in-flow
                       delay) and whatever else is registered; RCPT TO:<postmaster>
                       is the host's postmaster (RFC 5321 §4.5.1)
    Authenticate       the directory, off the loop (`check_login`: a failure waits
                       the client's auth penalty and is logged as Postfix's smtpd does)
    MessageEnd         the data checkpoint (tags become headers, quarantine holds the
                       message), Received (with the login of an authenticated sender),
                       Date/Message-ID if missing, then the spool: the 250 goes out
                       only once the message is on disk (fsync, rename)

Every refusal of a MAIL, RCPT or message is a maillog line in Postfix's words
(`NOQUEUE: reject: RCPT from name[ip]: 554 5.7.1 ...; from=<...> to=<...>
proto=ESMTP helo=<...>`), and an accepted message from a logged-in user says
`sasl_method=, sasl_username=`; every verdict of a check that is not a plain
accept is a line too (`check relay: reject at rcpt: ...`) and a note in the transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ..base.events import CheckVerdict, Notice, SessionClosed, SessionOpened
from ..base.sansio import Authenticate
from ..lab.world import Host
from ..net.ports import Ports
from ..net.session_server import READ_CHUNK, ServerContext, Session, SessionServer
from ..queue.manager import QueueManager
from .budget import IN_FLIGHT
from .checkpoints import Checkpoints, Facts, Verdict
from .protocol import Helo, Mail, MessageEnd, Rcpt, Refusal, SmtpConnection
from .received import missing_headers, protocol_name, received_header
from .transcript import STRIPPED_NOTE


class SmtpContext(ServerContext, Protocol):
    """What the SMTP server needs of the lab beyond every server's: its ports."""
    ports: Ports


class SmtpHost(Protocol):
    """What the SMTP server needs of the MTA it serves (`mta.Mta`): the host, its mailbox
    domains, its queue, its checkpoints, its fault, whether STARTTLS is stripped, and two look-ups."""
    ctx: SmtpContext
    host: Host
    mailbox_domains: tuple[str, ...]
    queue: QueueManager
    checkpoints: Checkpoints
    fault: str | None
    starttls_stripped: bool     # the lesson's attack: EHLO offers no STARTTLS (read per session)

    async def reverse_name(self, ip: str) -> str | None: ...
    def upstream_id(self, client_ip: str, content: bytes, body: BinaryIO | None = None) -> str: ...

MAX_SESSIONS = 1 << 20          # no cap of its own: the world's connections_per_service decides
HEAD_PEEK = 64 * 1024           # octets of a spilled message searched for Date/Message-ID


@dataclass(slots=True)
class _Marks:
    """What the checks said should happen to a message: headers to add, a quarantine reason."""
    headers: tuple[str, ...] = ()
    quarantine: str = ""

    def joined(self, other: "_Marks") -> "_Marks":
        return _Marks(self.headers + other.headers, self.quarantine or other.quarantine)


class _Session(Session):
    conn: SmtpConnection

    def __init__(self, server: "SmtpServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(server, reader, writer, None)
        world, mta = server.ctx.world, server.mta
        self.conn = SmtpConnection(server.host.name, client_ip=self.peer_ip, max_size=world.message_size_limit,
                                   auth=bool(mta.mailbox_domains), auth_required=server.service == "submission",
                                   tls_available=server.tls_context is not None and not mta.starttls_stripped,
                                   plaintext_auth=server.plaintext_auth(self),
                                   line_endings=world.smtp_line_endings, spill_folder=mta.queue.spool.folder,
                                   budget=IN_FLIGHT)
        self.reading = False                # waiting for the client's next bytes
        self.mechanism = ""                 # of the AUTH that logged in
        self.early = b""                    # what the client sent while it waited at the gate
        self.session_marks = _Marks()       # the checks' tags and quarantine at connect and HELO
        self.transaction_marks = _Marks()   # ... and since the transaction's MAIL


class SmtpServer(SessionServer[_Session]):
    """SMTP (or submission) for the host of `mta` (RFC 5321, RFC 6409)."""
    ctx: SmtpContext

    REASONS = {"closed": "closed", "send timeout": "timeout while sending", "lost": "lost: {error}",
               "stopped": "server stopped", "stopped line": "Service shutting down, closing transmission channel",
               "bug line": "Error: internal error, closing connection"}
    client_busy_reply = b"421 4.7.0 Too many connections from IP\r\n"
    tls_service = "smtps"

    def __init__(self, mta: SmtpHost, service: str) -> None:
        super().__init__(mta.ctx, mta.host, mta.mailbox_domains, MAX_SESSIONS)
        self.mta = mta
        self.service = service
        self.program = "smtpd" if service == "smtp" else service
        self.busy_reply = f"421 4.3.2 {mta.host.name} Too many connections, try again later\r\n".encode()

    def port(self) -> int:
        return self.ctx.ports.smtp if self.service == "smtp" else self.ctx.ports.submission

    def tls_port(self) -> int | None:
        """Submission with TLS on connect (RFC 8314 §3.3); port 25's stand-in has none."""
        return self.ctx.ports.smtps if self.service == "submission" else None

    def new_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Session:
        return _Session(self, reader, writer)

    async def run(self, s: _Session) -> None:
        if not await self._through_the_gate(s):
            return          # gone while waiting: it never opened
        s.client_name = await self.mta.reverse_name(s.peer_ip)     # as Postfix, before the banner
        if s.writer.transport.is_closing():
            return          # reset during the look-up: it never opened
        if self.mta.fault == "silent":
            await self._silent(s)
            return
        if self.tls_context is not None and not s.conn.tls_available and not s.implicit_tls:
            s.conn.note(STRIPPED_NOTE)
        if self.mta.fault == "421":
            s.conn.greeting_refusal = f"421 4.3.2 {self.host.name} Service not available, closing transmission channel"
        else:
            verdict = await self.checkpoint(s, Facts("connect", s.peer_ip, s.client_name))
            if verdict.action == "reject":
                s.conn.greeting_refusal = verdict.reply       # RFC 5321 §3.1: 554 (or 421) instead of 220
        await super().run(s)

    async def _through_the_gate(self, s: _Session) -> bool:
        """Wait at the admission gate (in a flood under the TUI, new sessions wait there) while
        watching the client: False if it closed first.  What it sent early is kept for the session."""
        if self.ctx.admission.open_now:
            return True
        gate = asyncio.ensure_future(self.ctx.admission.enter())
        early = asyncio.ensure_future(s.reader.read(READ_CHUNK))
        try:
            await asyncio.wait({gate, early}, return_when=asyncio.FIRST_COMPLETED)
            if early.done() and (early.exception() is not None or not early.result()):
                return False
            await gate
        finally:
            gate.cancel()
            early.cancel()
        if early.done() and not early.cancelled():
            s.early = early.result()
        return True

    async def _silent(self, s: _Session) -> None:
        """The "silent" fault: accept, say nothing, and close at the session timeout or the client's EOF."""
        self.ctx.bus.publish(self.opened(s))
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with asyncio.timeout(self.ctx.session_timeout):
                while await s.reader.read(READ_CHUNK):
                    pass
        s.writer.close()
        self.ctx.bus.publish(SessionClosed(self.ctx.clock.now(), s.id, self.host.name, "silent"))

    def opened(self, s: _Session) -> SessionOpened:
        return SessionOpened(s.accepted, s.id, self.protocol(s), self.host.name,
                             f"{s.peer_ip}:{s.peer_port}", s.client_name or "unknown")

    async def receive(self, s: _Session) -> bytes | None:
        if s.early:
            data, s.early = s.early, b""
            return data
        s.reading = True                    # (stays True if cancelled while reading: stop() says goodbye)
        data = await self.read_chunk(s, self.ctx.session_timeout)
        s.reading = False
        return data

    def idle(self, s: _Session) -> bool:
        return s.reading

    def publish_transcript(self, s: _Session) -> None:
        super().publish_transcript(s)
        for refusal in s.conn.refusals():
            self.notice(self.program, self._reject_line(s, refusal))

    def _reject_line(self, s: _Session, r: Refusal) -> str:
        """Postfix's smtpd: NOQUEUE: reject: RCPT from name[ip]: <reply>; from=<> to=<> proto= helo=<>."""
        fields = f"from=<{r.sender}> " if r.sender is not None else ""
        if r.recipient:
            fields += f"to=<{r.recipient}> "
        proto = "ESMTP" if s.conn.extended else "SMTP"
        return (f"NOQUEUE: reject: {r.stage} from {self.client_label(s)}: {r.reply}; {fields}proto={proto} "
                f"helo=<{s.conn.helo_name}>")

    def login_failed_text(self, s: _Session, ev: Authenticate) -> str:
        return (f"warning: {self.client_label(s)}: SASL {ev.mechanism} authentication failed: "
                f"authentication failure ({s.id})")

    # ---- the checkpoints ------------------------------------------------------------------

    def facts(self, s: _Session, stage: str, **known: object) -> Facts:
        """What is known at `stage`: the session and transaction so far, and `known`."""
        conn = s.conn
        so_far: dict[str, object] = {"helo": conn.helo_name, "login": conn.login, "recipients": conn.recipients,
                                     "sender": conn.mail.sender if conn.mail else None}
        return Facts(stage, s.peer_ip, s.client_name, **(so_far | known))  # type: ignore[arg-type]

    async def checkpoint(self, s: _Session, facts: Facts) -> Verdict:
        """Ask the host's checks; log each verdict that is not a plain accept (maillog and
        transcript); keep tags and quarantine for the message (the session's, at connect
        and HELO; the transaction's after)."""
        decision = await self.mta.checkpoints.ask(facts)
        for name, verdict in decision.said:
            text = f"check {name}: {verdict.action} at {facts.stage}: {verdict.reason or verdict.reply}"
            self.notice(self.program, f"{text}; client={self.client_label(s)}")
            s.conn.note(f"({text})")
            self.ctx.bus.publish(CheckVerdict(self.ctx.clock.now(), self.host.name, s.id, facts.stage, name,
                                              verdict.action, verdict.reason, verdict.reply, self.client_label(s)))
        verdict = decision.verdict
        marks = s.session_marks if facts.stage in ("connect", "helo") else s.transaction_marks
        if verdict.action == "tag":
            marks.headers += verdict.headers
        elif verdict.action == "quarantine":
            marks.quarantine = verdict.reason
        return verdict

    # ---- answering the connection's events -----------------------------------------------

    async def handle(self, s: _Session, event: object) -> None:
        if isinstance(event, Helo):
            verdict = await self.checkpoint(s, self.facts(s, "helo", helo=event.name))
        elif isinstance(event, Mail):
            s.transaction_marks = _Marks()
            verdict = await self.checkpoint(s, self.facts(s, "mail", sender=event.sender))
        elif isinstance(event, Rcpt):
            verdict = await self.checkpoint(s, self.facts(s, "rcpt", recipient=self._local_postmaster(event.address)))
        elif isinstance(event, MessageEnd):
            await self._message(s, event)
            return
        else:
            assert isinstance(event, Authenticate)
            account = await self.check_login(s, event, self.program)
            if account is None:
                s.conn.login_failed()
            else:
                s.mechanism = event.mechanism
                s.conn.login_ok(account.address)
            return
        if verdict.action == "reject":
            s.conn.reject(verdict.reply)
        else:
            s.conn.accept()

    async def _message(self, s: _Session, ev: MessageEnd) -> None:
        conn, queue = s.conn, self.mta.queue
        recipients = [self._local_postmaster(r) for r in ev.envelope.recipients]
        head = ev.content[:HEAD_PEEK] if ev.spilled is None else os.pread(ev.spilled.fileno(), HEAD_PEEK, 0)
        whole = (lambda: ev.content) if ev.spilled is None else (lambda: _read_all(ev.spilled))
        verdict = await self.checkpoint(s, self.facts(s, "data", recipients=tuple(recipients), head=head,
                                                      message=whole))
        if verdict.action == "reject":
            conn.reject(verdict.reply)
            return
        now = self.ctx.clock.now()
        qid = queue.new_queue_id()
        proto = protocol_name(esmtp=conn.extended, tls=conn.tls_active, auth=conn.login is not None,
                              utf8=ev.envelope.mail.utf8)
        marks = s.session_marks.joined(s.transaction_marks)
        stamp = received_header(helo=conn.helo_name or "unknown", client_name=s.client_name,
                                client_ip=s.peer_ip, by=self.host.name, protocol=proto, queue_id=qid,
                                recipients=recipients, when=now, auth=conn.login or "",
                                tls=s.tls.summary if s.tls else "")
        stamp += "".join(f"{h}\r\n" for h in marks.headers).encode("utf-8", "surrogateescape")
        stamp += missing_headers(head, by=self.host.name, queue_id=qid, when=now)
        extra = {"auth": conn.login or "", "protocol": proto, "helo": conn.helo_name} | _dsn_extra(ev, recipients)
        try:
            qid = await queue.accept(qid, ev.envelope.sender, tuple(recipients), stamp + ev.content,
                                     client=self.client_label(s), extra=extra | ({"quarantine": marks.quarantine}
                                                                          if marks.quarantine else {}),
                                     body=ev.spilled, start=not marks.quarantine,
                                     upstream=self.mta.upstream_id(s.peer_ip, ev.content, ev.spilled),
                                     session=s.id)
            if marks.quarantine:                 # held, as Postfix's HOLD: `maillab queue release` lets it go
                await queue.hold(qid)
        except OSError as e:
            conn.reject(f"451 4.3.0 Error: queue file write error ({e.strerror})")
            return
        if conn.login is not None:
            self.notice(self.program, f"{qid}: client={self.client_label(s)}, sasl_method={s.mechanism}, "
                                      f"sasl_username={conn.login}")
        conn.accept(f"Ok: queued as {qid}")

    def _local_postmaster(self, address: str) -> str:
        """RCPT TO:<postmaster> without a domain (RFC 5321 §4.5.1) is this host's postmaster."""
        if address != "postmaster":
            return address
        return f"postmaster@{self.mta.mailbox_domains[0] if self.mta.mailbox_domains else self.host.name}"


def _read_all(spilled: BinaryIO) -> bytes:
    """A spilled message's octets, from the start of its file (the file position is not moved)."""
    size = os.fstat(spilled.fileno()).st_size
    return os.pread(spilled.fileno(), size, 0)


def _dsn_extra(ev: MessageEnd, recipients: list[str]) -> dict:
    """The DSN parameters of a message for its envelope (the queue's notices honour them), if any
    was given: {"dsn": {"ret", "envid", "rcpts": {address: [notify, orcpt]}}}."""
    mail, rcpts = ev.envelope.mail.dsn, ev.envelope.rcpts
    if not (mail.ret or mail.envid or any(r.dsn.notify or r.dsn.orcpt for r in rcpts)):
        return {}
    return {"dsn": {"ret": mail.ret, "envid": mail.envid,
                    "rcpts": {address: [list(r.dsn.notify), r.dsn.orcpt] for address, r in zip(recipients, rcpts)}}}
