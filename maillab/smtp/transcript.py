"""Turning what an SMTP client sends into transcript lines (sans-IO).

The server's adapter feeds every received chunk here; out come the client's
lines, decoded for display (invalid UTF-8 replaced, control characters shown
as escapes) and cut at a display limit.  After the server's 354, the message
body is not dumped, nor even looked at here: the server's DATA reader finds
its end, and then tells `body_ended` how many octets it took; out come one
note, "(message body: N lines, M bytes)", the client's "." line, and the lines
of whatever the client sent after it (from a line's start, within the last
`RETAIN` to twice `RETAIN` octets received: a transcript shows a pipelined
QUIT or next command, not a flood of them).  Memory is bounded by one display line plus twice `RETAIN`
octets, however big the chunks a body arrives in.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

Kind = Literal["client", "note"]
DISPLAY_LIMIT = 512
RETAIN = 16 * 1024          # octets of a body's last chunks kept, for what follows its end


def printable(raw: bytes, limit: int = DISPLAY_LIMIT) -> str:
    text = raw.decode("utf-8", "replace")
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" for c in text)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(raw)} octets)"
    return text


class ClientLines:
    def __init__(self) -> None:
        self._partial = bytearray()
        self._partial_len = 0          # true length of a line cut for display
        self._in_body = False
        self._seen = 0                 # octets of the body stream: since the 354, and buffered before it
        self._early = 0                # of those, received before the 354
        self._recent: deque[bytes] = deque()   # the last chunks of them (tails), 2 x RETAIN at most
        self._recent_len = 0

    def body_started(self, buffered: int = 0) -> None:
        """The server answered 354: what follows is a message body.  `buffered`: octets the
        client sent before the 354 that the server has not read yet (shown already, as lines)."""
        self._in_body = True
        self._seen = self._early = buffered
        self._recent.clear()
        self._recent_len = 0

    def body_ended(self, consumed: int, lines: int, octets: int) -> list[tuple[Kind, str]]:
        """The server's reader took `consumed` octets since the 354, the "." line included:
        a body of `lines` lines and `octets` octets.  What came after it are client lines again."""
        self._in_body = False
        after = self._seen - consumed - max(self._early - consumed, 0)   # not counting what was shown
        kept = b"".join(self._recent)
        self._recent.clear()
        self._recent_len = 0
        out: list[tuple[Kind, str]] = [("note", f"(message body: {lines} lines, {octets} bytes)"),
                                       ("client", ".")]
        shown = kept[len(kept) - min(max(after, 0), len(kept)):]
        if after > len(shown):                          # cut: show from the next line's start
            shown = shown[shown.find(b"\n") + 1:] if b"\n" in shown else b""
            out.append(("note", f"({after - len(shown)} octets after the message not shown)"))
        if shown:
            out += self.feed(shown)
        return out

    def feed(self, data: bytes) -> list[tuple[Kind, str]]:
        out: list[tuple[Kind, str]] = []
        if self._in_body:
            self._seen += len(data)
            if len(data) > RETAIN:
                data = data[-RETAIN:]                   # a big chunk: its tail is all that may be shown
            self._recent.append(data)
            self._recent_len += len(data)
            while self._recent_len - len(self._recent[0]) >= RETAIN:
                self._recent_len -= len(self._recent.popleft())
            return out
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
