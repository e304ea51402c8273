"""POP3 without I/O: bytes in, events out, reply bytes queued (RFC 1939, RFC 2449, RFC 5034).

`Pop3Connection` owns one session's protocol state: the input buffer, the
state machine, the maildrop *view* of the session (message numbers, sizes,
UIDLs, the DELE marks) and the replies.  It never touches a socket, the
directory or the store: whatever needs them becomes an event the adapter
answers (h11's shape, with h2's outgoing buffer):

    conn = Pop3Connection("smtp1.syr.edu", tls_available=True, plaintext_auth=False)
                                               # plaintext_auth=False: USER, PASS, AUTH get -ERR [AUTH]
                                               # until STLS, and CAPA lists neither USER nor SASL
    conn.greet()
    conn.receive_data(chunk)                   # b"" = the client closed
    ev = conn.next_event()                     # NEED_DATA, PAUSED or an event:
      Authenticate(login, password, mech)   -> conn.login_ok(messages) | conn.login_failed(code, text)
      ScramLookup(login)                    -> conn.scram_credentials(the directory's keys)
      Retrieve(number, uid, lines)          -> conn.message(data)      | conn.message_failed(code, text)
      Update(delete, seen)                  -> conn.update_done(error=None)
      StartTls()                            -> conn.tls_started()      (with tls_available: after the handshake)
      Closed(reason)                        -> flush data_to_send() and close
    conn.data_to_send(); conn.transcript()     # reply bytes; (direction, text) lines for the TUI

Rules of the state machine (everything that changes `state` is in this file):

    AUTHORIZATION --USER/PASS or AUTH, login_ok--> TRANSACTION   (RFC 1939 §4, RFC 5034 §4)
    AUTHORIZATION --AUTH's challenge ("+ ...")--> SASL --line--> SASL (the next challenge)
                  | AUTHORIZATION (+ event, or -ERR)       (the exchange: base/sasl.py)
    TRANSACTION   --QUIT--> UPDATE --update_done--> CLOSED                (RFC 1939 §6)
    any           --QUIT in AUTHORIZATION, EOF, timeout, too many bad commands--> CLOSED

Which command is valid in which state is the table `COMMANDS`.  Invariants:
- replies go out in command order: while an event waits for its answer,
  `next_event()` returns PAUSED and reads no further line (pipelining is safe);
- DELE only marks; marked messages vanish from STAT/LIST/UIDL/RETR at once
  but leave the store only through `Update` at QUIT (RFC 1939 §6); EOF,
  timeout or a lost connection never reach UPDATE, so nothing is removed;
- message numbers are fixed at login: the view is the maildrop as locked
  (RFC 1939 §8), later deliveries wait for the next session;
- memory is bounded: a line longer than the limit is dropped as it arrives
  (one -ERR once its end comes), and the adapter feeds the next chunk only
  after NEED_DATA;
- two kinds of error, as in h11: the peer's (an `-ERR` reply, with an RFC 2449
  / RFC 3206 response code where one fits; `max_bad_commands` protocol errors
  in a row, `max_errors` in all before login, `max_auth_failures` failed logins (a
  malformed PLAIN message is one) close the session) and ours (calling an answer method that no
  event asked for raises `Pop3UsageError`).
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from ..base.sansio import (NEED_DATA, PAUSED, PLAINTEXT_REFUSED, Authenticate, Closed, LineBuffers, Sentinel,
                           StartTls)
from ..base.sasl import MECHANISMS, Challenge, SaslExchange, SaslFailure, ScramCredentials, ScramLookup, Step
from ..net.authguard import HARD_ERROR_LIMIT
from ..smtp.transcript import printable

MAX_COMMAND = 255           # RFC 2449 §4: a command line is at most 255 octets, CRLF included
MAX_SASL_LINE = 4096        # RFC 5034 §4 sets no limit on a SASL response; we do
MAX_NUMBER_DIGITS = 10      # 9,999,999,999 messages or lines is plenty



class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    SASL = "SASL"               # AUTHORIZATION, waiting for the client's SASL response line
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


# ---- events ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Retrieve:
    """Read one message (CRLF form); answer `message(data)` or `message_failed`.

    `lines` is None for RETR; for TOP it is the number of body lines wanted
    (the adapter may then read only the header when it is 0)."""
    number: int
    uid: int
    lines: int | None


@dataclass(frozen=True, slots=True)
class Update:
    """QUIT in TRANSACTION (RFC 1939 §6): remove `delete`, flag `seen` (retrieved) as \\Seen.

    Answer `update_done()` (or `update_done(error)`); then the session closes."""
    delete: tuple[int, ...]
    seen: tuple[int, ...]


Event = Authenticate | ScramLookup | Retrieve | Update | StartTls | Closed


class DropMessage(Protocol):
    """What the view needs of a message; `maillab.store.Message` fits as is."""
    @property
    def uid(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def size(self) -> int: ...


class Pop3UsageError(RuntimeError):
    """The adapter broke the protocol object's rules (our bug, not the peer's)."""


class _PeerError(Exception):
    """The peer's fault: becomes one -ERR reply; `bad` ones count toward the bad-command cap."""

    def __init__(self, text: str, code: str | None = None, bad: bool = True) -> None:
        super().__init__(text)
        self.text, self.code, self.bad = text, code, bad


# ---- helpers ---------------------------------------------------------------------------

_NUMBER = re.compile(r"[0-9]+")
_UIDL_OK = re.compile(r"[\x21-\x7e]{1,70}")


def uidl_for(key: str) -> str:
    """The UIDL of a message: the unique name of its Maildir file, when RFC 1939 §7 allows it.

    That is the key up to its first comma: the `,S=`/`,W=` sizes and the MDA's
    `,I=` delivery tag are left out (with them a key passes 70 characters), and
    the unique name never changes, whatever happens to the flags.  A unique-id
    is 1 to 70 characters in 0x21-0x7E; a name that does not fit (a file dropped
    in by another program with a long or odd name) gets a stable digest instead.
    """
    unique = key.split(",", 1)[0]
    if _UIDL_OK.fullmatch(unique):
        return unique
    return "H" + hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()


def stuff(data: bytes) -> bytes:
    """A multi-line body on the wire: dot-stuffed, ending in CRLF, then ".CRLF" (RFC 1939 §3)."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def top_of(data: bytes, lines: int) -> bytes:
    """The header, the blank line and the first `lines` body lines of a CRLF message (RFC 1939 §7)."""
    if data.startswith(b"\r\n"):
        end = 2                         # no header at all: the blank line comes first
    else:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return data                 # no body: the whole message is header
        end += 4
    pos = end
    for _ in range(lines):
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            return data
        pos = nl + 2
    return data[:pos]


def _count_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


# ---- the connection --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Command:
    states: frozenset[State]
    handler: Callable[["Pop3Connection", str], Event | None]


class Pop3Connection(LineBuffers):
    UsageError = Pop3UsageError

    def __init__(self, hostname: str, *, tls_available: bool = False, plaintext_auth: bool = True,
                 max_bad_commands: int = 10,
                 max_auth_failures: int = 3, max_errors: int = HARD_ERROR_LIMIT,
                 implementation: str = "maillab") -> None:
        self.hostname = hostname
        self.tls_available = tls_available
        self.tls_active = False
        self.plaintext_auth = plaintext_auth    # False: USER, PASS and AUTH only after STLS
        self.max_bad_commands = max_bad_commands
        self.max_auth_failures = max_auth_failures
        self.max_errors = max_errors
        self.implementation = implementation
        self.state = State.AUTHORIZATION
        self.login: str | None = None           # the account, once in TRANSACTION
        super().__init__()
        self._discarding = 0                    # > 0: octets of an overlong line dropped so far
        self._waiting: type | None = None       # the event type awaiting an answer
        self._pending: Retrieve | None = None
        self._closed: Closed | None = None
        self._bad = 0
        self._errors = 0                        # -ERR replies to the peer's faults before login
        self._auth_failures = 0
        self._user: str | None = None           # USER given, PASS awaited
        self._sasl: SaslExchange | None = None  # the AUTH under way
        # the maildrop view (TRANSACTION)
        self._drop: Sequence[DropMessage] = ()
        self._total = 0
        self._deleted: dict[int, int] = {}      # message number -> size
        self._retrieved: set[int] = set()       # message numbers sent whole by RETR
        self.stats = {"retr": 0, "retr_bytes": 0, "top": 0, "top_bytes": 0, "dele": 0, "dele_bytes": 0}

    # ---- bytes in ------------------------------------------------------------------------

    def greet(self) -> None:
        """Queue the greeting (RFC 1939 §4); once, before anything else."""
        self._reply(f"+OK {self.hostname} POP3 {self.implementation} ready")

    def next_event(self) -> Event | Sentinel:
        """The next thing the adapter must do; replies to simple commands are queued on the way."""
        while True:
            if self._closed is not None:
                return self._closed
            if self._waiting is not None:
                return PAUSED
            line = self._next_line()
            if line is None:
                if self._eof:
                    self._close("client closed the connection")
                    continue
                return NEED_DATA
            event = self._handle_line(line)
            if event is not None:
                return event

    def _next_line(self) -> bytes | int | None:
        """One line from the buffer (line ending included), or None; an int for an overlong
        line that was dropped (its length in octets)."""
        limit = MAX_SASL_LINE if self.state is State.SASL else MAX_COMMAND
        nl = self._in.find(b"\n")
        if nl < 0:
            if len(self._in) >= limit:
                self._discarding += len(self._in)
                del self._in[:]
            return None
        line = bytes(self._in[:nl + 1])
        del self._in[:nl + 1]
        if self._discarding:
            total, self._discarding = self._discarding + len(line), 0
            return total
        return line

    # ---- one line ------------------------------------------------------------------------

    def _handle_line(self, line: bytes | int) -> Event | None:
        if isinstance(line, int):                               # an overlong line, dropped
            self._log.append(("note", f"(a line of {line} octets, dropped)"))
            self._end_sasl()
            return self._error(_PeerError(f"line too long (RFC 2449 §4: at most {MAX_COMMAND} octets)"))
        raw = line[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        sasl = self.state is State.SASL
        self._log.append(("client", printable(raw)))
        limit = MAX_SASL_LINE if sasl else MAX_COMMAND
        try:
            if len(line) + (0 if line.endswith(b"\r\n") else 1) > limit:
                raise _PeerError(f"line too long (RFC 2449 §4: at most {MAX_COMMAND} octets)")
            if b"\x00" in raw:
                raise _PeerError("NUL bytes are not allowed in commands")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _PeerError("invalid UTF-8 in command") from None
            if sasl:
                event = self._sasl_response(text)
            else:
                event = self._command(text)
        except _PeerError as e:
            if sasl:
                self._end_sasl()                          # RFC 5034 §4: a failed exchange ends it
            return self._error(e)
        self._bad = 0
        return event

    def _command(self, text: str) -> Event | None:
        keyword, _, arg = text.lstrip(" ").partition(" ")
        keyword = keyword.upper()
        if not keyword.strip():
            raise _PeerError("empty command")
        if keyword == "STLS" and not self.tls_available:
            raise _PeerError("STLS is not offered by this server", bad=False)
        command = COMMANDS.get(keyword)
        if command is None:
            shown = printable(keyword.encode(), 40)
            raise _PeerError(f"unknown command {shown}")
        if self.state not in command.states:
            raise _PeerError(f"{keyword} is not valid in the {self.state.value} state (RFC 1939 §3)")
        if keyword in ("USER", "PASS", "AUTH") and not self.login_allowed:
            raise _PeerError(PLAINTEXT_REFUSED, "AUTH", bad=False)
        return command.handler(self, arg)

    @property
    def login_allowed(self) -> bool:
        """USER, PASS and AUTH may be used now: TLS is up, or the policy allows plaintext."""
        return self.plaintext_auth or self.tls_active

    def _error(self, e: _PeerError) -> Event | None:
        text = e.text
        self._errors += self.login is None      # before login; a user's "no such message" is no attack
        if e.bad:
            self._bad += 1
            if self._bad >= self.max_bad_commands:
                self._reply_err(f"{text}; {self._bad} bad commands in a row, closing the connection", e.code)
                self._close("too many bad commands")
                return self._closed
        if self._errors >= self.max_errors:          # Postfix's smtpd_hard_error_limit
            self._reply_err(f"{text}; too many errors, closing the connection", e.code)
            self._close("too many errors")
            return self._closed
        self._reply_err(text, e.code)
        return None

    # ---- replies ---------------------------------------------------------------------------

    def _reply(self, line: str) -> None:
        self._out.append(line.encode("utf-8") + b"\r\n")
        self._log.append(("server", printable(line.encode("utf-8"))))

    def _reply_err(self, text: str, code: str | None = None) -> None:
        self._reply(f"-ERR [{code}] {text}" if code else f"-ERR {text}")

    def _multiline(self, first: str, body: bytes, show: bool = False) -> None:
        """A +OK line and a dot-stuffed body; the transcript notes the body instead of dumping it."""
        self._out.append(first.encode("utf-8") + b"\r\n")
        self._out.append(stuff(body))
        self._log.append(("server", printable(first.encode("utf-8"))))
        if show:
            self._log.extend(("server", printable(x)) for x in body.split(b"\r\n") if x)
        else:
            self._log.append(("note", f"({_count_lines(body)} lines, {len(body)} bytes)"))
        self._log.append(("server", "."))

    def _close(self, reason: str) -> None:
        self.state = State.CLOSED
        self._closed = Closed(reason)
        self._waiting = None
        del self._in[:]

    def _wait(self, kind: type) -> None:
        self._waiting = kind

    def _answering(self, kind: type) -> None:
        if self._waiting is not kind:
            raise Pop3UsageError(f"no {kind.__name__} event is waiting for an answer")
        self._waiting = None

    # ---- answers from the adapter ---------------------------------------------------------

    def login_ok(self, messages: Sequence[DropMessage], account: str | None = None) -> None:
        """The login is good and the maildrop locked: enter TRANSACTION (RFC 1939 §4).

        `messages` is the maildrop in order (message n is messages[n-1]);
        `account` the address the login resolved to."""
        self._answering(Authenticate)
        self.state = State.TRANSACTION
        self.login = account or self._user
        self._user = None
        self._drop = messages
        self._total = sum(m.size for m in messages)
        self._deleted.clear()
        self._reply(f"+OK maildrop has {len(messages)} message{'s' if len(messages) != 1 else ''}"
                    f" ({self._total} octets)")

    def login_failed(self, code: str | None, text: str) -> None:
        """Bad login ("AUTH"), maildrop busy ("IN-USE", RFC 2449 §8), or store trouble ("SYS/TEMP")."""
        self._answering(Authenticate)
        self.state = State.AUTHORIZATION
        self._user = None
        if code == "AUTH":
            self._login_refused(text)
        else:
            self._reply_err(text, code)

    def scram_credentials(self, found: ScramCredentials) -> None:
        """The answer to ScramLookup: the login's stored keys (made-up ones if it has none)."""
        self._answering(ScramLookup)
        assert self._sasl is not None
        self._sasl_next(self._sasl.credentials(found))

    def _login_refused(self, text: str) -> Event | None:
        """-ERR [AUTH] for a failed login; the last one allowed closes the session."""
        self._auth_failures += 1
        if self._auth_failures >= self.max_auth_failures:
            self._reply_err(f"{text}; {self._auth_failures} failed logins, closing the connection", "AUTH")
            self._close("too many failed logins")
            return self._closed
        self._reply_err(text, "AUTH")
        return None

    def message(self, data: bytes) -> None:
        """The message asked for by `Retrieve`, in CRLF form (for TOP, the header alone will do)."""
        self._answering(Retrieve)
        ev, self._pending = self._pending, None
        assert ev is not None
        if ev.lines is None:
            self.stats["retr"] += 1
            self.stats["retr_bytes"] += len(data)
            self._retrieved.add(ev.number)
            self._multiline(f"+OK {len(data)} octets", data)
        else:
            data = top_of(data, ev.lines)
            self.stats["top"] += 1
            self.stats["top_bytes"] += len(data)
            self._multiline("+OK top of message follows", data)

    def message_failed(self, code: str | None, text: str) -> None:
        """The message could not be read (gone meanwhile, an I/O error)."""
        self._answering(Retrieve)
        self._pending = None
        self._reply_err(text, code)

    def update_done(self, error: str | None = None) -> None:
        """UPDATE finished (RFC 1939 §6): sign off, or say that deleted messages stayed."""
        self._answering(Update)
        if error is None:
            left = len(self._drop) - len(self._deleted)
            status = "maildrop empty" if not left else f"{left} message{'s' if left != 1 else ''} left"
            self._reply(f"+OK {self.hostname} POP3 {self.implementation} signing off ({status})")
        else:
            self._reply_err(f"some deleted messages not removed: {error}", "SYS/TEMP")
        self._close("QUIT")

    def tls_started(self) -> None:
        """TLS is up after STLS: forget everything said before it (RFC 2595 §4)."""
        self._answering(StartTls)
        self.tls_active = True
        self._user = None
        del self._in[:]                 # no plaintext command may survive into TLS (CVE-2011-0411)

    def timed_out(self) -> None:
        """The autologout timer expired (RFC 1939 §3): close without UPDATE and without a reply."""
        self._log.append(("note", "(autologout: the client was idle too long; closed without UPDATE, "
                                  "RFC 1939 §3)"))
        self._close("timeout")

    def abort(self, reason: str, text: str | None = None) -> None:
        """Close now (the server stops, say), with an optional last -ERR line; no UPDATE."""
        if text:
            self._reply_err(text, "SYS/TEMP")
        self._close(reason)

    # ---- AUTHORIZATION commands ------------------------------------------------------------

    def _cmd_user(self, arg: str) -> Event | None:
        name = arg.strip()
        if not name:
            raise _PeerError("USER needs a name: USER mafudge@syr.edu")
        self._user = name
        self._reply("+OK send PASS")
        return None

    def _cmd_pass(self, arg: str) -> Event | None:
        if self._user is None:
            raise _PeerError("send USER first (RFC 1939 §7)")
        if not arg:
            raise _PeerError("PASS needs a password")
        self._wait(Authenticate)
        return Authenticate(self._user, arg, "USER")       # the rest of the line: spaces belong to it

    def _cmd_auth(self, arg: str) -> Event | None:
        parts = arg.split()
        if not parts:
            self._multiline("+OK supported SASL mechanisms follow",
                            "".join(f"{m}\r\n" for m in MECHANISMS).encode(), show=True)
            return None
        mechanism = parts[0].upper()
        if mechanism not in MECHANISMS:
            raise _PeerError(f"unsupported SASL mechanism {printable(parts[0].encode(), 40)} "
                             f"(try {', '.join(MECHANISMS)})", bad=False)
        if len(parts) > 2:
            raise _PeerError(f"syntax: AUTH {mechanism} [initial-response]")
        self._user = None
        initial = self._sasl_decode("" if parts[1] == "=" else parts[1]) if len(parts) == 2 else None
        self._sasl = SaslExchange(mechanism)
        return self._sasl_next(self._sasl.start(initial))

    def _sasl_response(self, text: str) -> Event | None:
        if text.strip() == "*":
            raise _PeerError("authentication cancelled", bad=False)      # RFC 5034 §4
        assert self._sasl is not None
        self.state = State.AUTHORIZATION
        return self._sasl_next(self._sasl.respond(self._sasl_decode(text.strip())))

    def _sasl_decode(self, b64: str) -> bytes:
        try:
            return binascii.a2b_base64(b64.encode("ascii"), strict_mode=True) if b64 else b""
        except (binascii.Error, UnicodeEncodeError):
            self._end_sasl()
            raise _PeerError("invalid base64 in SASL response") from None

    def _end_sasl(self) -> None:
        self._sasl = None
        if self.state is State.SASL:
            self.state = State.AUTHORIZATION

    def _sasl_next(self, step: Step) -> Event | None:
        """What the exchange said: a "+" challenge, an event to wait on, or a failed login."""
        if isinstance(step, Challenge):
            self.state = State.SASL
            line = "+ " + binascii.b2a_base64(step.data, newline=False).decode()
            self._out.append(line.encode() + b"\r\n")
            self._log.append(("server", line))
            return None
        if isinstance(step, ScramLookup):
            self._wait(ScramLookup)
            return step
        self._sasl = None
        if isinstance(step, SaslFailure):             # a failed login too (a spray of them must end)
            text = step.text[0].lower() + step.text[1:] if step.text[1:2].islower() else step.text
            return self._login_refused(text)
        self._user = step.login
        self._wait(Authenticate)
        return step

    def _cmd_stls(self, arg: str) -> Event | None:
        if self.tls_active:
            raise _PeerError("TLS is already active", bad=False)
        self._reply("+OK begin TLS negotiation")
        self._wait(StartTls)
        return StartTls()

    def _cmd_capa(self, arg: str) -> Event | None:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "LOGIN-DELAY 0"]
        if self.state is State.AUTHORIZATION:
            if self.login_allowed:
                caps[:0] = ["USER", "SASL " + " ".join(MECHANISMS)]
            if self.tls_available and not self.tls_active:
                caps.append("STLS")
        caps.append(f"IMPLEMENTATION {self.implementation}")
        self._multiline("+OK capability list follows", "".join(c + "\r\n" for c in caps).encode(), show=True)
        return None

    def _cmd_quit(self, arg: str) -> Event | None:
        if self.state is State.AUTHORIZATION:
            self._reply(f"+OK {self.hostname} POP3 {self.implementation} signing off")
            self._close("QUIT")
            return self._closed
        self.state = State.UPDATE
        delete = tuple(self._drop[n - 1].uid for n in sorted(self._deleted))
        seen = tuple(self._drop[n - 1].uid for n in sorted(self._retrieved) if n not in self._deleted)
        self._wait(Update)
        return Update(delete, seen)

    # ---- TRANSACTION commands ------------------------------------------------------------------

    def _args(self, arg: str, least: int, most: int, usage: str) -> list[str]:
        parts = arg.split()
        if not least <= len(parts) <= most:
            raise _PeerError(f"syntax: {usage}")
        return parts

    def _number(self, text: str, what: str = "message number") -> int:
        if not _NUMBER.fullmatch(text):
            raise _PeerError(f"invalid {what} {printable(text.encode(), 20)}")
        if len(text.lstrip("0")) > MAX_NUMBER_DIGITS:
            if what == "message number":
                raise _PeerError(self._no_such(), bad=False)
            raise _PeerError(f"{what} too large")
        return int(text)

    def _no_such(self) -> str:
        return f"no such message (this maildrop has messages 1 to {len(self._drop)})" if self._drop \
            else "no such message (the maildrop is empty)"

    def _message(self, text: str) -> int:
        """A message number that exists and is not marked deleted (RFC 1939 §5)."""
        n = self._number(text)
        if not 1 <= n <= len(self._drop):
            raise _PeerError(self._no_such(), bad=False)
        if n in self._deleted:
            raise _PeerError(f"message {n} already deleted", bad=False)
        return n

    def _cmd_stat(self, arg: str) -> Event | None:
        self._args(arg, 0, 0, "STAT")
        count = len(self._drop) - len(self._deleted)
        self._reply(f"+OK {count} {self._total - sum(self._deleted.values())}")
        return None

    def _listing(self, arg: str, name: str, entry: Callable[[int, DropMessage], str]) -> None:
        parts = self._args(arg, 0, 1, f"{name} [message-number]")
        if parts:
            n = self._message(parts[0])
            self._reply(f"+OK {entry(n, self._drop[n - 1])}")
            return
        deleted = self._deleted
        body = "".join(f"{entry(n, m)}\r\n" for n, m in enumerate(self._drop, 1) if n not in deleted)
        count = len(self._drop) - len(deleted)
        if name == "LIST":
            first = f"+OK {count} message{'s' if count != 1 else ''} ({self._total - sum(deleted.values())} octets)"
        else:
            first = f"+OK {count} unique-id{'s' if count != 1 else ''} follow"
        self._multiline(first, body.encode())

    def _cmd_list(self, arg: str) -> Event | None:
        self._listing(arg, "LIST", lambda n, m: f"{n} {m.size}")
        return None

    def _cmd_uidl(self, arg: str) -> Event | None:
        self._listing(arg, "UIDL", lambda n, m: f"{n} {uidl_for(m.key)}")
        return None

    def _cmd_retr(self, arg: str) -> Event | None:
        n = self._message(self._args(arg, 1, 1, "RETR message-number")[0])
        self._pending = Retrieve(n, self._drop[n - 1].uid, None)
        self._wait(Retrieve)
        return self._pending

    def _cmd_top(self, arg: str) -> Event | None:
        parts = self._args(arg, 2, 2, "TOP message-number lines")
        n = self._message(parts[0])
        lines = self._number(parts[1], "number of lines")
        self._pending = Retrieve(n, self._drop[n - 1].uid, lines)
        self._wait(Retrieve)
        return self._pending

    def _cmd_dele(self, arg: str) -> Event | None:
        n = self._message(self._args(arg, 1, 1, "DELE message-number")[0])
        size = self._drop[n - 1].size
        self._deleted[n] = size
        self.stats["dele"] += 1
        self.stats["dele_bytes"] += size
        self._reply(f"+OK message {n} deleted")
        return None

    def _cmd_noop(self, arg: str) -> Event | None:
        self._args(arg, 0, 0, "NOOP")
        self._reply("+OK")
        return None

    def _cmd_rset(self, arg: str) -> Event | None:
        self._args(arg, 0, 0, "RSET")
        self._deleted.clear()
        self.stats["dele"] = self.stats["dele_bytes"] = 0
        count = len(self._drop)
        self._reply(f"+OK maildrop has {count} message{'s' if count != 1 else ''} ({self._total} octets)")
        return None


_AUTH = frozenset({State.AUTHORIZATION})
_TRANS = frozenset({State.TRANSACTION})
_BOTH = _AUTH | _TRANS

# Which command is valid in which state (RFC 1939 §4-§7, RFC 2449 §5, RFC 2595 §4, RFC 5034 §4).
COMMANDS: dict[str, _Command] = {
    "USER": _Command(_AUTH, Pop3Connection._cmd_user),
    "PASS": _Command(_AUTH, Pop3Connection._cmd_pass),
    "AUTH": _Command(_AUTH, Pop3Connection._cmd_auth),
    "STLS": _Command(_AUTH, Pop3Connection._cmd_stls),
    "CAPA": _Command(_BOTH, Pop3Connection._cmd_capa),
    "QUIT": _Command(_BOTH, Pop3Connection._cmd_quit),
    "STAT": _Command(_TRANS, Pop3Connection._cmd_stat),
    "LIST": _Command(_TRANS, Pop3Connection._cmd_list),
    "UIDL": _Command(_TRANS, Pop3Connection._cmd_uidl),
    "RETR": _Command(_TRANS, Pop3Connection._cmd_retr),
    "TOP": _Command(_TRANS, Pop3Connection._cmd_top),
    "DELE": _Command(_TRANS, Pop3Connection._cmd_dele),
    "NOOP": _Command(_TRANS, Pop3Connection._cmd_noop),
    "RSET": _Command(_TRANS, Pop3Connection._cmd_rset),
}
