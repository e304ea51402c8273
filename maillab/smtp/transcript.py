"""Turning what an SMTP client sends into transcript lines (sans-IO).

The server's adapter feeds every received chunk here; out come the client's
lines, decoded for display (invalid UTF-8 replaced, control characters shown
as escapes) and cut at a display limit.  After the server's 354, the message
body is not dumped: it becomes one note, "(message body: N lines, M bytes)",
followed by the client's "." line.  Memory is bounded by one display line.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["client", "note"]
DISPLAY_LIMIT = 512


def printable(raw: bytes, limit: int = DISPLAY_LIMIT) -> str:
    text = raw.decode("utf-8", "replace")
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" for c in text)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(raw)} octets)"
    return text


_BODY_END = re.compile(rb"\n\.\r?\n")


class ClientLines:
    def __init__(self) -> None:
        self._partial = bytearray()
        self._partial_len = 0          # true length of a line cut for display
        self._in_body = False
        self._tail = b""               # last bytes of the body, to find its end across chunks
        self._body_lines = 0
        self._body_bytes = 0

    def body_started(self) -> None:
        """The server answered 354: what follows is a message body."""
        self._in_body = True
        self._tail = b"\n"
        self._body_lines = self._body_bytes = 0

    def feed(self, data: bytes) -> list[tuple[Kind, str]]:
        out: list[tuple[Kind, str]] = []
        if self._in_body:
            data = self._feed_body(data, out)
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                rest = data[start:]
                room = DISPLAY_LIMIT * 4 - len(self._partial)
                self._partial += rest[:max(room, 0)]
                self._partial_len += len(rest)
                return out
            piece = data[start:nl]
            start = nl + 1
            line_len = self._partial_len + len(piece)
            if self._partial:
                piece = bytes(self._partial) + piece
                self._partial.clear()
            self._partial_len = 0
            line = piece[:-1] if piece.endswith(b"\r") else piece
            text = printable(line)
            if line_len > len(piece):
                text = f"{text[:DISPLAY_LIMIT]}… ({line_len} octets)"
            out.append(("client", text))

    def _feed_body(self, data: bytes, out: list[tuple[Kind, str]]) -> bytes:
        """Count body bytes; at the end-of-data line, note them and return what follows."""
        buf = self._tail + data
        m = _BODY_END.search(buf)
        if m is None:
            self._body_lines += data.count(b"\n")
            self._body_bytes += len(data)
            self._tail = buf[-3:]
            return b""
        body = data[:max(m.start() + 1 - len(self._tail), 0)]
        self._body_lines += body.count(b"\n")
        self._body_bytes += len(body)
        out.append(("note", f"(message body: {self._body_lines} lines, {self._body_bytes} bytes)"))
        out.append(("client", "."))
        self._in_body = False
        return buf[m.end():]
