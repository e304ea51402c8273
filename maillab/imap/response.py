"""Server responses: encoding of IMAP strings and the outgoing buffer with its transcript.

A response is built as a list of *parts*: `str` parts are protocol text
(ASCII), `bytes` parts are strings that go out as literals (`{n}` CRLF data,
RFC 3501 §4.3).  `Out` is the h2-style outgoing buffer: `send(parts)` appends
the wire bytes of one response to `data_to_send()` and one transcript line in
which every literal reads "{n bytes literal}" — so a FETCH of a body shows
its shape, never the body.

`string()` picks the form of a string value: quoted when it is 7-bit text
without CR, LF or NUL, else a literal; `nstring()` adds NIL.

Bulk responses (the FETCH lines of `FETCH 1:*`, thousands of them) go through
`bulk()`: the first `BULK_SHOWN` of a run are transcribed, the rest only
counted, and `end_bulk()` adds one note "(... N more untagged responses, M
octets)", so a transcript stays readable and cheap whatever the mailbox size.

`ImapError` is what a command handler raises to end its command with NO or
BAD (RFC 3501 §7.1), with an RFC 5530 response code where one fits.
"""

from __future__ import annotations

from typing import Iterable, Literal, Union

from ..base.events import Direction
from ..smtp.transcript import printable

Part = Union[str, bytes]
BULK_SHOWN = 20

_QUOTABLE = frozenset(range(0x01, 0x80)) - {0x0a, 0x0d}


class ImapError(Exception):
    """Ends the current command: `status` is "NO" or "BAD", `code` an RFC 5530 code or ""."""

    def __init__(self, status: Literal["NO", "BAD"], text: str, code: str = "") -> None:
        super().__init__(text)
        self.status, self.text, self.code = status, text, code


def no(text: str, code: str = "") -> ImapError:
    return ImapError("NO", text, code)


def bad(text: str, code: str = "") -> ImapError:
    return ImapError("BAD", text, code)


def string(value: bytes | str) -> Part:
    """A quoted string if it can be one, else a literal (bytes part)."""
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(raw) < 4096 and all(b in _QUOTABLE for b in raw):
        text = raw.decode("ascii")
        if '"' in text or "\\" in text:
            text = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    return raw


def nstring(value: bytes | str | None) -> Part:
    return "NIL" if value is None else string(value)


def astring(value: str) -> Part:
    """Mailbox names and the like: quoted (always, as most servers do) or a literal."""
    return string(value)


def flag_list(flags: Iterable[str]) -> str:
    return "(" + " ".join(flags) + ")"


class Out:
    """Outgoing bytes plus the transcript of what they say."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[tuple[Direction, str]] = []
        self.octets = 0
        self._bulk_lines = 0            # in the current run of bulk responses
        self._bulk_hidden = 0
        self._bulk_octets = 0

    def __len__(self) -> int:
        return len(self._buf)

    def line(self, text: str) -> None:
        """One response line without literals (ASCII text)."""
        wire = text.encode("utf-8", "surrogateescape")
        self._buf += wire
        self._buf += b"\r\n"
        self._lines.append(("server", printable(wire)))

    def send(self, parts: list[Part]) -> None:
        """One response made of text parts and literals."""
        if all(type(p) is str for p in parts):
            self.line("".join(parts))            # type: ignore[arg-type]
            return
        wire: list[bytes] = []
        shown: list[str] = []
        text: list[str] = []
        for p in parts:
            if type(p) is str:
                text.append(p)                  # type: ignore[arg-type]
                continue
            assert isinstance(p, bytes)
            head = "".join(text) + f"{{{len(p)}}}"
            text.clear()
            wire.append(head.encode("utf-8", "surrogateescape") + b"\r\n")
            wire.append(p)
            shown.append(head[:-len(f"{{{len(p)}}}")] + f"{{{len(p)} bytes literal}}")
        tail = "".join(text)
        wire.append(tail.encode("utf-8", "surrogateescape") + b"\r\n")
        shown.append(tail)
        for w in wire:
            self._buf += w
        self._lines.append(("server", printable("".join(shown).encode("utf-8", "surrogateescape"))))

    def bulk(self, parts: list[Part]) -> None:
        """One of many like responses (FETCH results): transcribed only at the start of a run."""
        self._bulk_lines += 1
        if self._bulk_lines <= BULK_SHOWN:
            self.send(parts)
            return
        before = len(self._buf)
        buf = self._buf
        text: list[str] = []
        for p in parts:
            if type(p) is str:
                text.append(p)                  # type: ignore[arg-type]
            else:
                assert isinstance(p, bytes)
                text.append(f"{{{len(p)}}}\r\n")
                buf += "".join(text).encode("utf-8", "surrogateescape")
                buf += p
                text.clear()
        text.append("\r\n")
        buf += "".join(text).encode("utf-8", "surrogateescape")
        self._bulk_hidden += 1
        self._bulk_octets += len(buf) - before

    def end_bulk(self) -> None:
        """Close a run of bulk responses: note how many were not transcribed."""
        if self._bulk_hidden:
            self._lines.append(("note", f"(... {self._bulk_hidden} more untagged responses, "
                                        f"{self._bulk_octets} octets)"))
        self._bulk_lines = self._bulk_hidden = self._bulk_octets = 0

    def raw(self, wire: bytes, shown: str) -> None:
        self._buf += wire
        self._lines.append(("server", shown))

    def note(self, direction: Direction, text: str) -> None:
        """A transcript line that is not server output (a client line, a lab note)."""
        self._lines.append((direction, text))

    def data_to_send(self) -> bytes:
        data = bytes(self._buf)
        self._buf.clear()
        self.octets += len(data)
        return data

    def transcript(self) -> list[tuple[Direction, str]]:
        lines = self._lines
        self._lines = []
        return lines
