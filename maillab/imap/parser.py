"""The IMAP command grammar (RFC 3501 §9 and the extensions we offer): RawCommand → Command.

`parse_command` turns one framed command (line segments and literals, see
framing.py) into a `Command`: tag, upper-case name, the UID prefix, and the
arguments as a small frozen dataclass per command.  Sequence sets stay
ranges (`SeqSet`), never lists of numbers, so `1:4294967295` costs nothing;
SEARCH keys become a tree of tuples (search.py evaluates them); FETCH items
become `FetchItem`s carrying the exact label of their response.

Errors are `ParseError`s: the client broke the grammar, answered BAD (with
the tag when it could be read).  The parser is lenient where real clients
and people at a terminal are: runs of spaces count as one, command names and
keywords are case-insensitive, 8-bit octets are allowed in quoted strings
(UTF-8 SEARCH arguments).  It is strict where safety needs it: no NUL, no
CR/LF inside quoted strings, numbers within 32 bits (RFC 3501 §4.2).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import Any, Callable

from .framing import RawCommand, tag_of

MAX_NUMBER = 4294967295             # RFC 3501 §4.2: unsigned 32-bit
MAX_SEARCH_DEPTH = 64               # nesting of NOT/OR/parentheses
MAX_SET_RANGES = 10_000             # ranges in one sequence set

_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x00, 0x20)) | {0x7f}
ATOM_CHARS = frozenset(range(0x01, 0x100)) - _ATOM_SPECIALS
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
LIST_CHARS = ATOM_CHARS | {ord("%"), ord("*"), ord("]")}
TAG_CHARS = ASTRING_CHARS - {ord("+")}
FETCH_ATT_CHARS = ATOM_CHARS - {ord("["), ord("<")}

MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}


class ParseError(Exception):
    """Bad syntax (BAD).  `tag` is the command's tag when known."""

    def __init__(self, text: str, tag: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag


# ---- values ------------------------------------------------------------------------------

STAR = 0                            # "*" in a sequence set: the largest number in use


@dataclass(frozen=True, slots=True)
class SeqSet:
    """A sequence set as written: (low, high) pairs, STAR for "*" (RFC 3501 §9 sequence-set)."""
    ranges: tuple[tuple[int, int], ...]

    def __str__(self) -> str:
        def one(n: int) -> str:
            return "*" if n == STAR else str(n)
        return ",".join(one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges)


@dataclass(frozen=True, slots=True)
class Section:
    """BODY[<part>.<text>] (RFC 3501 §6.4.5): part numbers and HEADER/HEADER.FIELDS/…/TEXT/MIME."""
    part: tuple[int, ...] = ()
    text: str = ""                  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()    # for HEADER.FIELDS (NOT), lower case


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One FETCH data item; `label` is its name in the response ("BODY[HEADER]<0>")."""
    name: str                       # FLAGS, UID, ENVELOPE, BODY, BODYSTRUCTURE, BODY[], RFC822, ...
    label: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = True               # False: fetching it sets \Seen


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: str                       # upper case; "FETCH" for UID FETCH too (uid=True)
    uid: bool = False
    args: Any = None

    @property
    def label(self) -> str:
        return f"UID {self.name}" if self.uid else self.name


@dataclass(frozen=True, slots=True)
class Login:
    user: str
    password: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    mechanism: str
    initial: bytes | None           # SASL-IR (RFC 4959); b"" for "="


@dataclass(frozen=True, slots=True)
class MailboxArg:
    mailbox: str


@dataclass(frozen=True, slots=True)
class Select:
    mailbox: str
    condstore: bool = False


@dataclass(frozen=True, slots=True)
class Rename:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ListArgs:
    reference: str
    patterns: tuple[str, ...]
    select: frozenset[str] = frozenset()    # LIST-EXTENDED selection options (RFC 5258)
    returns: frozenset[str] = frozenset()
    status: tuple[str, ...] = ()            # RETURN (STATUS (...)) (RFC 5819)


@dataclass(frozen=True, slots=True)
class Status:
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Append:
    mailbox: str
    flags: tuple[str, ...]
    date: float | None
    message: bytes


@dataclass(frozen=True, slots=True)
class Fetch:
    seqset: SeqSet
    items: tuple[FetchItem, ...]
    changedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Store:
    seqset: SeqSet
    mode: str                       # "set", "add", "remove"
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Search:
    charset: str | None
    key: tuple


@dataclass(frozen=True, slots=True)
class Copy:
    seqset: SeqSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Expunge:
    uids: SeqSet | None             # UID EXPUNGE (RFC 4315)


@dataclass(frozen=True, slots=True)
class Enable:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Id:
    params: tuple[tuple[str, str | None], ...] | None


# ---- the cursor over line segments and literals --------------------------------------------

class Cursor:
    def __init__(self, raw: RawCommand) -> None:
        self.lines = raw.lines
        self.literals = raw.literals
        self.i = 0
        self.line = raw.lines[0]
        self.pos = 0
        self.depth = 0
        for segment in raw.lines:
            if b"\x00" in segment:
                raise ParseError("NUL octet in command")

    def peek(self) -> int:
        """The next octet of the current line, or -1 at its end."""
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def at_literal(self) -> bool:
        return self.pos >= len(self.line) and self.i < len(self.literals)

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self.i >= len(self.literals)

    def take_literal(self) -> bytes:
        data = self.literals[self.i]
        self.i += 1
        self.line = self.lines[self.i]
        self.pos = 0
        return data

    def error(self, what: str) -> ParseError:
        near = self.line[self.pos:self.pos + 20].decode("utf-8", "replace")
        where = f" near {near!r}" if near else (" at end of line" if self.at_end() else "")
        return ParseError(f"{what}{where}")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise self.error("Expected a space")
        while self.peek() == 0x20:
            self.pos += 1

    def maybe_sp(self) -> bool:
        if self.peek() == 0x20:
            self.sp()
            return True
        return False

    def expect(self, ch: bytes) -> None:
        if self.peek() != ch[0]:
            raise self.error(f"Expected {ch.decode()!r}")
        self.pos += 1

    def accept(self, ch: bytes) -> bool:
        if self.peek() == ch[0]:
            self.pos += 1
            return True
        return False

    def end(self) -> None:
        while self.peek() == 0x20:          # tolerate trailing spaces
            self.pos += 1
        if not self.at_end():
            raise self.error("Unexpected extra arguments")

    def chars(self, allowed: frozenset[int]) -> bytes:
        start = self.pos
        line = self.line
        n = len(line)
        pos = start
        while pos < n and line[pos] in allowed:
            pos += 1
        self.pos = pos
        return line[start:pos]

    def atom(self, what: str = "an atom") -> str:
        word = self.chars(ATOM_CHARS)
        if not word:
            raise self.error(f"Expected {what}")
        return word.decode("utf-8", "surrogateescape")

    def keyword(self) -> str:
        return self.atom("a keyword").upper()

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        line = self.line
        while True:
            if self.pos >= len(line):
                raise self.error("Unterminated quoted string")
            c = line[self.pos]
            self.pos += 1
            if c == 0x22:
                return bytes(out)
            if c == 0x5c:
                if self.pos >= len(line) or line[self.pos] not in (0x22, 0x5c):
                    raise self.error("Bad escape in quoted string")
                c = line[self.pos]
                self.pos += 1
            out.append(c)

    def string(self) -> bytes:
        if self.peek() == 0x22:
            return self.quoted()
        if self.at_literal():
            return self.take_literal()
        raise self.error("Expected a string")

    def astring_bytes(self) -> bytes:
        if self.peek() == 0x22 or self.at_literal():
            return self.string()
        word = self.chars(ASTRING_CHARS)
        if not word:
            raise self.error("Expected a string or atom")
        return word

    def astring(self) -> str:
        return self.astring_bytes().decode("utf-8", "surrogateescape")

    def nstring(self) -> str | None:
        word, after = self.line[self.pos:self.pos + 3], self.line[self.pos + 3:self.pos + 4]
        if word.upper() == b"NIL" and after in (b"", b" ", b")"):
            self.pos += 3
            return None
        return self.string().decode("utf-8", "surrogateescape")

    def mailbox(self) -> str:
        """A mailbox name (RFC 3501 mailbox = "INBOX" / astring); INBOX in any case is INBOX."""
        raw = self.astring_bytes()
        if b"\x00" in raw:
            raise ParseError("NUL octet in mailbox name")
        name = raw.decode("utf-8", "surrogateescape")
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        if self.peek() == 0x22 or self.at_literal():
            raw = self.string()
        else:
            raw = self.chars(LIST_CHARS)
            if not raw:
                raise self.error("Expected a mailbox pattern")
        return raw.decode("utf-8", "surrogateescape")

    def number(self, what: str = "a number", nonzero: bool = False) -> int:
        digits = self.chars(frozenset(b"0123456789"))
        if not digits:
            raise self.error(f"Expected {what}")
        if len(digits) > 10 or int(digits) > MAX_NUMBER:
            raise ParseError(f"Number out of range: {digits[:20].decode()} (the limit is {MAX_NUMBER})")
        value = int(digits)
        if nonzero and value == 0:
            raise ParseError(f"Invalid {what}: 0 (numbers start at 1)")
        return value

    def number64(self, what: str) -> int:
        digits = self.chars(frozenset(b"0123456789"))
        if not digits:
            raise self.error(f"Expected {what}")
        if len(digits) > 20 or int(digits) >= 2 ** 63:
            raise ParseError(f"Number out of range: {digits[:24].decode()}")
        return int(digits)

    def seqset(self) -> SeqSet:
        ranges: list[tuple[int, int]] = []
        while True:
            a = self._seq_number()
            b = self._seq_number() if self.accept(b":") else a
            ranges.append((a, b))
            if len(ranges) > MAX_SET_RANGES:
                raise ParseError(f"Sequence set with more than {MAX_SET_RANGES} ranges")
            if not self.accept(b","):
                return SeqSet(tuple(ranges))

    def _seq_number(self) -> int:
        if self.accept(b"*"):
            return STAR
        if self.peek() == ord("$"):
            raise self.error("SEARCHRES ($) is not supported")
        return self.number("a message number or UID", nonzero=True)

    def paren_list(self, item: Callable[[], Any], allow_empty: bool = True) -> list[Any]:
        self.expect(b"(")
        out: list[Any] = []
        if self.accept(b")"):
            if not allow_empty:
                raise self.error("Empty list")
            return out
        while True:
            out.append(item())
            if self.accept(b")"):
                return out
            self.sp()

    def flag(self) -> str:
        if self.accept(b"\\"):
            if self.accept(b"*"):
                return "\\*"
            return "\\" + self.atom("a flag name")
        return self.atom("a flag")

    def flag_list(self) -> tuple[str, ...]:
        return tuple(self.paren_list(self.flag))

    def date(self) -> tuple[int, int, int]:
        """RFC 3501 date: d-Mon-yyyy, quoted or not → (year, month, day)."""
        quoted = self.accept(b'"')
        m = re.match(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})", self.line[self.pos:])
        if m is None:
            raise self.error("Expected a date like 1-Feb-2024")
        self.pos += m.end()
        if quoted:
            self.expect(b'"')
        day, month, year = int(m.group(1)), MONTHS.get(m.group(2).decode().lower()), int(m.group(3))
        if month is None or not 1 <= day <= 31:
            raise ParseError(f"Invalid date {m.group(0).decode()}")
        return year, month, day

    def date_time(self) -> float:
        """RFC 3501 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" → seconds since the epoch."""
        m = re.match(rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"',
                     self.line[self.pos:])
        if m is None:
            raise self.error('Expected a date-time like "01-Feb-2024 10:00:00 +0000"')
        self.pos += m.end()
        day, month = int(m.group(1)), MONTHS.get(m.group(2).decode().lower())
        year, hh, mm, ss = int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6))
        if month is None or not (1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61):
            raise ParseError(f"Invalid date-time {m.group(0).decode()}")
        offset = (int(m.group(8)) * 3600 + int(m.group(9)) * 60) * (-1 if m.group(7) == b"-" else 1)
        return calendar.timegm((year, month, day, hh, mm, ss)) - offset


# ---- commands ------------------------------------------------------------------------------

def parse_head(raw: RawCommand) -> tuple[Cursor, str, str, bool]:
    """The tag and command name (and UID prefix); the cursor stands after them."""
    cur = Cursor(raw)
    tag_raw = cur.chars(TAG_CHARS)
    if not tag_raw:
        raise ParseError("Missing or invalid tag" if cur.line.strip() else "Empty command line")
    tag = tag_raw.decode("utf-8", "replace")
    if cur.peek() != 0x20:
        raise ParseError("Missing command (tag, space, command name)" if cur.at_end() else
                         "Invalid character in tag", tag)
    cur.sp()
    word = cur.chars(ATOM_CHARS)
    if not word:
        raise ParseError("Missing command name", tag)
    name = word.decode("utf-8", "replace").upper()
    uid = False
    if name == "UID":
        uid = True
        try:
            cur.sp()
            name = cur.keyword()
        except ParseError:
            raise ParseError("UID needs a command: FETCH, STORE, SEARCH, COPY, MOVE or EXPUNGE", tag) from None
        if name not in ("FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE"):
            raise ParseError(f"UID {name} is not a UID command (FETCH, STORE, SEARCH, COPY, MOVE, "
                             f"EXPUNGE)", tag)
    return cur, tag, name, uid


def parse_args(cur: Cursor, tag: str, name: str, uid: bool) -> Command:
    parser = ARGS.get(name)
    if parser is None:
        raise ParseError(f"Unknown command {name[:40]}", tag)
    try:
        args = parser(cur, uid)
        cur.end()
    except ParseError as e:
        e.tag = tag
        e.text = f"Error in IMAP command {name}: {e.text}"
        raise
    return Command(tag, name, uid, args)


def parse_command(raw: RawCommand) -> Command:
    """The whole grammar at once (tests and tools); the protocol checks the state in between."""
    try:
        cur, tag, name, uid = parse_head(raw)
    except ParseError as e:
        e.tag = e.tag or tag_of(raw.lines[0])
        raise
    return parse_args(cur, tag, name, uid)


def _none(cur: Cursor, uid: bool) -> None:
    return None


def _login(cur: Cursor, uid: bool) -> Login:
    cur.sp()
    user = cur.astring()
    cur.sp()
    return Login(user, cur.astring())


def _authenticate(cur: Cursor, uid: bool) -> Authenticate:
    cur.sp()
    mech = cur.atom("a SASL mechanism").upper()
    initial = None
    if cur.maybe_sp():
        ir = cur.chars(frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))
        if not ir:
            raise cur.error("Expected a base64 initial response")
        initial = ir
    return Authenticate(mech, initial)


def _mailbox(cur: Cursor, uid: bool) -> MailboxArg:
    cur.sp()
    return MailboxArg(cur.mailbox())


def _select(cur: Cursor, uid: bool) -> Select:
    cur.sp()
    mailbox = cur.mailbox()
    condstore = False
    if cur.maybe_sp() and not cur.at_end():
        for param in cur.paren_list(cur.keyword):
            if param != "CONDSTORE":
                raise ParseError(f"Unknown SELECT parameter {param}")
            condstore = True
    return Select(mailbox, condstore)


def _rename(cur: Cursor, uid: bool) -> Rename:
    cur.sp()
    old = cur.mailbox()
    cur.sp()
    return Rename(old, cur.mailbox())


def _list(cur: Cursor, uid: bool) -> ListArgs:
    cur.sp()
    select: set[str] = set()
    if cur.peek() == ord("("):
        select = set(cur.paren_list(cur.keyword))
        cur.sp()
    reference = cur.astring()
    cur.sp()
    if cur.peek() == ord("("):
        patterns = tuple(cur.paren_list(cur.list_mailbox, allow_empty=False))
    else:
        patterns = (cur.list_mailbox(),)
    returns: set[str] = set()
    status: tuple[str, ...] = ()
    if cur.maybe_sp() and not cur.at_end():
        if cur.keyword() != "RETURN":
            raise cur.error("Expected RETURN")
        cur.sp()

        def ret() -> str:
            nonlocal status
            word = cur.keyword()
            if word == "STATUS":
                cur.sp()
                status = tuple(cur.paren_list(cur.keyword, allow_empty=False))
            return word
        returns = set(cur.paren_list(ret))
    return ListArgs(reference, patterns, frozenset(select), frozenset(returns), status)


def _lsub(cur: Cursor, uid: bool) -> ListArgs:
    cur.sp()
    reference = cur.astring()
    cur.sp()
    return ListArgs(reference, (cur.list_mailbox(),), frozenset({"SUBSCRIBED", "LSUB"}))


STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE")


def _status(cur: Cursor, uid: bool) -> Status:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    items = tuple(cur.paren_list(cur.keyword, allow_empty=False))
    for item in items:
        if item not in STATUS_ITEMS:
            raise ParseError(f"Unknown status item {item} (know: {' '.join(STATUS_ITEMS)})")
    return Status(mailbox, items)


def _append(cur: Cursor, uid: bool) -> Append:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    flags: tuple[str, ...] = ()
    date = None
    if cur.peek() == ord("("):
        flags = cur.flag_list()
        cur.sp()
    if cur.peek() == 0x22:
        date = cur.date_time()
        cur.sp()
    if not cur.at_literal():
        raise cur.error("APPEND needs the message as a literal {size}")
    message = cur.take_literal()
    return Append(mailbox, flags, date, message)


def _enable(cur: Cursor, uid: bool) -> Enable:
    names = []
    while cur.maybe_sp() and not cur.at_end():
        names.append(cur.keyword())
    if not names:
        raise cur.error("ENABLE needs at least one capability")
    return Enable(tuple(names))


def _id(cur: Cursor, uid: bool) -> Id:
    cur.sp()
    if cur.peek() != ord("("):
        if cur.keyword() != "NIL":
            raise cur.error("Expected NIL or a parenthesized list")
        return Id(None)
    values = cur.paren_list(cur.nstring)
    if len(values) % 2 or len(values) > 60:
        raise ParseError("ID takes up to 30 field-value pairs")
    pairs = []
    for i in range(0, len(values), 2):
        if values[i] is None:
            raise ParseError("ID field names can not be NIL")
        pairs.append((values[i][:30], None if values[i + 1] is None else values[i + 1][:1024]))
    return Id(tuple(pairs))


def _expunge(cur: Cursor, uid: bool) -> Expunge:
    if not uid:
        return Expunge(None)
    cur.sp()
    return Expunge(cur.seqset())


def _copy(cur: Cursor, uid: bool) -> Copy:
    cur.sp()
    seqset = cur.seqset()
    cur.sp()
    return Copy(seqset, cur.mailbox())


def _store(cur: Cursor, uid: bool) -> Store:
    cur.sp()
    seqset = cur.seqset()
    cur.sp()
    unchanged = None
    if cur.peek() == ord("("):
        def modifier() -> str:
            nonlocal unchanged
            word = cur.keyword()
            if word != "UNCHANGEDSINCE":
                raise ParseError(f"Unknown STORE modifier {word}")
            cur.sp()
            unchanged = cur.number64("a mod-sequence")
            return word
        cur.paren_list(modifier, allow_empty=False)
        cur.sp()
    op = cur.keyword()
    m = re.fullmatch(r"([+-]?)FLAGS(\.SILENT)?", op)
    if m is None:
        raise ParseError(f"Unknown STORE item {op} (use FLAGS, +FLAGS or -FLAGS, optionally .SILENT)")
    mode = {"": "set", "+": "add", "-": "remove"}[m.group(1)]
    cur.sp()
    if cur.peek() == ord("("):
        flags = cur.flag_list()
    else:
        flags_list = [cur.flag()]
        while cur.maybe_sp() and not cur.at_end():
            flags_list.append(cur.flag())
        flags = tuple(flags_list)
    if "\\*" in flags:
        raise ParseError("\\* is not a flag one can store")
    return Store(seqset, mode, bool(m.group(2)), flags, unchanged)


# ---- FETCH ---------------------------------------------------------------------------------

_MACROS = {"ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
           "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
           "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")}
_SIMPLE_ITEMS = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID",
                 "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ"}


def _section(cur: Cursor) -> tuple[Section, str]:
    """The inside of [...] (the "[" is consumed); returns the Section and its label text."""
    parts: list[int] = []
    text = ""
    fields: tuple[str, ...] = ()
    label_fields = ""
    while cur.peek() != ord("]"):
        c = cur.peek()
        if ord("0") <= c <= ord("9"):
            parts.append(cur.number("a part number", nonzero=True))
            if len(parts) > 50:
                raise ParseError("Section part number too deep")
            if cur.accept(b"."):
                continue
            break
        word = cur.chars(ATOM_CHARS).decode("ascii", "replace").upper()
        if word not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
            raise cur.error("Unknown section text (HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME)")
        if word == "MIME" and not parts:
            raise ParseError("MIME needs a part number (e.g. BODY[1.MIME])")
        text = word
        if word.startswith("HEADER.FIELDS"):
            cur.sp()
            names = cur.paren_list(cur.astring, allow_empty=False)
            if len(names) > 200:
                raise ParseError("Too many header field names")
            for n in names:
                if not n or any(ord(ch) < 33 or ord(ch) > 126 or ch == ":" for ch in n):
                    raise ParseError(f"Invalid header field name {n!r}")
            fields = tuple(n.lower() for n in names)
            label_fields = " (" + " ".join(n.upper() for n in names) + ")"
        break
    cur.expect(b"]")
    label = ".".join(str(p) for p in parts)
    if text:
        label = f"{label}.{text}" if label else text
    return Section(tuple(parts), text, fields), label + label_fields


def _fetch_item(cur: Cursor) -> list[FetchItem]:
    word = cur.chars(FETCH_ATT_CHARS).decode("ascii", "replace").upper()
    if not word:
        raise cur.error("Expected a FETCH item")
    if word in _MACROS:
        return [FetchItem(n, n) for n in _MACROS[word]]
    if word in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK") and cur.peek() == ord("["):
        if word.startswith("BINARY"):
            raise ParseError("BINARY is not supported (not advertised)")
        cur.pos += 1
        section, label = _section(cur)
        partial = None
        label = f"BODY[{label}]"
        if cur.accept(b"<"):
            start = cur.number("a partial start")
            cur.expect(b".")
            length = cur.number("a partial length", nonzero=True)
            cur.expect(b">")
            partial = (start, length)
            label += f"<{start}>"
        return [FetchItem("BODY[]", label, section, partial, peek=(word == "BODY.PEEK"))]
    if word in _SIMPLE_ITEMS:
        peek = word not in ("RFC822", "RFC822.TEXT")
        return [FetchItem(word, word, peek=peek)]
    raise ParseError(f"Unknown FETCH item {word[:40]}")


def _fetch(cur: Cursor, uid: bool) -> Fetch:
    cur.sp()
    seqset = cur.seqset()
    cur.sp()
    items: list[FetchItem] = []
    if cur.peek() == ord("("):
        for group in cur.paren_list(lambda: _fetch_item(cur), allow_empty=False):
            items.extend(group)
    else:
        items = _fetch_item(cur)
    changedsince = None
    if cur.maybe_sp() and not cur.at_end():
        def modifier() -> str:
            nonlocal changedsince
            word = cur.keyword()
            if word == "CHANGEDSINCE":
                cur.sp()
                changedsince = cur.number64("a mod-sequence")
            elif word == "VANISHED":
                raise ParseError("VANISHED needs QRESYNC, which is not offered")
            else:
                raise ParseError(f"Unknown FETCH modifier {word}")
            return word
        cur.paren_list(modifier, allow_empty=False)
    if len(items) > 100:
        raise ParseError("Too many FETCH items")
    return Fetch(seqset, tuple(items), changedsince)


# ---- SEARCH --------------------------------------------------------------------------------

_FLAG_KEYS = {"ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True),
              "DRAFT": ("\\Draft", True), "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
              "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False),
              "UNDRAFT": ("\\Draft", False), "UNFLAGGED": ("\\Flagged", False),
              "UNSEEN": ("\\Seen", False)}
_HEADER_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_DATE_KEYS = {"BEFORE": ("before", False), "ON": ("on", False), "SINCE": ("since", False),
              "SENTBEFORE": ("before", True), "SENTON": ("on", True), "SENTSINCE": ("since", True)}


def _search_string(cur: Cursor) -> str:
    raw = cur.astring_bytes()
    if b"\x00" in raw:
        raise ParseError("NUL octet in search string")
    return raw.decode("utf-8", "replace")


def search_key(cur: Cursor) -> tuple:
    """One search-key (RFC 3501 §6.4.4, RFC 7162 MODSEQ) as a tuple tree."""
    cur.depth += 1
    if cur.depth > MAX_SEARCH_DEPTH:
        raise ParseError("Search keys nested too deep")
    try:
        c = cur.peek()
        if c == ord("("):
            keys = cur.paren_list(lambda: search_key(cur), allow_empty=False)
            return keys[0] if len(keys) == 1 else ("and", tuple(keys))
        if c == ord("*") or ord("0") <= c <= ord("9"):
            return ("seq", cur.seqset())
        word = cur.keyword()
        if word == "ALL":
            return ("all",)
        if word in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[word]
            return ("flag", flag, present)
        if word in ("NEW", "OLD", "RECENT"):
            return (word.lower(),)
        if word in ("KEYWORD", "UNKEYWORD"):
            cur.sp()
            return ("flag", cur.atom("a keyword"), word == "KEYWORD")
        if word in _HEADER_KEYS:
            cur.sp()
            return ("header", _HEADER_KEYS[word], _search_string(cur))
        if word == "HEADER":
            cur.sp()
            name = cur.astring()
            cur.sp()
            return ("header", name.lower(), _search_string(cur))
        if word in ("BODY", "TEXT"):
            cur.sp()
            return (word.lower(), _search_string(cur))
        if word in _DATE_KEYS:
            cur.sp()
            op, sent = _DATE_KEYS[word]
            return ("date", op, cur.date(), sent)
        if word in ("LARGER", "SMALLER"):
            cur.sp()
            return ("size", word == "LARGER", cur.number("a size"))
        if word == "UID":
            cur.sp()
            return ("uid", cur.seqset())
        if word == "NOT":
            cur.sp()
            return ("not", search_key(cur))
        if word == "OR":
            cur.sp()
            a = search_key(cur)
            cur.sp()
            return ("or", a, search_key(cur))
        if word == "MODSEQ":
            cur.sp()
            if cur.peek() == 0x22:              # entry name and type: accepted, not used
                cur.quoted()
                cur.sp()
                cur.keyword()
                cur.sp()
            return ("modseq", cur.number64("a mod-sequence"))
        raise ParseError(f"Unknown search key {word[:40]}")
    finally:
        cur.depth -= 1


def _search(cur: Cursor, uid: bool) -> Search:
    cur.sp()
    charset = None
    keys: list[tuple] = []
    if cur.line[cur.pos:cur.pos + 7].upper() == b"CHARSET":
        cur.pos += 7
        cur.sp()
        charset = cur.astring().upper()
        cur.sp()
    if cur.line[cur.pos:cur.pos + 6].upper() == b"RETURN":
        raise ParseError("SEARCH RETURN (ESEARCH) is not supported")
    while True:
        keys.append(search_key(cur))
        if not cur.maybe_sp() or cur.at_end():
            break
    return Search(charset, keys[0] if len(keys) == 1 else ("and", tuple(keys)))


ARGS: dict[str, Callable[[Cursor, bool], Any]] = {
    "CAPABILITY": _none, "NOOP": _none, "LOGOUT": _none, "STARTTLS": _none,
    "LOGIN": _login, "AUTHENTICATE": _authenticate, "ID": _id,
    "SELECT": _select, "EXAMINE": _select, "CREATE": _mailbox, "DELETE": _mailbox,
    "RENAME": _rename, "SUBSCRIBE": _mailbox, "UNSUBSCRIBE": _mailbox, "LIST": _list,
    "LSUB": _lsub, "STATUS": _status, "APPEND": _append, "NAMESPACE": _none, "ENABLE": _enable,
    "IDLE": _none, "CHECK": _none, "CLOSE": _none, "UNSELECT": _none, "EXPUNGE": _expunge,
    "SEARCH": _search, "FETCH": _fetch, "STORE": _store, "COPY": _copy, "MOVE": _copy,
}
