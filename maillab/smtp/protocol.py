"""An SMTP server connection without I/O: bytes in, events out, replies queued (RFC 5321).

`SmtpConnection` owns one session's protocol state: the input buffer, the
state (`states.State`, checked against the RFC 5321 §4.1.4 table in
states.py), the mail transaction, the message being read, and the replies.
It never touches a socket, the directory, the spool or a clock: what needs
them becomes an event the adapter answers (h11's shape, h2's output buffer):

    conn = SmtpConnection("smtp1.syr.edu", client_ip="127.0.0.3")
    conn.greet()
    conn.receive_data(chunk)                 # b"" = the client closed its side
    ev = conn.next_event()                   # NEED_DATA, PAUSED or an event:
      Helo(name, extended)                -> conn.accept() | conn.reject("550 ...")
      Mail(sender, size, body, utf8, dsn) -> conn.accept() | conn.reject(reply)
      Rcpt(address, dsn)                  -> conn.accept() | conn.reject(reply)
      MessageEnd(envelope, content, spilled) -> conn.accept("Ok: queued as X") | conn.reject(reply)
      Authenticate(login, password, mech) -> conn.login_ok(identity) | conn.login_failed()
      ScramLookup(login)                  -> conn.scram_credentials(the directory's keys)
      StartTls()                          -> conn.tls_started()   (only with tls_available)
      Closed(reason)                      -> flush data_to_send() and close
    conn.data_to_send(); conn.transcript()   # reply bytes; (direction, text) lines for the TUI

Extensions (in the EHLO reply, all implemented here): PIPELINING (RFC 2920),
SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), ENHANCEDSTATUSCODES
(RFC 2034, every reply but the greeting, HELO/EHLO's and 3xx: `codes.enhance`),
CHUNKING (RFC 3030, BDAT), DSN (RFC 3461, `dsnparams`), AUTH PLAIN LOGIN
SCRAM-SHA-256 (RFC 4954; the exchange is base/sasl.py's) when the adapter offers it
(with `plaintext_auth=False`, only after STARTTLS: before, EHLO does not list it and
AUTH gets 530 5.7.0, RFC 3207 §4), STARTTLS (RFC 3207) with `tls_available` (without it,
EHLO does not list it and STARTTLS gets Postfix's 502 5.5.1: a stripped host's answer too).

Invariants:
- replies go out in command order; while an event waits for its answer,
  `next_event()` returns PAUSED and reads nothing further, so a pipelined
  group (RFC 2920 §3.1) is answered in order, and the adapter sends a group's
  replies together when the connection asks for data;
- the bytes after DATA's 354 are the message until its end line, those of
  `BDAT n` exactly n octets (taken even when the command is refused, RFC 3030
  §3), those after STARTTLS's 220 are dropped at `tls_started()` (CVE-2011-0411);
- the end of data is only what a strict receiver sees (no SMTP smuggling), by
  `line_endings`: "lenient" (default: bare-LF lines are lines, and a client
  whose DATA line itself ended in a bare LF, a person at nc, may end with
  `<LF>.<LF>`), "strict" (only `<CR><LF>.<CR><LF>`, bare-LF lines normalised:
  Postfix's smtpd_forbid_bare_newline = normalize), "pedantic" (a bare LF in a
  command or a message is refused with 550 5.5.2 and the session closed);
  the rule itself is datareader.py's;
- what was read before the client's EOF is answered in full before Closed
  (`printf 'EHLO x\\r\\nQUIT\\r\\n' | nc -N`), as Postfix does;
- memory is bounded: a command line over the limit is dropped as it arrives,
  a message goes to a `BodySink` (spilled past 256 KiB), the adapter feeds the
  next chunk only after NEED_DATA;
- two kinds of error, as in h11: the peer's (a 5xx/4xx reply; `max_errors`
  of them, Postfix's smtpd_hard_error_limit, or too many failed logins end the
  session with 421: `authguard.ErrorLimit`) and ours (an answer no event asked
  for raises `SmtpUsageError`).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..base.sansio import NEED_DATA, PAUSED, Authenticate, Closed, LineBuffers, Sentinel, StartTls
from ..base.sasl import MECHANISMS, Challenge, SaslExchange, SaslFailure, ScramCredentials, ScramLookup, Step
from ..net.authguard import ErrorLimit
from .bodysink import BodySink
from .budget import MemoryBudget
from .codes import enhance
from .datareader import DataReader, DataStatus
from .dsnparams import MailDsn, RcptDsn, mail_dsn, rcpt_dsn
from .paths import PathError, parse_path
from .states import EXTENSION_COMMANDS, State, refusal
from .transcript import ClientLines, printable

MAX_COMMAND = 512           # RFC 5321 §4.5.3.1.4, CRLF included
MAX_AUTH_LINE = 12288       # RFC 4954 §4: an AUTH line or SASL response may be this long
MAX_RECIPIENTS = 1000       # RFC 5321 §4.5.3.1.8 asks for at least 100
MAX_CHUNK_DIGITS = 12
LINE_ENDINGS = ("lenient", "strict", "pedantic")
BARE_LF_REPLY = "550 5.5.2 Error: bare <LF> received (RFC 5321 §2.3.8: lines end in <CR><LF>)"



# ---- events ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Helo:
    """HELO or EHLO (`extended`): answer `accept()` (the hello reply follows) or `reject(reply)`."""
    name: str
    extended: bool


@dataclass(frozen=True, slots=True)
class Mail:
    """MAIL FROM, checked for syntax and parameters; `sender` "" is the null reverse-path."""
    sender: str
    size: int | None            # SIZE= declared (RFC 1870), within the limit
    body: str                   # "7BIT", "8BITMIME" or "" (RFC 6152)
    utf8: bool                  # SMTPUTF8 given (RFC 6531 §3.4)
    dsn: MailDsn


@dataclass(frozen=True, slots=True)
class Rcpt:
    """RCPT TO, checked for syntax; "postmaster" (no domain) is RFC 5321 §4.5.1's."""
    address: str
    dsn: RcptDsn


@dataclass(frozen=True, slots=True)
class Envelope:
    mail: Mail
    rcpts: tuple[Rcpt, ...]

    @property
    def sender(self) -> str:
        return self.mail.sender

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.rcpts)


@dataclass(frozen=True, slots=True)
class MessageEnd:
    """A whole message (DATA's end line or BDAT LAST): answer `accept("Ok: queued as ...")` only once it
    is on disk, or `reject(reply)`.  The body is `content` (CRLF, unstuffed), or, past the spill
    threshold, `spilled` (a file to copy from its start; then `content` is b"").  Both are
    released once answered."""
    envelope: Envelope
    content: bytes
    spilled: BinaryIO | None
    size: int


Event = Helo | Mail | Rcpt | MessageEnd | Authenticate | ScramLookup | StartTls | Closed


@dataclass(frozen=True, slots=True)
class Refusal:
    """A MAIL, RCPT or message refused (not a syntax or sequence error): what the maillog's
    "NOQUEUE: reject:" line says (Postfix's smtpd)."""
    stage: str                  # "MAIL", "RCPT", "END-OF-MESSAGE"
    reply: str
    sender: str | None          # None: not known (refused before its path was read)
    recipient: str = ""


class SmtpUsageError(RuntimeError):
    """The adapter broke the connection's rules (our bug, not the peer's)."""


class _PeerError(Exception):
    """The peer's fault: one reply line (a full one: code, enhanced code, text)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def _syntax(usage: str) -> _PeerError:
    return _PeerError(f"501 5.5.4 Syntax: {usage}")


@dataclass(slots=True)
class _Chunk:
    """A BDAT chunk being taken: octets still to come, and where they go (None: dropped)."""
    left: int
    last: bool
    sink: BodySink | None
    refusal: str | None         # the reply once it is taken, if the command was refused


# ---- the connection --------------------------------------------------------------------

class SmtpConnection(LineBuffers):
    UsageError = SmtpUsageError

    def __init__(self, hostname: str, *, client_ip: str = "", max_size: int = 10 * 1024 * 1024,
                 auth: bool = False, auth_required: bool = False, tls_available: bool = False,
                 plaintext_auth: bool = True, line_endings: str = "lenient", spill_folder: Path | None = None,
                 budget: MemoryBudget | None = None, errors: ErrorLimit | None = None,
                 banner: str = "ESMTP maillab") -> None:
        if line_endings not in LINE_ENDINGS:
            raise ValueError(f"line_endings must be one of {', '.join(LINE_ENDINGS)}")
        self.hostname = hostname
        self.client_ip = client_ip
        self.max_size = max_size
        self.auth = auth
        self.auth_required = auth_required
        self.tls_available = tls_available
        self.plaintext_auth = plaintext_auth    # False: AUTH only after STARTTLS (smtpd_tls_auth_only)
        self.line_endings = line_endings
        self.spill_folder = spill_folder
        self.budget = budget
        self.banner = banner
        self.state = State.GREETED
        self.helo_name = ""               # what HELO/EHLO said, once accepted
        self.extended = False             # EHLO (not HELO)
        self.login: str | None = None     # the authenticated identity
        self.tls_active = False
        self._errors = errors or ErrorLimit()
        super().__init__()
        self._discarding = 0              # > 0: octets of an overlong line dropped so far
        self._waiting: type | None = None
        self._pending: object = None      # the event awaiting its answer
        self._closed: Closed | None = None
        self._mail: Mail | None = None
        self._rcpts: list[Rcpt] = []
        self._reader: DataReader | None = None
        self._chunk: _Chunk | None = None
        self._bdat: BodySink | None = None        # the message of a BDAT transaction
        self._bdat_status = DataStatus.OK
        self._lines = ClientLines()               # the message's lines, for the transcript
        self._sasl: SaslExchange | None = None    # the AUTH under way
        self._attempt: tuple[str, str | None, str] | None = None   # (stage, sender, rcpt) being read
        self._refusals: list[Refusal] = []
        self.greeting_refusal: str | None = None  # a 421/554 instead of the 220 (RFC 5321 §3.1)

    # ---- bytes in ------------------------------------------------------------------------

    def greet(self) -> None:
        """Queue the greeting (RFC 5321 §4.2); once, before anything else.  With a
        `greeting_refusal` ("421 4.3.2 ...", RFC 5321 §3.1), that instead, and the session ends."""
        if self.greeting_refusal is not None:
            self._send([self.greeting_refusal])
            self._close("refused at the greeting")
            return
        self._send([f"220 {self.hostname} {self.banner}"], raw=True)

    def next_event(self) -> Event | Sentinel:
        """The next thing the adapter must do; replies to simple commands are queued on the way."""
        while True:
            if self._closed is not None:
                return self._closed
            if self._waiting is not None:
                return PAUSED
            if self.state is State.DATA:
                event = self._read_message()
            elif self._chunk is not None:
                event = self._read_chunk()
            else:
                line = self._next_line()
                if line is None:
                    if self._eof:
                        self._close("closed")             # QUIT or EOF: the TUI shows "closed"
                        continue
                    return NEED_DATA
                event = self._handle_line(line)
            if event is not None:
                return event

    def _next_line(self) -> bytes | int | None:
        """One line (its ending included; at EOF a last unended one), or None; an int for an
        overlong line that was dropped (its length in octets)."""
        nl = self._in.find(b"\n")
        if nl < 0:
            if len(self._in) >= MAX_AUTH_LINE:
                self._discarding += len(self._in)
                del self._in[:]
            if not self._eof or not (self._in or self._discarding):
                return None
            nl = len(self._in) - 1
        line = bytes(self._in[:nl + 1])
        del self._in[:nl + 1]
        if self._discarding or nl >= MAX_AUTH_LINE:     # too long, whether it came whole or in pieces
            total, self._discarding = self._discarding + len(line), 0
            return total
        return line

    # ---- one command line ------------------------------------------------------------------

    def _handle_line(self, line: bytes | int) -> Event | None:
        if isinstance(line, int):
            self._log.append(("note", f"(a line of {line} octets, dropped)"))
            if self.state is State.SASL:
                self._end_sasl()
            return self._error(_PeerError("500 5.5.2 Error: line too long (RFC 5321 §4.5.3.1.4)"))
        raw = line[:-1] if line.endswith(b"\n") else line
        bare_lf = line.endswith(b"\n") and not raw.endswith(b"\r")
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        self._log.append(("client", printable(raw)))
        if bare_lf and self.line_endings == "pedantic":
            self._send([BARE_LF_REPLY])
            self._close("bare LF received")
            return self._closed
        text = raw.decode("utf-8", "surrogateescape")
        self._attempt = None
        try:
            if self.state is State.SASL:
                return self._sasl_response(text)
            return self._command(text, len(line), bare_lf)
        except _PeerError as e:
            return self._error(e)

    def _command(self, text: str, octets: int, bare_lf: bool) -> Event | None:
        keyword, _, arg = text.partition(" ")
        keyword = keyword.upper()
        limit = MAX_AUTH_LINE if keyword == "AUTH" else MAX_COMMAND
        if octets + bare_lf > limit:                      # a bare LF is one octet short of CRLF
            raise _PeerError(f"500 5.5.2 Error: line too long (RFC 5321 §4.5.3.1.4: {MAX_COMMAND} octets)")
        handler = _COMMANDS.get(keyword)
        if handler is None:
            raise _PeerError("500 5.5.2 Error: command not recognized" if keyword.strip()
                             else "500 5.5.2 Error: bad syntax")
        if keyword == "STARTTLS" and not self.tls_available:       # Postfix's words: TLS off, or
            raise _PeerError("502 5.5.1 Error: command not implemented")   # STARTTLS cut from EHLO
        why = refusal(keyword, self.state)
        if why is not None:
            if keyword == "BDAT":
                return self._refuse_chunk(arg, f"503 5.5.1 Error: {why}")
            raise _PeerError(f"503 5.5.1 Error: {why}")
        if keyword in EXTENSION_COMMANDS and not self.extended:
            if keyword == "BDAT":
                return self._refuse_chunk(arg, "503 5.5.1 Error: send EHLO first (BDAT is an extension)")
            raise _PeerError(f"503 5.5.1 Error: send EHLO first ({keyword} is an extension)")
        if keyword == "AUTH" and self.auth and not self.auth_offered:
            raise _PeerError("530 5.7.0 Must issue a STARTTLS command first")     # RFC 3207 §4
        return handler(self, arg, bare_lf)

    def _error(self, e: _PeerError) -> Event | None:
        self._refused(e.reply)
        self._send([e.reply])
        return self._closed

    def _refused(self, reply: str) -> None:
        """Note a refusal of the MAIL, RCPT or message being read (not syntax: 500-504)."""
        if self._attempt is not None and not reply.startswith(("500", "501", "502", "503", "504")):
            stage, sender, rcpt = self._attempt
            self._refusals.append(Refusal(stage, reply, sender, rcpt))
        self._attempt = None

    def refusals(self) -> list[Refusal]:
        """The refusals since the last call, for the maillog."""
        out, self._refusals = self._refusals, []
        return out

    # ---- replies -------------------------------------------------------------------------

    def _send(self, lines: list[str], raw: bool = False) -> None:
        """Queue one reply (its lines share the code of the first); `raw`: no enhanced code
        (the greeting and the replies to HELO/EHLO, RFC 2034 §3)."""
        code = lines[0][:3]
        if not raw:
            lines = [enhance(lines[0])] + lines[1:]
        wire = [f"{code}-{x[4:]}" for x in lines[:-1]] + [f"{code} {lines[-1][4:]}".rstrip()]
        for x in wire:
            self._out.append(x.encode("utf-8", "surrogateescape") + b"\r\n")
            self._log.append(("server", printable(x.encode("utf-8", "surrogateescape"))))
        if self._errors.reply(code) and code != "421" and self._closed is None:
            self._send(["421 4.7.0 Too many errors, closing connection"])
            self._close("too many errors")

    @property
    def mail(self) -> Mail | None:
        """The MAIL of the transaction under way."""
        return self._mail

    @property
    def recipients(self) -> tuple[str, ...]:
        """The recipients accepted so far in the transaction under way."""
        return tuple(r.address for r in self._rcpts)

    def note(self, text: str) -> None:
        """A line of the adapter's in the transcript (a check's verdict, say)."""
        self._log.append(("note", text))

    def _close(self, reason: str) -> None:
        self.state = State.CLOSED
        self._closed = Closed(reason)
        self._waiting = None
        self._release()
        del self._in[:]

    def _release(self) -> None:
        """Drop the message being read or held, however the transaction ends."""
        if self._reader is not None:
            self._reader.release()
            self._reader = None
        for sink in (self._bdat, self._chunk.sink if self._chunk else None):
            if sink is not None:
                sink.discard()
        self._bdat = None

    def _reset(self) -> None:
        """No mail transaction (RFC 5321 §4.1.1.5)."""
        self._release()
        self._mail, self._rcpts = None, []
        self._bdat_status = DataStatus.OK
        if self.state is not State.CLOSED and self.state is not State.GREETED:
            self.state = State.READY

    def _wait(self, event: Event) -> Event:
        self._waiting, self._pending = type(event), event
        return event

    def _answering(self, *kinds: type) -> object:
        if self._waiting not in kinds:
            raise SmtpUsageError(f"no {' or '.join(k.__name__ for k in kinds)} event is waiting for an answer")
        self._waiting = None
        event, self._pending = self._pending, None
        return event

    # ---- answers from the adapter ---------------------------------------------------------

    def accept(self, text: str | None = None) -> None:
        """Go on with the waiting Helo, Mail, Rcpt or MessageEnd.  For MessageEnd, `text` is the
        250's ("Ok: queued as 4F3A2B1C9D"): give it only once the message is safe on disk."""
        event = self._answering(Helo, Mail, Rcpt, MessageEnd)
        if isinstance(event, Helo):
            self._reset()
            self.state = State.READY
            self.helo_name, self.extended = event.name, event.extended
            hello = f"250 {self.hostname} Hello {event.name} [{self.client_ip}]"
            self._send([hello, *(f"250 {x}" for x in self.extensions())] if event.extended else [hello], raw=True)
        elif isinstance(event, Mail):
            self._mail, self.state = event, State.MAIL
            self._send(["250 2.1.0 Ok"])
        elif isinstance(event, Rcpt):
            self._rcpts.append(event)
            self.state = State.RCPT
            self._send(["250 2.1.5 Ok"])
        else:
            if text is None:
                raise SmtpUsageError("accept(text) of a message needs its reply text (the queue ID)")
            self._reset()
            self._errors.delivered()
            self._send([f"250 2.0.0 {text}"])

    def reject(self, reply: str) -> None:
        """Refuse the waiting Helo, Mail, Rcpt or MessageEnd with `reply` ("554 5.7.1 ..."):
        the state stays as it was, but a refused message ends its transaction."""
        if reply[:1] not in ("4", "5") or not reply[:3].isdigit():
            raise SmtpUsageError(f"a refusal is a 4xx or 5xx reply, not {reply[:20]!r}")
        event = self._answering(Helo, Mail, Rcpt, MessageEnd)
        if isinstance(event, Mail):
            self._attempt = ("MAIL", event.sender, "")
        elif isinstance(event, Rcpt):
            self._attempt = ("RCPT", self._mail.sender if self._mail else None, event.address)
        elif isinstance(event, MessageEnd):
            self._attempt = ("END-OF-MESSAGE", event.envelope.sender, ",".join(event.envelope.recipients))
            self._reset()
        self._refused(reply)
        self._send([reply], raw=isinstance(event, Helo))

    def login_ok(self, identity: str) -> None:
        """The AUTH was good: the session is `identity`'s (RFC 4954 §4: 235)."""
        self._answering(Authenticate)
        self.login = identity
        self._send(["235 2.7.0 Authentication successful"])

    def login_failed(self) -> None:
        """The AUTH was not good (the adapter has waited its penalty): 535."""
        self._answering(Authenticate)
        self._send(["535 5.7.8 Error: authentication failed"])

    def scram_credentials(self, found: ScramCredentials) -> None:
        """The answer to ScramLookup: the login's stored keys (made-up ones if it has none)."""
        self._answering(ScramLookup)
        assert self._sasl is not None
        try:
            self._sasl_next(self._sasl.credentials(found))
        except _PeerError as e:
            self._error(e)

    def tls_started(self) -> None:
        """TLS is up after STARTTLS: forget everything said before it (RFC 3207 §4.2)."""
        self._answering(StartTls)
        self.tls_active = True
        self.state, self.helo_name, self.extended, self.login = State.GREETED, "", False, None
        del self._in[:]                 # no plaintext command may survive into TLS (CVE-2011-0411)

    def timed_out(self) -> None:
        """The client was idle too long (RFC 5321 §4.5.3.2): 421, then close."""
        self._send([f"421 4.4.2 {self.hostname} Error: timeout exceeded"])
        self._close("timeout")

    def abort(self, reason: str, text: str | None = None) -> None:
        """Close now (the server stops, say), with an optional last 421 line."""
        if text:
            self._send([f"421 4.3.0 {self.hostname} {text}"])
        self._close(reason)

    @property
    def auth_offered(self) -> bool:
        """AUTH may be used now: TLS is up, or the policy allows it in plaintext."""
        return self.plaintext_auth or self.tls_active

    def extensions(self) -> list[str]:
        """The EHLO keywords, in Postfix's order."""
        offered = ["PIPELINING", f"SIZE {self.max_size}"]
        if self.tls_available and not self.tls_active:
            offered.append("STARTTLS")
        if self.auth and self.auth_offered:
            offered.append("AUTH " + " ".join(MECHANISMS))
        offered += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]
        return offered

    # ---- commands --------------------------------------------------------------------------

    def _cmd_helo(self, arg: str, bare_lf: bool, extended: bool = False) -> Event | None:
        name = arg.strip()
        if not name:
            self._send([f"501 Syntax: {'EHLO' if extended else 'HELO'} hostname"], raw=True)
            return self._closed
        return self._wait(Helo(name, extended))

    def _cmd_ehlo(self, arg: str, bare_lf: bool) -> Event | None:
        return self._cmd_helo(arg, bare_lf, extended=True)

    def _cmd_mail(self, arg: str, bare_lf: bool) -> Event | None:
        if not arg[:5].upper() == "FROM:":
            raise _syntax("MAIL FROM:<address>")
        self._attempt = ("MAIL", None, "")
        if self.auth_required and self.login is None:
            raise _PeerError("530 5.7.0 Authentication required")
        try:
            path = parse_path(arg[5:], forward=False)
            self._attempt = ("MAIL", path.address, "")
            params = dict(path.params)
            if params and not self.extended:
                raise PathError("555 5.5.4 MAIL parameters need EHLO (RFC 5321 §4.1.1.11)")
            dsn = mail_dsn(params)
        except PathError as e:
            raise _PeerError(e.reply) from None
        size = params.pop("SIZE", "")
        if size is None or (size and not size.isdigit()):
            raise _PeerError("501 5.5.4 Bad SIZE parameter: a number of octets (RFC 1870)")
        if size and int(size) > self.max_size:
            raise _PeerError("552 5.3.4 Message size exceeds fixed limit")
        body = (params.pop("BODY", "") or "").upper()
        if body not in ("", "7BIT", "8BITMIME"):
            raise _PeerError("501 5.5.4 Bad BODY parameter: 7BIT or 8BITMIME (RFC 6152)")
        utf8 = "SMTPUTF8" in params
        if utf8 and params.pop("SMTPUTF8") is not None:
            raise _PeerError("501 5.5.4 SMTPUTF8 takes no value (RFC 6531 §3.4)")
        params.pop("AUTH", None)             # RFC 4954 §5: accepted; the lab trusts no other host's word
        if params:
            raise _PeerError(f"555 5.5.4 Unsupported option: {next(iter(params))}")
        if path.utf8 and not utf8:
            raise _PeerError(f"553 5.6.7 <{path.address}>: a non-ASCII address needs the SMTPUTF8 "
                             "parameter (RFC 6531 §3.5)")
        return self._wait(Mail(path.address, int(size) if size else None, body, utf8, dsn))

    def _cmd_rcpt(self, arg: str, bare_lf: bool) -> Event | None:
        if not arg[:3].upper() == "TO:":
            raise _syntax("RCPT TO:<address>")
        assert self._mail is not None
        try:
            path = parse_path(arg[3:], forward=True)
            self._attempt = ("RCPT", self._mail.sender, path.address)
            params = dict(path.params)
            dsn = rcpt_dsn(params)
        except PathError as e:
            raise _PeerError(e.reply) from None
        if params:
            raise _PeerError(f"555 5.5.4 Unsupported option: {next(iter(params))}")
        if path.utf8 and not self._mail.utf8:
            raise _PeerError(f"553 5.6.7 <{path.address}>: a non-ASCII address needs SMTPUTF8 at MAIL FROM "
                             "(RFC 6531 §3.5)")
        if len(self._rcpts) >= MAX_RECIPIENTS:
            raise _PeerError("452 4.5.3 Error: too many recipients")
        return self._wait(Rcpt(path.address, dsn))

    def _cmd_data(self, arg: str, bare_lf: bool) -> Event | None:
        if arg.strip():
            raise _syntax("DATA")
        lf_end = bare_lf and self.line_endings == "lenient"
        self._reader = DataReader(self.max_size, budget=self.budget, spill_folder=self.spill_folder,
                                  lf_end=lf_end, forbid_bare_lf=self.line_endings == "pedantic")
        self.state = State.DATA
        self._send(["354 End data with <CR><LF>.<CR><LF>"])
        self._lines.body_started(0, lf_end)
        return None

    def _read_message(self) -> Event | None | Sentinel:
        reader = self._reader
        assert reader is not None
        if self._in:
            data = bytes(self._in)
            del self._in[:]
            reader.feed(data)
            self._log.extend(self._lines.feed(data))
        if reader.status is DataStatus.BARE_LF:
            self._send([BARE_LF_REPLY])
            self._close("bare LF received")
            return self._closed
        if not reader.done:
            if self._eof:
                self._log.append(("note", "(the client closed the connection in the middle of the message)"))
                self._close("client closed the connection during DATA")
                return self._closed
            return NEED_DATA
        self._in[:0] = reader.leftover
        fed = reader.taken + len(reader.leftover)      # the lines after it are logged as commands
        self._log.extend(self._lines.body_ended(fed, reader.lines, reader.taken - reader.end_line))
        self.state = State.RCPT
        return self._message_end(reader.status, reader.body, reader.size)

    def _message_end(self, status: DataStatus, body: BodySink, size: int) -> Event | None:
        """The message is in: refused now for what the reader found, else MessageEnd."""
        reply = {DataStatus.TOO_BIG: "552 5.3.4 Error: message file too big",
                   DataStatus.NO_STORAGE: "452 4.3.1 Insufficient system storage, try again later",
                   DataStatus.LINE_TOO_LONG: "500 5.5.2 Error: line too long (RFC 5321 §4.5.3.1.6: "
                                             "1000 octets with CRLF)",
                   DataStatus.NUL: "554 5.6.0 Error: message content contains a NUL character "
                                   "(RFC 5322 §2.3)"}.get(status)
        assert self._mail is not None
        if reply is not None:
            self._attempt = ("END-OF-MESSAGE", self._mail.sender, ",".join(r.address for r in self._rcpts))
            self._refused(reply)
            self._reset()
            self._send([reply])
            return self._closed
        spilled = body.spilled()
        return self._wait(MessageEnd(Envelope(self._mail, tuple(self._rcpts)),
                                     b"" if spilled else body.content(), spilled, size))

    # BDAT (RFC 3030): "BDAT n [LAST]", then exactly n octets, binary-safe
    def _chunk_size(self, arg: str) -> tuple[int, bool] | None:
        parts = arg.split()
        if not 1 <= len(parts) <= 2 or not parts[0].isdigit() or len(parts[0]) > MAX_CHUNK_DIGITS \
                or (len(parts) == 2 and parts[1].upper() != "LAST"):
            return None
        return int(parts[0]), len(parts) == 2

    def _refuse_chunk(self, arg: str, reply: str) -> Event | None:
        """A refused BDAT: its octets are still taken, then `reply` (RFC 3030 §3)."""
        size = self._chunk_size(arg)
        if size is None:
            raise _syntax("BDAT chunk-size [LAST]")
        self._chunk = _Chunk(size[0], size[1], None, reply)
        return None

    def _cmd_bdat(self, arg: str, bare_lf: bool) -> Event | None:
        size = self._chunk_size(arg)
        if size is None:
            raise _syntax("BDAT chunk-size [LAST]")
        if self._bdat is None:
            self._bdat = BodySink(self.spill_folder, self.budget)
        self.state = State.BDAT
        self._chunk = _Chunk(size[0], size[1], self._bdat, None)
        self._log.append(("note", f"(a chunk of {size[0]} octets{', the last' if size[1] else ''})"))
        return None

    def _read_chunk(self) -> Event | None | Sentinel:
        chunk = self._chunk
        assert chunk is not None
        take = min(chunk.left, len(self._in))
        if take:
            piece = bytes(self._in[:take])
            del self._in[:take]
            chunk.left -= take
            if chunk.sink is not None and self._bdat_status is DataStatus.OK:
                if b"\x00" in piece:
                    self._bdat_status = DataStatus.NUL
                elif chunk.sink.size + take > self.max_size:
                    self._bdat_status = DataStatus.TOO_BIG
                elif not chunk.sink.write(piece):
                    self._bdat_status = DataStatus.NO_STORAGE
                if self._bdat_status is not DataStatus.OK:
                    chunk.sink.discard()
        if chunk.left:
            if self._eof:
                self._close("client closed the connection during BDAT")
                return self._closed
            return NEED_DATA
        self._chunk = None
        if chunk.refusal is not None:
            self._send([chunk.refusal])
            return self._closed
        assert chunk.sink is not None
        if not chunk.last and self._bdat_status is DataStatus.OK:
            self._send([f"250 2.0.0 Ok: {chunk.sink.size} octets"])
            return self._closed
        self.state = State.RCPT                    # the sink stays self._bdat until the answer
        return self._message_end(self._bdat_status, chunk.sink, chunk.sink.size)

    def _cmd_rset(self, arg: str, bare_lf: bool) -> Event | None:
        if arg.strip():
            raise _syntax("RSET")
        self._reset()
        self._send(["250 2.0.0 OK"])
        return None

    def _cmd_noop(self, arg: str, bare_lf: bool) -> Event | None:
        self._send(["250 2.0.0 OK"])
        return None

    def _cmd_quit(self, arg: str, bare_lf: bool) -> Event | None:
        self._send(["221 2.0.0 Bye"])
        self._close("closed")
        return self._closed

    def _cmd_vrfy(self, arg: str, bare_lf: bool) -> Event | None:
        if not arg.strip():
            raise _syntax("VRFY address")
        self._send(["252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"])
        return None

    def _cmd_expn(self, arg: str, bare_lf: bool) -> Event | None:
        raise _PeerError("502 5.5.1 Error: EXPN is not implemented")

    def _cmd_help(self, arg: str, bare_lf: bool) -> Event | None:
        self._send(["214 2.0.0 Commands: " + " ".join(sorted(_COMMANDS))])
        return None

    def _cmd_starttls(self, arg: str, bare_lf: bool) -> Event | None:
        if arg.strip():
            raise _syntax("STARTTLS")
        if self.tls_active:
            raise _PeerError("503 5.5.1 Error: TLS already active")
        self._send(["220 2.0.0 Ready to start TLS"])
        return self._wait(StartTls())

    # AUTH (RFC 4954): base/sasl.py's exchange (PLAIN, LOGIN, SCRAM-SHA-256), with or without
    # an initial response; its challenges go out as 334 lines
    def _cmd_auth(self, arg: str, bare_lf: bool) -> Event | None:
        if not self.auth:
            raise _PeerError("503 5.5.1 Error: authentication not enabled")
        if self.login is not None:
            raise _PeerError("503 5.5.1 Error: already authenticated")
        parts = arg.split()
        if not 1 <= len(parts) <= 2:
            raise _syntax("AUTH mechanism [initial-response]")
        mechanism = parts[0].upper()
        if mechanism not in MECHANISMS:
            raise _PeerError("504 5.5.4 Unrecognized authentication type")
        self._sasl = SaslExchange(mechanism)
        initial = self._sasl_decode("" if parts[1] == "=" else parts[1]) if len(parts) == 2 else None
        return self._sasl_next(self._sasl.start(initial))       # RFC 4954 §4: "=" is empty

    def _sasl_response(self, text: str) -> Event | None:
        if text.strip() == "*":
            self._end_sasl()
            raise _PeerError("501 5.7.0 Authentication aborted")        # RFC 4954 §4
        assert self._sasl is not None
        return self._sasl_next(self._sasl.respond(self._sasl_decode(text.strip())))

    def _sasl_decode(self, b64: str) -> bytes:
        try:
            return binascii.a2b_base64(b64.encode("ascii"), strict_mode=True) if b64 else b""
        except (binascii.Error, UnicodeEncodeError):
            self._end_sasl()
            raise _PeerError("501 5.5.2 Error: cannot decode the response (not base64)") from None

    def _sasl_next(self, step: Step) -> Event | None:
        """What the exchange said: a 334 challenge, an event to wait on, or a 501."""
        if isinstance(step, Challenge):             # "334 " even when empty (RFC 4954 §4), so not _send
            self.state = State.SASL
            line = "334 " + binascii.b2a_base64(step.data, newline=False).decode()
            self._out.append(line.encode() + b"\r\n")
            self._log.append(("server", line))
            return None
        if isinstance(step, SaslFailure):
            self._end_sasl()
            raise _PeerError(f"501 5.5.2 Error: {step.text}")
        if isinstance(step, Authenticate):
            self._end_sasl()
        return self._wait(step)

    def _end_sasl(self) -> None:
        self._sasl = None
        if self.state is State.SASL:
            self.state = State.READY


_COMMANDS = {
    "HELO": SmtpConnection._cmd_helo, "EHLO": SmtpConnection._cmd_ehlo,
    "MAIL": SmtpConnection._cmd_mail, "RCPT": SmtpConnection._cmd_rcpt,
    "DATA": SmtpConnection._cmd_data, "BDAT": SmtpConnection._cmd_bdat,
    "RSET": SmtpConnection._cmd_rset, "NOOP": SmtpConnection._cmd_noop,
    "QUIT": SmtpConnection._cmd_quit, "VRFY": SmtpConnection._cmd_vrfy,
    "EXPN": SmtpConnection._cmd_expn, "HELP": SmtpConnection._cmd_help,
    "AUTH": SmtpConnection._cmd_auth, "STARTTLS": SmtpConnection._cmd_starttls,
}
