"""The SMTP client without I/O: one transaction, server bytes in, commands out (RFC 5321).

`ClientConnection` owns one outbound session's protocol state: the reply
parser, what the server offered (EHLO keywords), the commands still waiting
for their replies, the per-recipient results and the transcript.  It never
touches a socket (h11's shape, with h2's outgoing buffer):

    conn = ClientConnection("smtp1.syr.edu", Envelope(sender, (Rcpt(a), Rcpt(b))), message)
    conn.receive_data(chunk)                   # b"" = the server closed
    ev = conn.next_event()                     # NEED_DATA, or an event:
      StartTls()     -> start TLS on the socket, then conn.tls_started()
      Closed(reason) -> send data_to_send(), close; conn.result says what happened
    conn.data_to_send(); conn.transcript()     # command bytes; (direction, text) lines
    conn.timed_out() / conn.connection_lost(why)   # what the adapter saw

The dialogue, in order (each step only if the one before it went well):
greeting 220; EHLO, or HELO when EHLO gets 500/502 (RFC 5321 §3.2, §4.1.4);
in mode "starttls" STARTTLS (in mode "may" too when the server offers it: a
refusal there goes on in plaintext, RFC 3207 §4.1 lets the client decide), then
after `tls_started()` EHLO again with all knowledge of the server discarded
(RFC 3207 §4.2), mode "tls" being TLS from
the first octet (RFC 8314, the adapter's job); AUTH PLAIN or LOGIN when
credentials are given (RFC 4954, RFC 4616); MAIL FROM with SIZE=
(RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), RET= and ENVID=
(RFC 3461) as far as the server offers them; one RCPT TO per recipient with
NOTIFY= and ORCPT= (RFC 3461) if it offers DSN; with PIPELINING MAIL and the
RCPTs go as one group and their replies are matched in order, DATA waits for
them (RFC 2920 §3.1); DATA, the message dot-stuffed (RFC 5321 §4.5.2); QUIT.

Decisions taken here, not by the server (a reply made up locally, with a
note in the transcript, then QUIT):
- a message bigger than the server's SIZE limit: 552 5.3.4, not sent;
- a UTF-8 address and no SMTPUTF8: 553 5.6.7 (RFC 6531 §3.2);
- 8-bit octets and no 8BITMIME: 554 5.6.3.  RFC 6152 §3 lets a client either
  convert the body to 7 bit or return it as undeliverable; maillab does not
  convert (a conversion would break DKIM signatures and is not implemented),
  so it returns it, naming the reason;
- TLS required (mode "starttls") and not offered: 421 4.7.4, Postfix's words
  (mode "may": plaintext, with a note);
- credentials given and no AUTH mechanism the client has: 554 5.7.4.

Invariants: whatever the server sends, split anywhere, the result is the same
and no exception leaves this class: garbage, a multi-line reply whose code
changes, a reply that fits no command we sent (354 to MAIL), the end of the
stream or a time-out end the session with `result.error` set ("protocol error
after RCPT TO: …") and `result.temporary` true, the recipients not yet decided
left for a retry.
Each recipient gets at most one reply in `result.rcpt_replies`: its RCPT reply
if refused there, else the reply that decided it for everyone.  Once only
QUIT is left (`settled`), the outcome is final: anything after it (silence,
EOF, garbage) closes cleanly.  Bytes that arrive between the 220 to STARTTLS
and `tls_started()` are discarded, never parsed as replies (a plaintext
injection).  Arguments with CR or LF, unknown RET or NOTIFY values, or no
recipient at all are the caller's bug: ValueError.  AUTH secrets never reach
the transcript; the body is one note.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Literal

from ..base.events import Direction
from ..base.sansio import NEED_DATA, Closed, Sentinel, StartTls
from ..pop3.protocol import stuff
from .replies import ProtocolError, Reply, ReplyParser

Mode = Literal["plain", "may", "starttls", "tls"]
Kind = Literal["accepted", "temporary", "permanent"]
Event = StartTls | Closed

_QUEUED_AS = re.compile(r"\bqueued as\s+<?([^\s<>;,]+)", re.I)
_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")
_EHLO_UNKNOWN = (500, 502)       # "command not recognized": fall back to HELO (RFC 5321 §3.2)
_MECHANISMS = ("PLAIN", "LOGIN")  # in the order we prefer them


@dataclass(frozen=True, slots=True)
class Rcpt:
    """One recipient and its RFC 3461 parameters, decoded (xtext is the wire's business)."""
    address: str
    notify: tuple[str, ...] = ()   # () not asked, ("NEVER",) or some of SUCCESS, FAILURE, DELAY (§4.1)
    orcpt: str = ""                # "rfc822;bob@luxsci.net" (§4.2), "" not given


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str
    recipients: tuple[Rcpt, ...]
    ret: str = ""        # "FULL", "HDRS" or "" (RFC 3461 §4.3)
    envid: str = ""      # decoded (§4.4)


@dataclass(frozen=True, slots=True)
class Credentials:
    login: str
    password: str


@dataclass
class HopResult:
    """What one session achieved; see the module docstring for how to read it."""

    connected: bool = False
    greeting: Reply | None = None
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)
    error: str = ""          # connection-level failure, "" if none
    temporary: bool = False  # whether `error` is worth a retry
    peer_queue_id: str = ""
    # which command each reply in `rcpt_replies` answered: "CONNECT" (the greeting), "EHLO",
    # "HELO", "STARTTLS", "AUTH", "MAIL FROM", "RCPT TO", "DATA", "END-OF-MESSAGE"
    rcpt_stage: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)  # EHLO keyword -> params
    tls: bool = False            # the session ran under TLS (from the start or after STARTTLS)
    tls_summary: str = ""        # the adapter's: "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
    tls_trust: str = ""          # ... and what the certificate was worth: "Verified", "Trusted", "Untrusted"
    authenticated: bool = False

    @property
    def accepted(self) -> list[str]:
        """Recipients the peer took responsibility for (positive final reply)."""
        return [rcpt for rcpt, reply in self.rcpt_replies.items() if reply.is_positive]

    def kind(self, rcpt: str) -> Kind | None:
        """accepted / temporary / permanent for a decided recipient, None if undecided."""
        reply = self.rcpt_replies.get(rcpt)
        if reply is None:
            return None
        return "accepted" if reply.is_positive else "temporary" if reply.is_transient else "permanent"


def extensions_of(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) and their parameters, RFC 5321 §4.1.1.1."""
    found: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            found[keyword.upper()] = params.strip()
    return found


def xtext(value: str) -> str:
    """RFC 3461 §4: "+", "=" and octets outside "!".."~" as "+HH" (of the UTF-8 octets)."""
    return "".join(chr(o) if 0x21 <= o <= 0x7e and o not in (0x2b, 0x3d) else f"+{o:02X}"
                   for o in value.encode("utf-8"))


def _crlf(message: bytes) -> bytes:
    """Every line ending CRLF (RFC 5321 §2.3.8: a bare CR or LF is none), the last line too."""
    pairs = message.count(b"\r\n")
    if message.count(b"\r") != pairs or message.count(b"\n") != pairs:
        message = _LINE_BREAKS.sub(b"\r\n", message)
    return message if not message or message.endswith(b"\r\n") else message + b"\r\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class ClientConnection:
    def __init__(self, helo: str, envelope: Envelope, message: bytes, *, mode: Mode = "plain",
                 credentials: Credentials | None = None) -> None:
        addresses = (envelope.sender, *(r.address for r in envelope.recipients))
        for value in (helo, *addresses):
            if "\r" in value or "\n" in value:
                raise ValueError(f"CR or LF in SMTP argument {value!r}")
        if envelope.ret not in ("", "FULL", "HDRS") or any(
                w not in ("NEVER", "SUCCESS", "FAILURE", "DELAY") for r in envelope.recipients for w in r.notify):
            raise ValueError(f"bad DSN parameters in {envelope!r}")
        if not envelope.recipients:
            raise ValueError("no recipients")
        self.helo, self.envelope, self.mode, self.credentials = helo, envelope, mode, credentials
        self.result = HopResult(connected=True, tls=mode == "tls")
        self._message = _crlf(message)
        self._utf8 = not all(a.isascii() for a in addresses)
        self._parser = ReplyParser()
        self._out: list[bytes] = []
        self._lines: list[tuple[Direction, str]] = []
        self._expect: deque[tuple[str, Callable[[Reply], None]]] = deque()
        self._stage = "CONNECT"
        self._accepted: list[str] = []
        self._mail_refused = False
        self._closed: Closed | None = None
        self._tls_pending = False
        self._starttls_event = False
        self._pipelined = self._dsn = False      # what the EHLO reply offered, at MAIL FROM
        self.settled = False         # only QUIT is left: the outcome is final
        self._expect.append(("CONNECT", self._on_greeting))

    # ---- the adapter's side ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self._closed is not None:
            return
        if self._tls_pending:
            if data:
                self._note(f"({len(data)} octets before TLS discarded, RFC 3207 §4.2)")
            else:
                self.connection_lost()
            return
        if not data:
            self.connection_lost()
            return
        try:
            replies, error = self._parser.feed(data), None
        except ProtocolError as exc:
            replies, error = exc.replies, exc
        for reply in replies:
            for line in reply.wire_lines():
                self._lines.append(("server", line))
            self._stage, handler = self._expect.popleft()
            if reply.code == 421 and self._stage not in ("CONNECT", "QUIT"):
                self._expect.clear()         # RFC 5321 §3.8: the server is closing, whatever we asked
                self._refused(reply)
            else:
                handler(reply)
            if self._closed is not None:
                return
            if self._tls_pending:            # the rest of this chunk came before TLS: dropped
                if self._parser.pending or reply is not replies[-1] or error is not None:
                    self._note("(what followed the 220 before TLS discarded, RFC 3207 §4.2)")
                self._parser = ReplyParser()
                return
        if error is not None:
            self._protocol_error(str(error), self.stage)

    def next_event(self) -> Event | Sentinel:
        if self._starttls_event:
            self._starttls_event = False
            return StartTls()
        return self._closed if self._closed is not None else NEED_DATA

    def data_to_send(self) -> bytes:
        out = self._out[0] if len(self._out) == 1 else b"".join(self._out)   # a body goes out uncopied
        self._out = []
        return out

    def transcript(self) -> list[tuple[Direction, str]]:
        lines, self._lines = self._lines, []
        return lines

    @property
    def stage(self) -> str:
        """The command whose reply is awaited (or was the last), for the adapter's messages."""
        return self._expect[0][0] if self._expect else self._stage

    def tls_started(self) -> None:
        """The adapter finished the TLS handshake after StartTls: say EHLO again (RFC 3207 §4.2)."""
        if not self._tls_pending:
            raise RuntimeError("tls_started() without a StartTls event")
        self._tls_pending = False
        self.result.tls = True
        self.result.extensions = {}
        self._ehlo()

    def timed_out(self) -> None:
        if self.settled:
            self._close("QUIT")
        else:
            self._fail(f"timeout after {self.stage}")

    def connection_lost(self, reason: str = "") -> None:
        """The stream ended (EOF: no reason) or broke (`reason`, e.g. "Connection reset by peer")."""
        if self.settled:
            self._close("QUIT")
        else:
            self._fail(f"lost connection after {self.stage}" + (f" ({reason})" if reason else ""))

    # ---- output -------------------------------------------------------------------------

    def _send(self, command: str, stage: str, handler: Callable[[Reply], None],
              shown: str | None = None) -> None:
        self._lines.append(("client", shown if shown is not None else command))
        self._out.append(command.encode("utf-8") + b"\r\n")
        self._expect.append((stage, handler))

    def _note(self, text: str) -> None:
        self._lines.append(("note", text))

    def _close(self, reason: str) -> None:
        self._closed = Closed(reason)
        self._expect.clear()

    def _fail(self, error: str) -> None:
        self.result.error, self.result.temporary = error, True
        self._close(error)

    def _protocol_error(self, text: str, stage: str | None = None) -> None:
        if self.settled:
            self._close("QUIT")
        else:
            self._fail(f"protocol error after {stage or self._stage}: {text}")

    def _decide(self, rcpts: list[str], reply: Reply, stage: str) -> None:
        for rcpt in rcpts:
            if rcpt not in self.result.rcpt_replies:
                self.result.rcpt_replies[rcpt] = reply
                self.result.rcpt_stage[rcpt] = stage

    def _everyone(self) -> list[str]:
        return [r.address for r in self.envelope.recipients]

    def _quit(self) -> None:
        self.settled = True
        self._send("QUIT", "QUIT", lambda reply: self._close("QUIT"))

    def _refused(self, reply: Reply) -> None:
        """A 4xx/5xx ends the session for everyone undecided; anything else is not SMTP here."""
        if reply.is_transient or reply.is_permanent:
            self._decide(self._everyone(), reply, self._stage)
            self._quit()
        else:
            self._protocol_error(f"unexpected reply {reply}")

    def _refuse_locally(self, code: int, enhanced: str, text: str, stage: str) -> None:
        self._note(text)
        self._decide(self._everyone(), Reply(code, (f"{enhanced} {text}",)), stage)
        self._quit()

    # ---- the dialogue ---------------------------------------------------------------------

    def _on_greeting(self, reply: Reply) -> None:
        self.result.greeting = reply
        if reply.code == 220:
            self._ehlo()
        else:
            self._refused(reply)

    def _ehlo(self) -> None:
        self._send(f"EHLO {self.helo}", "EHLO", self._on_ehlo)

    def _on_ehlo(self, reply: Reply) -> None:
        if reply.code == 250:
            self.result.extensions = extensions_of(reply)
            self._secure()
        elif reply.code in _EHLO_UNKNOWN:
            self._send(f"HELO {self.helo}", "HELO", self._on_helo)
        else:
            self._refused(reply)

    def _on_helo(self, reply: Reply) -> None:
        if reply.code == 250:
            self._secure()
        else:
            self._refused(reply)

    def _secure(self) -> None:
        if self.mode not in ("starttls", "may") or self.result.tls:
            self._authenticate()
        elif "STARTTLS" in self.result.extensions:
            self._send("STARTTLS", "STARTTLS", self._on_starttls)
        elif self.mode == "may":
            self._note("(STARTTLS not offered: going on in plaintext)")
            self._authenticate()
        else:
            self._refuse_locally(421, "4.7.4", "TLS is required, but was not offered by host", "STARTTLS")

    def _on_starttls(self, reply: Reply) -> None:
        if reply.code != 220 and self.mode == "may":
            self._note(f"(STARTTLS refused: {reply}; going on in plaintext)")
            self._authenticate()
            return
        if reply.code != 220:
            self._refused(reply)
            return
        self._tls_pending = self._starttls_event = True

    def _authenticate(self) -> None:
        if self.credentials is None:
            self._mail()
            return
        offered = self.result.extensions.get("AUTH", "").upper().split()
        mechanism = next((m for m in _MECHANISMS if m in offered), None)
        if mechanism is None:
            self._refuse_locally(554, "5.7.4", "server offers no AUTH mechanism maillab has "
                                 f"({', '.join(_MECHANISMS)}; offered: {' '.join(offered) or 'none'})", "AUTH")
        elif mechanism == "PLAIN":       # RFC 4616 §2: authzid NUL authcid NUL passwd, initial response
            secret = _b64(f"\0{self.credentials.login}\0{self.credentials.password}")
            self._send(f"AUTH PLAIN {secret}", "AUTH", self._on_auth, shown="AUTH PLAIN ***")
        else:                            # LOGIN: the user name, then the password, each on a 334
            self._send("AUTH LOGIN", "AUTH", self._on_login_prompt)

    def _on_login_prompt(self, reply: Reply) -> None:
        if reply.code != 334:
            self._on_auth(reply)
            return
        assert self.credentials is not None
        self._send(_b64(self.credentials.login), "AUTH", self._on_login_user, shown="***")

    def _on_login_user(self, reply: Reply) -> None:
        if reply.code != 334:
            self._on_auth(reply)
            return
        assert self.credentials is not None
        self._send(_b64(self.credentials.password), "AUTH", self._on_auth, shown="***")

    def _on_auth(self, reply: Reply) -> None:
        if reply.code == 235:
            self.result.authenticated = True
            self._mail()
        else:
            self._refused(reply)

    def _mail(self) -> None:
        ext, env, size = self.result.extensions, self.envelope, len(self._message)
        if self._utf8 and "SMTPUTF8" not in ext:
            self._refuse_locally(553, "5.6.7", "an address is UTF-8 and the server does not offer "
                                 "SMTPUTF8 (RFC 6531 §3.2)", "MAIL FROM")
            return
        if not self._message.isascii() and "8BITMIME" not in ext:
            self._refuse_locally(554, "5.6.3", "the message has 8-bit octets and the server does not offer "
                                 "8BITMIME; conversion to 7 bit is not done (RFC 6152 §3)", "MAIL FROM")
            return
        params = []
        if "SIZE" in ext:
            limit = ext["SIZE"]
            if limit.isdigit() and 0 < int(limit) < size:
                self._refuse_locally(552, "5.3.4", f"Message size {size} exceeds fixed limit of "
                                     f"{limit} bytes of the server: not sent", "MAIL FROM")
                return
            params.append(f"SIZE={size}")
        if not self._message.isascii():
            params.append("BODY=8BITMIME")
        if self._utf8:
            params.append("SMTPUTF8")
        self._dsn, self._pipelined = "DSN" in ext, "PIPELINING" in ext
        if self._dsn:
            params += [f"RET={env.ret}"] * bool(env.ret) + [f"ENVID={xtext(env.envid)}"] * bool(env.envid)
        self._send(" ".join([f"MAIL FROM:<{env.sender}>", *params]), "MAIL FROM", self._on_mail)
        if self._pipelined:              # RFC 2920 §3.1: MAIL and the RCPTs in one group
            for index in range(len(env.recipients)):
                self._rcpt(index)

    def _rcpt(self, index: int) -> None:
        rcpt = self.envelope.recipients[index]
        params = []
        if self._dsn and rcpt.notify:
            params.append(f"NOTIFY={','.join(rcpt.notify)}")
        if self._dsn and rcpt.orcpt:
            kind, _, value = rcpt.orcpt.partition(";")
            params.append(f"ORCPT={kind};{xtext(value)}")
        self._send(" ".join([f"RCPT TO:<{rcpt.address}>", *params]), "RCPT TO",
                   lambda reply: self._on_rcpt(index, reply))

    def _on_mail(self, reply: Reply) -> None:
        if reply.code // 100 == 2:
            if not self._pipelined:
                self._rcpt(0)
            return
        if not (reply.is_transient or reply.is_permanent):
            self._protocol_error(f"unexpected reply {reply}")
            return
        self._decide(self._everyone(), reply, "MAIL FROM")
        self._mail_refused = True
        if not self._pipelined:
            self._quit()                 # pipelined: the RCPT replies still come, then QUIT

    def _on_rcpt(self, index: int, reply: Reply) -> None:
        address = self.envelope.recipients[index].address
        if reply.code // 100 == 2:
            if not self._mail_refused:
                self._accepted.append(address)
        elif reply.is_transient or reply.is_permanent:
            self._decide([address], reply, "RCPT TO")
        else:
            self._protocol_error(f"unexpected reply {reply}")
            return
        if index + 1 < len(self.envelope.recipients):
            if not self._pipelined:
                self._rcpt(index + 1)
        elif self._accepted and not self._mail_refused:
            self._send("DATA", "DATA", self._on_data)
        else:
            self._quit()

    def _on_data(self, reply: Reply) -> None:
        if reply.code != 354:
            self._refused(reply)
            return
        message = self._message
        lines = message.count(b"\n")
        self._note(f"(message body: {lines} lines, {len(message)} bytes)")
        self._lines.append(("client", "."))
        self._out.append(stuff(message))
        self._expect.append(("END-OF-MESSAGE", self._on_end_of_data))

    def _on_end_of_data(self, reply: Reply) -> None:
        if reply.code // 100 != 2:
            self._refused(reply)
            return
        self._decide(self._accepted, reply, "END-OF-MESSAGE")
        match = _QUEUED_AS.search(reply.text)
        self.result.peer_queue_id = match.group(1) if match else ""
        self._quit()
