"""The SMTP server of an MTA host: aiosmtpd, adapted to the lab.

`LabSMTP` is aiosmtpd's protocol with what the lab needs and aiosmtpd lacks:
- a transcript: every line in and out becomes a `SessionLine` event (a
  message's first and last lines as typed, `transcript.ClientLines`), every
  session a `SessionOpened`/`SessionClosed`;
- ENHANCEDSTATUSCODES on every reply (`codes.enhance`) and PIPELINING in EHLO;
- a DATA reader of its own (`DataReader`): bare-LF lines and a bare-LF "."
  end the message, and the body is read in large chunks, not line by line;
- a 421 before closing a session that timed out (RFC 5321 §4.5.3.2), and one
  timer per session that a command moves on, not a timer cancelled and armed
  anew at every command and body chunk;
- a failed AUTH waits the client address's penalty, and too many error replies
  end the session with 421 (`authguard`; Postfix's smtpd_hard_error_limit);

`MtaHandler` holds the policy hooks: address checks, relay rules, AUTH against
the directory, MAIL (which waits, as Postfix's in_flow_delay, while the
host's deliveries lag behind), and DATA, which stamps the Received header and
hands the message to the host's spool — the 250 goes out only once it is on
disk.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import warnings
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from ..authguard import ErrorLimit, penalise
from ..events import Notice, SessionClosed, SessionLine, SessionOpened
from . import overhead
from .codes import enhance
from .budget import IN_FLIGHT
from .datareader import DataReader, DataStatus
from .policy import check_address, check_rcpt
from .received import protocol_name, received_header
from .transcript import ClientLines, printable

if TYPE_CHECKING:
    from ..mta import Mta

# aiosmtpd logs every connection at INFO and warns about plaintext AUTH on each
# one: that is ours to report, through events.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)
logging.getLogger("mail.log").propagate = False
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS", module="aiosmtpd")
overhead.install()

_session_numbers = itertools.count(1)
# The everyday path: <dot-atom@domain> then parameters. Anything else (quoted
# local parts, source routes, comments) goes through aiosmtpd's full RFC 5322 parser.
_SIMPLE_PATH = re.compile(r"\s*<((?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+\.)*[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
                          r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>(?=\s|$)\s*(.*)", re.S)
MAX_RECIPIENTS = 1000   # RFC 5321 §4.5.3.1.8 asks for at least 100


class _DeferredCheck(NamedTuple):
    """Credentials aiosmtpd has parsed, to be checked off the loop."""
    mechanism: str
    auth_data: Any


class LabSMTP(SMTP):
    # The StreamReader limit: command lines are still held to 512 octets
    # (aiosmtpd's check, answered 500), but the body is read in 64 KiB steps.
    line_length_limit = 64 * 1024

    def __init__(self, mta: "Mta", service: str, **kwargs: Any) -> None:
        self.mta = mta
        self.service = service
        self.session_id = f"{mta.host.name}/{service}/{next(_session_numbers)}"
        self._client_lines = ClientLines()
        self._out: list[bytes] = []
        self._raw_replies = False
        self._opened = False
        self._announced = False          # SessionOpened published: only then a SessionClosed
        self._ptr_task: asyncio.Task[str | None] | None = None
        self._refusal: str | None = None     # why ctx.admission.limits refused this connection, if it did
        self._deadline = self._timer_at = 0.0     # when the session times out; when its timer fires
        self._errors = ErrorLimit()
        self.body: BinaryIO | None = None     # the message body spilled to a file, during the DATA hook
        super().__init__(MtaHandler(mta, service), hostname=mta.host.name, ident="ESMTP maillab",
                         data_size_limit=mta.ctx.world.message_size_limit, enable_SMTPUTF8=True,
                         timeout=mta.ctx.session_timeout, auth_required=(service == "submission"),
                         auth_require_tls=False, authenticator=self._check_login,
                         auth_exclude_mechanism=() if mta.mailbox_domains else ("PLAIN", "LOGIN"),
                         **kwargs)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        simple = _SIMPLE_PATH.fullmatch(arg)
        if simple is not None:
            return simple.group(1), simple.group(2)
        return super()._getaddr(arg)

    # --- transcript ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._opened:
            return  # connection_made runs again after STARTTLS
        self._opened = True
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer_ip, self.peer_port = str(peer[0]), peer[1]
        self._refusal = self.mta.ctx.admission.limits.admit(self.mta.host.name, self.service, self.peer_ip)
        if self._refusal is None:
            self._ptr_task = asyncio.ensure_future(self.mta.reverse_name(self.peer_ip))

    async def _handle_client(self) -> None:
        try:
            await self._serve_session()
        except (asyncio.CancelledError, ConnectionError):
            # aiosmtpd ends every session by cancelling this task (QUIT, EOF, lost connection);
            # a reply to a client that reset is a ConnectionResetError (see push).
            # Ended quietly, the task keeps no exception whose traceback would hold this
            # protocol in a reference cycle (see _release).
            pass
        finally:
            self._release()

    def _release(self) -> None:
        """Drop what aiosmtpd keeps that points back at this protocol — bound methods of it,
        and the stream writer — so a finished session is freed at once by reference
        counting, not later by a pause of the garbage collector (140 ms in a flood)."""
        self._smtp_methods = {}
        self._auth_methods = {}
        self._handle_hooks = {}
        self._writer = self._stream_writer = None       # the writer's _protocol is this protocol
        self._client_connected_cb = None                # a bound method of it, kept by asyncio
        self._authenticator = None                      # our _check_login, bound

    async def _serve_session(self) -> None:
        if self._refusal is not None:        # past ctx.admission.limits: say so, log it, close
            limits = self.mta.ctx.admission.limits
            self.mta.ctx.bus.publish(Notice(self.mta.ctx.clock.now(), self.mta.host.name, f"postfix/{self.service}",
                                            limits.warning(self._refusal, self.service, self.peer_ip)))
            self._raw_replies = True
            await self.push("421 4.7.0 Too many connections from IP" if self._refusal == "client" else
                            f"421 4.3.2 {self.hostname} Too many connections, try again later")
            assert self.transport is not None
            self.transport.close()
            return
        await self.mta.ctx.admission.enter()     # in a flood under the TUI, new sessions wait here
        # As Postfix does, look up the client's name before the banner.
        name = await self.client_name()
        if self.transport is None or self.transport.is_closing():
            return          # reset during the PTR look-up: it never opened (connection_lost says no more)
        self._announced = True
        self.mta.ctx.bus.publish(SessionOpened(self.mta.ctx.clock.now(), self.session_id, self.service,
                                               self.mta.host.name, f"{self.peer_ip}:{self.peer_port}",
                                               name or "unknown"))
        if self.mta.fault == "421":
            await self.push(f"421 4.3.2 {self.hostname} Service not available, closing transmission channel")
            assert self.transport is not None
            self.transport.close()
            return
        if self.mta.fault == "silent":
            return   # say nothing; the session timeout closes the connection
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.mta.forget(self)
        if self._refusal is None:
            self.mta.ctx.admission.limits.leave(self.mta.host.name, self.service, self.peer_ip)
            self._refusal = "gone"               # connection_lost runs once, but leave only once
        if self._ptr_task is not None and not self._ptr_task.done():
            self._ptr_task.cancel()
        if not self._announced:
            return          # gone while waiting at the gate or for its PTR: it never opened
        reason = f"lost: {error}" if error else "closed"
        self.mta.ctx.bus.publish(SessionClosed(self.mta.ctx.clock.now(), self.session_id,
                                               self.mta.host.name, reason))

    def data_received(self, data: bytes) -> None:
        now = self.mta.ctx.clock.now()
        bus, host = self.mta.ctx.bus, self.mta.host.name
        for kind, text in self._client_lines.feed(data):
            bus.publish(SessionLine(now, self.session_id, host, kind, text))
        super().data_received(data)

    async def push(self, status: str | bytes) -> None:
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        if not self._raw_replies:
            text = enhance(text)
        self.mta.ctx.bus.publish(SessionLine(self.mta.ctx.clock.now(), self.session_id,
                                             self.mta.host.name, "server", printable(text.encode())))
        if text.startswith("354"):
            # what the client sent before the 354 and aiosmtpd has not read yet starts the body
            self._client_lines.body_started(len(getattr(self._reader, "_buffer", b"")))
        # The lines of a multi-line reply ("250-...") go out in one write with its last line.
        self._out.append(text.encode("utf-8", "surrogateescape") + b"\r\n")
        if text[3:4] == "-":
            return
        data = b"".join(self._out)
        self._out.clear()
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("reset by peer")   # (uvloop's write would raise RuntimeError)
        self._writer.write(data)
        if self._errors.reply(text[:3]) and not text.startswith("421"):
            await self._too_many_errors()
        await self._writer.drain()

    async def _too_many_errors(self) -> None:
        """Postfix's smtpd_hard_error_limit: the last error was one too many; close as QUIT does."""
        await self.push("421 4.7.0 Too many errors, closing connection")
        assert self._handler_coroutine is not None and self.transport is not None
        self._handler_coroutine.cancel()
        self.transport.close()

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the session's deadline.  The timer stays armed where it is unless the deadline
        came nearer; firing early, it re-arms itself for what is left."""
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        if self._timeout_handle is None or self._deadline < self._timer_at:
            if self._timeout_handle is not None:
                self._timeout_handle.cancel()
            self._arm()

    def _arm(self) -> None:
        self._timer_at = self._deadline
        self._timeout_handle = self.loop.call_at(self._deadline, self._timer_fired)

    def _timer_fired(self) -> None:
        if self.loop.time() < self._deadline:
            self._arm()
        else:
            self._timeout_cb()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            line = f"421 4.4.2 {self.hostname} Error: timeout exceeded"
            self.mta.ctx.bus.publish(SessionLine(self.mta.ctx.clock.now(), self.session_id,
                                                 self.mta.host.name, "server", line))
            self.transport.write(line.encode() + b"\r\n")
        super()._timeout_cb()

    # --- commands whose replies carry no enhanced code (RFC 2034 §3) --------
    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        self._raw_replies = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._raw_replies = False

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        self._raw_replies = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._raw_replies = False

    # --- DATA ----------------------------------------------------------------
    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader = DataReader(self.data_size_limit or 10 * 1024 * 1024, budget=IN_FLIGHT, lf_end=True,
                            spill_folder=self.mta.queue.spool.folder)
        try:
            await self._data_and_reply(reader)
        except asyncio.IncompleteReadError:
            return  # the client went away: nothing was accepted
        finally:
            self.body = None
            reader.release()

    async def _data_and_reply(self, reader: DataReader) -> None:
        """Read the body into `reader`, hand it on, and give the reply."""
        await self._read_body(reader)
        bus, now, host = self.mta.ctx.bus, self.mta.ctx.clock.now(), self.mta.host.name
        for kind, text in self._client_lines.body_ended(reader.taken, reader.lines, reader.taken - reader.end_line):
            bus.publish(SessionLine(now, self.session_id, host, kind, text))
        if reader.status is DataStatus.TOO_BIG:
            status = "552 5.3.4 Error: message file too big"
        elif reader.status is DataStatus.NO_STORAGE:
            status = "452 4.3.1 Insufficient system storage, try again later"
        elif reader.status is DataStatus.LINE_TOO_LONG:
            status = "500 5.5.2 Error: line too long (RFC 5321 section 4.5.3.1.6: 1000 octets with CRLF)"
        else:
            self.body = reader.body.spilled()     # a big body is a file, not bytes
            self.envelope.original_content = self.envelope.content = b"" if self.body else reader.message()
            status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        if status.startswith("250"):
            self._errors.delivered()
        await self.push(status)

    async def _read_body(self, data: DataReader) -> None:
        """Feed `data` until the end-of-data line, without reading past it.

        Large steps: `readuntil(b"\\n.")` jumps to the next line that starts
        with a dot; only such lines (and the first line) are read on their own,
        and the reader is told the steps in between hold no dot line.
        """
        reader = self._reader
        at_line_start = True
        while not data.done:
            self._reset_timeout()
            if at_line_start:
                first = await reader.readexactly(1)
                if first == b".":
                    data.feed(first + await self._read_line())
                else:
                    data.feed(first)
                    at_line_start = first == b"\n"
                continue
            try:
                chunk = await reader.readuntil(b"\n.")
            except asyncio.LimitOverrunError as e:
                data.feed(await reader.readexactly(e.consumed), dotless=True)
                continue
            data.feed(chunk[:-1], dotless=True)       # its only "\n." was the one cut off
            data.feed(b"." + await self._read_line())
            at_line_start = True

    async def _read_line(self) -> bytes:
        parts = []
        while True:
            try:
                parts.append(await self._reader.readuntil(b"\n"))
                return b"".join(parts)
            except asyncio.LimitOverrunError as e:
                parts.append(await self._reader.readexactly(e.consumed))
                if sum(map(len, parts)) > 2 * self.line_length_limit:
                    return b"".join(parts)   # the DataReader marks it too long

    # --- AUTH ----------------------------------------------------------------
    # aiosmtpd calls the authenticator synchronously, on the loop; a password hash there
    # stalls every service of the lab.  Its auth_* methods only parse: the check they end
    # with is deferred and run in a worker thread.
    def _authenticate(self, mechanism: str, auth_data: Any) -> Any:
        return _DeferredCheck(mechanism, auth_data)

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> Any:
        return await self._off_loop(await super().auth_PLAIN(server, args))

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> Any:
        return await self._off_loop(await super().auth_LOGIN(server, args))

    async def _off_loop(self, result: Any) -> Any:
        if not isinstance(result, _DeferredCheck):
            return result            # refused while parsing, or aborted by the client
        checked = await asyncio.to_thread(self._check_login, self, self.session, self.envelope,
                                          result.mechanism, result.auth_data)
        if checked.success:
            self.mta.ctx.auth_guard.succeeded(self.peer_ip)
        else:
            await penalise(self.mta.ctx, self.mta.host.name, f"postfix/{self.service}", self.peer_ip,
                           self.session_id)
        return checked

    def _check_login(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "surrogateescape")
        password = auth_data.password.decode("utf-8", "surrogateescape")
        account = self.mta.ctx.directory.authenticate(login, password, self.mta.mailbox_domains)
        if account is None or account.domain not in self.mta.mailbox_domains:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=account.address)

    async def client_name(self) -> str | None:
        return await self._ptr_task if self._ptr_task is not None else None


class MtaHandler:
    """aiosmtpd hooks: the policy of one host and service."""

    def __init__(self, mta: "Mta", service: str) -> None:
        self.mta = mta
        self.service = service

    async def handle_EHLO(self, server: LabSMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        lines = [r[4:] for r in responses if r[4:] not in ("HELP",) and r[4:] != "AUTH "]
        lines.insert(1, "PIPELINING")
        lines.insert(lines.index("8BITMIME") + 1, "ENHANCEDSTATUSCODES")
        return [f"250-{x}" for x in lines[:-1]] + [f"250 {lines[-1]}"]

    async def handle_MAIL(self, server: LabSMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        address = "" if address in ("<>", "") else address
        error = check_address(address, allow_empty=True) or self.mta.chaos_reply("MAIL")
        if error:
            return error
        await self.mta.queue.in_flow()           # a new message: Postfix's in-flow control
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: LabSMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        error = check_address(address) or self.mta.chaos_reply("RCPT")
        if error:
            return error
        if self.mta.greylisted(server.peer_ip, envelope.mail_from or "", address):
            return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted, try again later"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Error: too many recipients"
        verdict = check_rcpt(self.mta.ctx.world, self.mta.host.name, address,
                             authenticated=bool(session.authenticated),
                             mailbox_exists=lambda a: self.mta.ctx.mda.account_for(a) is not None)
        if verdict.accept:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return verdict.reply

    async def handle_DATA(self, server: LabSMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        chaos = self.mta.chaos_reply("DATA")
        if chaos:
            return chaos
        sender = "" if envelope.mail_from == "<>" else (envelope.mail_from or "")
        queue = self.mta.queue
        qid = queue.new_queue_id()
        proto = protocol_name(esmtp=session.extended_smtp, tls=session.ssl is not None,
                              auth=bool(session.authenticated), utf8=envelope.smtp_utf8)
        client_name = await server.client_name()
        stamp = received_header(helo=session.host_name or "unknown", client_name=client_name,
                                client_ip=server.peer_ip, by=self.mta.host.name, protocol=proto,
                                queue_id=qid, recipients=list(envelope.rcpt_tos),
                                when=self.mta.ctx.clock.now())
        try:
            qid = await queue.accept(qid, sender, tuple(envelope.rcpt_tos), stamp + content,
                                  client=f"{client_name or 'unknown'}[{server.peer_ip}]",
                                  extra={"auth": session.auth_data or "", "protocol": proto,
                                         "helo": session.host_name or ""}, body=server.body,
                                  upstream=self.mta.upstream_id(server.peer_ip, content, server.body))
        except OSError as e:
            return f"451 4.3.0 Error: queue file write error ({e.strerror})"
        return f"250 2.0.0 Ok: queued as {qid}"
