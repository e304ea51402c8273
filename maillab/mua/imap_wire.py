"""The IMAP client's wire, without I/O: commands out, server bytes in, responses parsed (RFC 9051 / 3501).

`ResponseReader.feed(data)` cuts the server's bytes into whole responses — a
line, and the literals `{n}` it announces with the rest of the line after
each (RFC 9051 §4.3) — split anywhere, and parses each into a `Response`:
its tag ("*" untagged, "+" a continuation), and its values: atoms as str,
quoted strings as str, literals as bytes, NIL as None, parenthesised lists
as lists; a status response (OK/NO/BAD/PREAUTH/BYE) keeps its response code
("[UIDVALIDITY 7]") and text apart.  A line longer than MAX_LINE or a literal
bigger than MAX_LITERAL is an `ImapWireError`: memory stays bounded.

`command(tag, verb, *args)` makes a command's octets and its line for the
X-ray (`shown`): a `Secret` argument shows as `***`, a `Literal` as
"{n} octets" and goes as a non-synchronizing literal (`{n+}`, RFC 7888).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

MAX_LINE = 1 << 20
MAX_LITERAL = 64 << 20

Value = Union[str, bytes, None, list["Value"]]
STATUS = ("OK", "NO", "BAD", "PREAUTH", "BYE")
_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\+?\}\r\n$")
_ATOM_END = b" ()[]\r\n"


class ImapWireError(Exception):
    """The server sent what no IMAP server may; str() says what."""


@dataclass(frozen=True, slots=True)
class Secret:
    """An argument never shown in the X-ray (a password)."""
    value: str


@dataclass(frozen=True, slots=True)
class Literal:
    """Octets sent as a literal (a message to APPEND)."""
    data: bytes


@dataclass(slots=True)
class Response:
    tag: str                          # "*", "+", or the tag of the command it completes
    values: list[Value]               # after the tag
    code: str = ""                    # a status response's "[...]" content
    text: str = ""                    # a status response's human text
    shown: str = ""                   # the line for the X-ray (literals as "{n} octets")
    raw: bytes = field(default=b"", repr=False)

    @property
    def status(self) -> str:
        """OK, NO, BAD, PREAUTH or BYE for a status response, else ""."""
        first = self.values[0] if self.values else None
        if isinstance(first, str) and first.upper() in STATUS:
            return first.upper()
        return ""

    def number(self) -> tuple[int, str] | None:
        """(n, "EXISTS"/"EXPUNGE"/"FETCH"/"RECENT") for an untagged message-data response."""
        if self.tag == "*" and len(self.values) >= 2 and isinstance(self.values[0], str) \
                and self.values[0].isdigit() and isinstance(self.values[1], str):
            return int(self.values[0]), self.values[1].upper()
        return None


def quote(text: str) -> str:
    """An IMAP quoted string (RFC 9051 §4.3), or a literal's worth of refusal for CR/LF."""
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"{text!r}: a line break has no place in an IMAP string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(tag: str, verb: str, *args: str | Secret | Literal) -> tuple[bytes, str]:
    """The octets of a command and its line for the X-ray."""
    wire, shown = [f"{tag} {verb}".encode()], [f"{tag} {verb}"]
    for a in args:
        if isinstance(a, Secret):
            wire.append(quote(a.value).encode())
            shown.append("***")
        elif isinstance(a, Literal):
            wire.append(f"{{{len(a.data)}+}}\r\n".encode() + a.data)
            shown.append(f"{{{len(a.data)}+}} ({len(a.data)} octets)")
        else:
            wire.append(a.encode())
            shown.append(a)
    return b" ".join(wire) + b"\r\n", " ".join(shown)


class ResponseReader:
    """Server bytes in, whole `Response`s out."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._parts: list[bytes] = []           # the response so far: lines with their literals
        self._need = 0                          # octets of a literal still to come

    def feed(self, data: bytes) -> list[Response]:
        self._buf += data
        out: list[Response] = []
        while True:
            if self._need:
                if len(self._buf) < self._need:
                    return out
                self._parts.append(bytes(self._buf[:self._need]))
                del self._buf[:self._need]
                self._need = 0
                continue
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) > MAX_LINE:
                    raise ImapWireError(f"a line of over {MAX_LINE} octets without CRLF")
                return out
            line = bytes(self._buf[:end + 2])
            del self._buf[:end + 2]
            m = _LITERAL_AT_END.search(line)
            if m:
                size = int(m.group(1))
                if size > MAX_LITERAL:
                    raise ImapWireError(f"a literal of {size} octets (more than {MAX_LITERAL})")
                self._parts.append(line)
                self._need = size
                if size == 0:
                    self._parts.append(b"")
                continue
            self._parts.append(line)
            parts, self._parts = self._parts, []
            out.append(_parse(parts))


def _parse(parts: list[bytes]) -> Response:
    """One response: lines (the first ones ending in a literal's announcement) and literals between."""
    shown = []
    for i, p in enumerate(parts):
        shown.append(p.decode("utf-8", "replace").rstrip("\r\n") if i % 2 == 0 else f" ({len(p)} octets) ")
    tokens = _Tokens(parts)
    tag = tokens.atom()
    tokens.space()
    response = Response(tag, [], shown="".join(shown), raw=b"".join(parts))
    if tag == "+":
        response.text = tokens.rest()
        return response
    first = tokens.atom()
    response.values.append(first)
    if first.upper() in STATUS:
        tokens.space()
        rest = tokens.rest()
        if rest.startswith("["):
            code, _, rest = rest[1:].partition("]")
            response.code = code
        response.text = rest.strip()
        return response
    while not tokens.done():
        tokens.space()
        if tokens.done():
            break
        response.values.append(tokens.value())
    return response


class _Tokens:
    """A cursor over one response's octets, literals in between."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.i = 0                   # which part (even: line text, odd: a literal)
        self.pos = 0

    @property
    def line(self) -> bytes:
        return self.parts[self.i]

    def done(self) -> bool:
        return self.i == len(self.parts) - 1 and self.line[self.pos:] in (b"\r\n", b"")

    def space(self) -> None:
        while self.pos < len(self.line) and self.line[self.pos:self.pos + 1] == b" ":
            self.pos += 1

    def rest(self) -> str:
        text = self.line[self.pos:].rstrip(b"\r\n").decode("utf-8", "replace")
        self.pos = len(self.line)
        return text

    def atom(self) -> str:
        start = self.pos
        line = self.line
        depth = 0
        while self.pos < len(line):
            c = line[self.pos:self.pos + 1]
            if c == b"[":
                depth += 1                       # BODY[HEADER.FIELDS (A B)] is one atom
            elif c == b"]":
                depth -= 1
            elif c in b" ()\r\n" and depth <= 0:
                break
            self.pos += 1
        if self.pos == start:
            raise ImapWireError(f"expected an atom at {line[start:start + 20]!r}")
        return line[start:self.pos].decode("utf-8", "replace")

    def value(self) -> Value:
        line = self.line
        c = line[self.pos:self.pos + 1]
        if c == b"(":
            self.pos += 1
            items: list[Value] = []
            while True:
                self.space()
                if self.pos >= len(line) or line[self.pos:self.pos + 1] in (b"\r", b"\n"):
                    raise ImapWireError("a list without its closing parenthesis")
                if line[self.pos:self.pos + 1] == b")":
                    self.pos += 1
                    return items
                items.append(self.value())
                line = self.line                  # a literal may have moved us to the next line
        if c == b'"':
            return self._quoted()
        m = _LITERAL_AT_END.match(line, self.pos)
        if m and m.end() == len(line):
            data = self.parts[self.i + 1]
            self.i += 2
            self.pos = 0
            return data
        word = self.atom()
        return None if word.upper() == "NIL" else word

    def _quoted(self) -> str:
        line = self.line
        out = bytearray()
        self.pos += 1
        while self.pos < len(line):
            c = line[self.pos]
            if c == 0x5C and self.pos + 1 < len(line):
                out.append(line[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if c == 0x22:
                return out.decode("utf-8", "replace")
            out.append(c)
        raise ImapWireError("a quoted string without its closing quote")


def fetch_items(response: Response) -> dict[str, Value]:
    """The items of a FETCH response ("UID" -> "7", "FLAGS" -> [...], "BODY[]" -> bytes), names
    upper case, BODY.PEEK[...] answered as BODY[...]."""
    items = response.values[2] if len(response.values) > 2 and isinstance(response.values[2], list) else []
    out: dict[str, Value] = {}
    for name, value in zip(items[::2], items[1::2]):
        if isinstance(name, str):
            out[name.upper()] = value
    return out
