"""The MUA's IMAP4rev1 client without I/O: commands queued, server bytes in, typed events out
(RFC 3501, RFC 9051 as maillab's server speaks them).

`ImapClientConnection` owns one connection's client state: the tags in flight, what the
server offered (CAPABILITY, from the response or a `[CAPABILITY ...]` code), the octets
still to send (h2's `data_to_send()` buffer: a synchronizing literal `{n}` waits in it for
the server's `+`, RFC 9051 §7.5) and the transcript.  Cutting the server's bytes into
responses and tokens (atoms, quoted strings, literals and literal8, NIL, lists; split
anywhere; bounded) is `imap_wire.ResponseReader`'s job; this module gives the values
their meaning:

    conn = ImapClientConnection()
    tag = conn.login(user, password)           # every command method returns its tag
    conn.data_to_send()                        # -> octets for the socket
    conn.receive_data(chunk)                   # b"" = the server closed
    conn.next_event()                          # NEED_DATA, or one of the events below
    conn.transcript()                          # (direction, text) lines since the last look

Events: `Greeting`, `Untagged` (a status response: OK/NO/BAD/BYE with its `Code`),
`Capability`, `Exists`, `Expunge`, `Recent`, `Flags`, `ListItem`, `StatusItems`, `Search`,
`Fetch` (UID, FLAGS, RFC822.SIZE, INTERNALDATE, `Envelope`, MODSEQ, BODY[...] sections as
bytes), `Other` (an untagged response this module does not interpret), `Continuation`,
`Completed` (a tagged OK/NO/BAD), `StartTls` (STARTTLS accepted: start TLS, then
`tls_started()`) and `Closed` (the end: EOF, BYE then EOF, or the server broke the protocol).

Invariants: no exception leaves `receive_data`: whatever the server sends, the worst is a
`Closed` event whose reason says what was wrong, after which nothing more is parsed.  Bytes
after the OK to STARTTLS and before `tls_started()` are dropped, never parsed (RFC 9051
§6.2.1; a plaintext injection).  Mailbox names are Unicode here and modified UTF-7 on the
wire (RFC 3501 §5.1.3, `store.names`).  The LOGIN password and AUTHENTICATE data never
reach the transcript; a literal shows as "{n} octets".  `uid_move` without MOVE is UID
COPY, then (only if the copy worked) UID STORE +FLAGS.SILENT (\\Deleted) and UID EXPUNGE
(RFC 6851 §3.3), reported as one `Completed` under the COPY's tag.
"""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal as Kind, Sequence

from ..base.events import Direction
from ..base.sansio import NEED_DATA, Closed, Sentinel, StartTls
from ..store.names import decode_mutf7, encode_mutf7
from .imap_wire import ImapWireError, Literal, Response, ResponseReader, Secret, Value, command, quote

Status = Kind["OK", "NO", "BAD"]
StoreOp = Kind["+FLAGS", "-FLAGS", "FLAGS"]
INT_CODES = ("UIDVALIDITY", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ", "APPENDLIMIT")


class ImapProtocolError(Exception):
    """What the server sent means nothing in IMAP; str() says what."""


@dataclass(frozen=True, slots=True)
class Code:
    """A response code (RFC 9051 §7.1): its name upper case and its value, interpreted where
    known: an int (UIDVALIDITY, UIDNEXT, UNSEEN, HIGHESTMODSEQ), a tuple of str (CAPABILITY,
    PERMANENTFLAGS), (uidvalidity, uid set) for APPENDUID, (uidvalidity, source set, destination
    set) for COPYUID, else the text after the name ("" if none)."""
    name: str
    value: object = ""


@dataclass(frozen=True, slots=True)
class Greeting:
    status: str                   # OK, PREAUTH or BYE
    code: Code | None
    text: str


@dataclass(frozen=True, slots=True)
class Untagged:
    """An untagged status response: "* OK [UIDVALIDITY 7] UIDs valid", "* BYE ..."."""
    status: str
    code: Code | None
    text: str


@dataclass(frozen=True, slots=True)
class Capability:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exists:
    count: int


@dataclass(frozen=True, slots=True)
class Expunge:
    seq: int


@dataclass(frozen=True, slots=True)
class Recent:
    count: int


@dataclass(frozen=True, slots=True)
class Flags:
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListItem:
    flags: tuple[str, ...]
    delimiter: str | None
    name: str                     # decoded from modified UTF-7 (as sent if it is not valid mUTF-7)


@dataclass(frozen=True, slots=True)
class StatusItems:
    mailbox: str
    items: dict[str, int]


@dataclass(frozen=True, slots=True)
class Search:
    numbers: tuple[int, ...]      # UIDs after UID SEARCH, sequence numbers after SEARCH


@dataclass(frozen=True, slots=True)
class Address:
    """One ENVELOPE address (RFC 9051 §7.5.2); `group` names the group it belongs to, if any."""
    name: str | None
    mailbox: str | None
    host: str | None
    group: str = ""

    @property
    def address(self) -> str:
        return f"{self.mailbox}@{self.host}" if self.host else (self.mailbox or "")


@dataclass(frozen=True, slots=True)
class Envelope:
    date: str | None
    subject: str | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class Fetch:
    seq: int
    uid: int | None = None
    flags: tuple[str, ...] | None = None
    size: int | None = None                   # RFC822.SIZE
    internaldate: str | None = None
    envelope: Envelope | None = None
    modseq: int | None = None
    sections: dict[str, bytes] = field(default_factory=dict)   # "BODY[]", "BODY[HEADER.FIELDS (FROM)]"
    other: dict[str, Value] = field(default_factory=dict)      # BODYSTRUCTURE and the like, as parsed


@dataclass(frozen=True, slots=True)
class Other:
    """An untagged response not interpreted here (NAMESPACE, ENABLED, ID, ...)."""
    name: str
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Continuation:
    """A "+" the connection did not consume itself (IDLE's "+ idling")."""
    text: str


@dataclass(frozen=True, slots=True)
class Completed:
    tag: str
    status: Status
    code: Code | None
    text: str
    command: str                  # the verb: "LOGIN", "UID FETCH", "MOVE" (also for the fallback)


Event = (Greeting | Untagged | Capability | Exists | Expunge | Recent | Flags | ListItem | StatusItems
         | Search | Fetch | Other | Continuation | Completed | StartTls | Closed)


@dataclass(slots=True)
class _Segment:
    tag: str
    data: bytes
    wait: bool                    # goes only after the server's "+" (a synchronizing literal)


@dataclass(slots=True)
class _Step:
    """A command of a chain (the MOVE fallback): what to send next when this one is OK."""
    public: str
    command: str
    then: Callable[[Code | None], None] | None
    first_code: Code | None = None


def mailbox_arg(name: str) -> str:
    """A mailbox name as a command argument: modified UTF-7, quoted."""
    return quote(encode_mutf7(name))


def _text(value: Value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise ImapProtocolError(f"a list where a string belongs: {value!r}")


def _number(value: Value) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ImapProtocolError(f"a number expected, not {value!r}")


def _list(value: Value) -> list[Value]:
    if isinstance(value, list):
        return value
    raise ImapProtocolError(f"a parenthesised list expected, not {value!r}")


def _words(value: Value) -> tuple[str, ...]:
    return tuple(w for w in (_text(v) for v in _list(value)) if w is not None)


def _addresses(value: Value) -> tuple[Address, ...]:
    """An ENVELOPE address list; groups (RFC 9051 §7.5.2: host NIL) become each member's `group`."""
    if value is None:
        return ()
    out: list[Address] = []
    group = ""
    for item in _list(value):
        parts = [_text(v) for v in _list(item)]
        if len(parts) != 4:
            raise ImapProtocolError(f"an address of {len(parts)} fields")
        name, _adl, mailbox, host = parts
        if host is None:
            group = mailbox or ""            # a group's start, or (mailbox NIL) its end
            continue
        out.append(Address(name, mailbox, host, group))
    return tuple(out)


def envelope_of(value: Value) -> Envelope:
    fields = _list(value)
    if len(fields) != 10:
        raise ImapProtocolError(f"an ENVELOPE of {len(fields)} fields")
    date, subject = _text(fields[0]), _text(fields[1])
    lists = [_addresses(v) for v in fields[2:8]]
    return Envelope(date, subject, *lists, _text(fields[8]), _text(fields[9]))


def code_of(text: str) -> Code | None:
    if not text:
        return None
    name, _, rest = text.partition(" ")
    name = name.upper()
    words = rest.strip("()").split()
    if name in INT_CODES and rest.isdigit():
        return Code(name, int(rest))
    if name in ("CAPABILITY", "PERMANENTFLAGS"):
        return Code(name, tuple(words))
    if name == "APPENDUID" and len(words) == 2 and words[0].isdigit():
        return Code(name, (int(words[0]), words[1]))
    if name == "COPYUID" and len(words) == 3 and words[0].isdigit():
        return Code(name, (int(words[0]), words[1], words[2]))
    return Code(name, rest)


def _fetch(seq: int, items: list[Value]) -> Fetch:
    if len(items) % 2:
        raise ImapProtocolError("a FETCH item without its value")
    found: dict[str, object] = {"sections": {}, "other": {}}
    for name, value in zip(items[::2], items[1::2]):
        if not isinstance(name, str):
            raise ImapProtocolError(f"a FETCH item name expected, not {name!r}")
        key = name.upper().replace("BODY.PEEK[", "BODY[", 1).replace("BINARY.PEEK[", "BINARY[", 1)
        if key == "UID":
            found["uid"] = _number(value)
        elif key == "FLAGS":
            found["flags"] = _words(value)
        elif key == "RFC822.SIZE":
            found["size"] = _number(value)
        elif key == "INTERNALDATE":
            found["internaldate"] = _text(value)
        elif key == "ENVELOPE":
            found["envelope"] = envelope_of(value)
        elif key == "MODSEQ":
            found["modseq"] = _number(next(iter(_list(value)), None))
        elif "[" in key or key in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
            found["sections"][key] = value.encode("utf-8") if isinstance(value, str) else value or b""  # type: ignore[index]
        else:
            found["other"][key] = value                                   # type: ignore[index]
    return Fetch(seq, **found)  # type: ignore[arg-type]


def _untagged(response: Response) -> Event:
    values = response.values
    if response.status:
        return Untagged(response.status, code_of(response.code), response.text)
    first = values[0]
    assert isinstance(first, str)                  # the reader's first value is an atom
    if first.isdigit() and len(values) >= 2 and isinstance(values[1], str):
        n, kind = int(first), values[1].upper()
        if kind == "EXISTS":
            return Exists(n)
        if kind == "EXPUNGE":
            return Expunge(n)
        if kind == "RECENT":
            return Recent(n)
        if kind == "FETCH" and len(values) == 3:
            return _fetch(n, _list(values[2]))
        raise ImapProtocolError(f"unknown message data {kind!r}")
    name, args = first.upper(), values[1:]
    if name == "CAPABILITY":
        return Capability(tuple(_text(a) or "" for a in args))
    if name == "FLAGS" and len(args) == 1:
        return Flags(_words(args[0]))
    if name == "LIST" and len(args) == 3:
        return ListItem(_words(args[0]), _text(args[1]), _mailbox(args[2]))
    if name == "STATUS" and len(args) == 2:
        pairs = _list(args[1])
        return StatusItems(_mailbox(args[0]), {str(k).upper(): _number(v) for k, v in zip(pairs[::2], pairs[1::2])})
    if name == "SEARCH":
        return Search(tuple(_number(a) for a in args if not isinstance(a, list)))   # (MODSEQ n) dropped
    return Other(name, tuple(args))


def _mailbox(value: Value) -> str:
    wire = _text(value) or ""
    try:
        return decode_mutf7(wire)
    except ValueError:
        return wire


class ImapClientConnection:
    def __init__(self, *, tag_prefix: str = "A") -> None:
        self.capabilities: frozenset[str] = frozenset()   # upper case, as last announced
        self.idling = False                               # the server said "+" to our IDLE
        self._reader = ResponseReader()
        self._prefix = tag_prefix
        self._counter = 0
        self._segments: deque[_Segment] = deque()
        self._pending: dict[str, _Step] = {}              # tag -> its command
        self._events: deque[Event] = deque()
        self._lines: list[tuple[Direction, str]] = []
        self._greeted = False
        self._bye = ""
        self._idle_tag = ""
        self._tls_pending = False
        self._closed = False

    # ---- the adapter's side -----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self._closed:
            return
        if self._tls_pending:
            if data:
                self._note(f"({len(data)} octets before TLS discarded, RFC 9051 §6.2.1)")
            else:
                self._close("the server closed the connection before TLS")
            return
        if not data:
            self._close(f"the server said BYE: {self._bye}" if self._bye else "the server closed the connection")
            return
        try:
            responses = self._reader.feed(data)
        except ImapWireError as exc:
            self._close(f"protocol error: {exc}")
            return
        for response in responses:
            self._lines.append(("server", response.shown))
            try:
                self._handle(response)
            except ImapProtocolError as exc:
                self._close(f"protocol error: {exc} in {response.shown[:80]!r}")
            if self._closed:
                return
            if self._tls_pending:
                if response is not responses[-1]:
                    self._note("(what followed the OK to STARTTLS discarded, RFC 9051 §6.2.1)")
                self._reader = ResponseReader()
                return

    def next_event(self) -> Event | Sentinel:
        return self._events.popleft() if self._events else NEED_DATA

    def data_to_send(self) -> bytes:
        out = bytearray()
        while self._segments and not self._segments[0].wait and not self._tls_pending:
            out += self._segments.popleft().data
        return bytes(out)

    def transcript(self) -> list[tuple[Direction, str]]:
        lines, self._lines = self._lines, []
        return lines

    def tls_started(self) -> None:
        """TLS is up after StartTls: what the server offered before it no longer counts."""
        if not self._tls_pending:
            raise RuntimeError("tls_started() without a StartTls event")
        self._tls_pending = False
        self.capabilities = frozenset()

    def connection_lost(self, reason: str) -> None:
        """The adapter's read or write failed, or timed out (`reason` says which)."""
        self._close(reason)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> tuple[str, ...]:
        """The tags whose completion is awaited."""
        return tuple(self._pending)

    # ---- commands: each returns the tag its Completed will carry -----------------------------

    def capability(self) -> str:
        return self._command("CAPABILITY")

    def starttls(self) -> str:
        return self._command("STARTTLS")

    def login(self, user: str, password: str) -> str:
        return self._command("LOGIN", quote(user), Secret(password))

    def authenticate_plain(self, user: str, password: str) -> str:
        """AUTHENTICATE PLAIN (RFC 4616), the response inline if SASL-IR is offered (RFC 4959)."""
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        if "SASL-IR" in self.capabilities:
            return self._command("AUTHENTICATE", "PLAIN", blob, shown="PLAIN ***")
        tag = self._command("AUTHENTICATE", "PLAIN")
        self._segments.append(_Segment(tag, blob.encode() + b"\r\n", wait=True))
        self._lines.append(("client", "*** (the SASL response, after the server's +)"))
        return tag

    def list_(self, reference: str = "", pattern: str = "*") -> str:
        return self._command("LIST", mailbox_arg(reference), mailbox_arg(pattern))

    def status(self, mailbox: str, items: Sequence[str] = ("MESSAGES", "UNSEEN", "UIDNEXT")) -> str:
        return self._command("STATUS", mailbox_arg(mailbox), f"({' '.join(items)})")

    def select(self, mailbox: str, readonly: bool = False) -> str:
        return self._command("EXAMINE" if readonly else "SELECT", mailbox_arg(mailbox))

    def fetch(self, seq_set: str, items: str) -> str:
        return self._command("FETCH", _set(seq_set), _items(items))

    def uid_fetch(self, uid_set: str, items: str) -> str:
        return self._command("UID FETCH", _set(uid_set), _items(items))

    def uid_search(self, criteria: str = "ALL") -> str:
        _no_line_break(criteria)
        return self._command("UID SEARCH", criteria)

    def uid_store(self, uid_set: str, op: StoreOp, flags: Iterable[str], silent: bool = False) -> str:
        if op not in ("+FLAGS", "-FLAGS", "FLAGS"):
            raise ValueError(f"{op!r}: not a STORE operation")
        return self._command("UID STORE", _set(uid_set), op + (".SILENT" if silent else ""), _flag_list(flags))

    def uid_expunge(self, uid_set: str) -> str:
        """UID EXPUNGE (RFC 4315 §2.1; UIDPLUS)."""
        return self._command("UID EXPUNGE", _set(uid_set))

    def expunge(self) -> str:
        return self._command("EXPUNGE")

    def uid_move(self, uid_set: str, mailbox: str) -> str:
        """UID MOVE (RFC 6851), or the COPY / STORE \\Deleted / EXPUNGE fallback (module docstring)."""
        if "MOVE" in self.capabilities:
            return self._command("UID MOVE", _set(uid_set), mailbox_arg(mailbox))
        copy = self._command("UID COPY", _set(uid_set), mailbox_arg(mailbox))

        def expunge(code: Code | None) -> None:
            tag = self.uid_expunge(uid_set) if "UIDPLUS" in self.capabilities else self.expunge()
            self._pending[tag] = _Step(copy, "MOVE", None, code)

        def store(code: Code | None) -> None:
            tag = self.uid_store(uid_set, "+FLAGS", ["\\Deleted"], silent=True)
            self._pending[tag] = _Step(copy, "MOVE", expunge, code)

        self._pending[copy] = _Step(copy, "MOVE", store)
        return copy

    def append(self, mailbox: str, message: bytes, flags: Iterable[str] = (), date: str = "") -> str:
        """APPEND with the message as a literal: `{n+}` under LITERAL+ (RFC 7888), else `{n}` and
        the octets once the server says "+"."""
        args: list[str | Literal] = [mailbox_arg(mailbox)]
        if flags:
            args.append(_flag_list(flags))
        if date:
            args.append(quote(date))
        if "LITERAL+" in self.capabilities:
            return self._command("APPEND", *args, Literal(message))
        tag = self._command("APPEND", *args, f"{{{len(message)}}}")
        self._segments.append(_Segment(tag, message + b"\r\n", wait=True))
        self._note(f"({len(message)} octets of the message, after the server's +)")
        return tag

    def idle(self) -> str:
        """IDLE (RFC 2177): a `Continuation` says it runs; untagged news comes until `done()`."""
        self._idle_tag = self._command("IDLE")
        return self._idle_tag

    def done(self) -> None:
        """End IDLE: its `Completed` follows."""
        if not self._idle_tag:
            raise RuntimeError("done() without idle()")
        self._segments.append(_Segment(self._idle_tag, b"DONE\r\n", wait=False))
        self._lines.append(("client", "DONE"))
        self._idle_tag = ""

    def logout(self) -> str:
        return self._command("LOGOUT")

    # ---- inside ------------------------------------------------------------------------------

    def _command(self, verb: str, *args: str | Secret | Literal, shown: str = "") -> str:
        """Queue a command; `shown` replaces its arguments in the transcript (a secret atom)."""
        if self._closed:
            raise RuntimeError(f"{verb} on a closed connection")
        self._counter += 1
        tag = f"{self._prefix}{self._counter:04d}"
        wire, line = command(tag, verb, *args)
        self._segments.append(_Segment(tag, wire, wait=False))
        self._pending[tag] = _Step(tag, verb, None)
        self._lines.append(("client", f"{tag} {verb} {shown}" if shown else line))
        return tag

    def _note(self, text: str) -> None:
        self._lines.append(("note", text))

    def _close(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._note(reason)
            self._events.append(Closed(reason))

    def _handle(self, response: Response) -> None:
        if not self._greeted:
            self._greeted = True
            if response.tag != "*" or response.status not in ("OK", "PREAUTH", "BYE"):
                raise ImapProtocolError("the greeting is no OK, PREAUTH or BYE")
            self._greeting(response)
            return
        if response.tag == "+":
            self._continuation(response.text)
        elif response.tag == "*":
            self._on_untagged(response)
        else:
            self._tagged(response)

    def _greeting(self, response: Response) -> None:
        code = code_of(response.code)
        self._learn(code)
        if response.status == "BYE":
            self._bye = response.text
        self._events.append(Greeting(response.status, code, response.text))

    def _continuation(self, text: str) -> None:
        held = next((s for s in self._segments if s.wait), None)
        if held is not None and held.tag in self._pending:
            held.wait = False                        # the literal (or SASL response) may go now
        elif self._idle_tag in self._pending:
            self.idling = True
            self._events.append(Continuation(text))
        else:
            raise ImapProtocolError("a continuation request nobody asked for")

    def _on_untagged(self, response: Response) -> None:
        event = _untagged(response)
        if isinstance(event, Capability):
            self.capabilities = frozenset(n.upper() for n in event.names)
        elif isinstance(event, Untagged):
            self._learn(event.code)
            if event.status == "BYE":
                self._bye = event.text
        self._events.append(event)

    def _tagged(self, response: Response) -> None:
        step = self._pending.pop(response.tag, None)
        if step is None:
            raise ImapProtocolError(f"a completion for tag {response.tag!r}, which is not in flight")
        status = response.status
        if status not in ("OK", "NO", "BAD"):
            raise ImapProtocolError(f"a tagged {status or 'response'} (only OK, NO or BAD complete a command)")
        code = code_of(response.code)
        self._learn(code)
        self._segments = deque(s for s in self._segments if s.tag != response.tag)   # a refused literal stays unsent
        if response.tag == self._idle_tag:
            self._idle_tag = ""
        if step.command == "IDLE":
            self.idling = False
        if status == "OK" and step.then is not None:
            step.then(step.first_code or code)        # the chain's next command; its Completed waits
            return
        if status == "OK" and step.command == "STARTTLS":
            self._tls_pending = True
            self._events.append(Completed(response.tag, status, code, response.text, step.command))
            self._events.append(StartTls())
            return
        self._events.append(Completed(step.public, status, step.first_code or code if status == "OK" else code,
                                      response.text, step.command))

    def _learn(self, code: Code | None) -> None:
        if code is not None and code.name == "CAPABILITY":
            self.capabilities = frozenset(n.upper() for n in code.value)   # type: ignore[attr-defined]


def _no_line_break(text: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"{text!r}: a line break has no place in an IMAP command")


def _set(value: str) -> str:
    """A sequence set ("1:*", "4,7:9") — anything else is the caller's bug."""
    if not value or any(c not in "0123456789:,*" for c in value):
        raise ValueError(f"{value!r}: not a sequence set")
    return value


def _items(items: str) -> str:
    _no_line_break(items)
    return items if items.startswith("(") or " " not in items else f"({items})"


def _flag_list(flags: Iterable[str]) -> str:
    flags = list(flags)
    for f in flags:
        if not f or any(c in f for c in ' ()"{\r\n'):
            raise ValueError(f"{f!r}: not a flag")
    return f"({' '.join(flags)})"
