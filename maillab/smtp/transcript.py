"""Turning what an SMTP client sends into transcript lines (sans-IO).

The server's adapter feeds every received chunk here; out come the client's
lines, decoded for display (invalid UTF-8 replaced, control characters shown
as escapes) and cut at a display limit.

After the server's 354 comes the message, and its lines are shown as the
client typed them (headers, the blank line, the body, doubled dots), within a
bound: the first `HEAD_LINES` as they arrive (a student typing in telnet sees
each one), then only the last `TAIL_LINES`, held back until the message ends;
the lines between are counted, not kept.  The message ends at the end-of-data
line found by the DATA reader's own rule (`datareader._end_line`, told by
`body_started` whether a bare-LF "." ends it); that line
and what follows it are not message lines.  When the server's reader has the
message it tells `body_ended` how many octets it took; out come "… K lines
(X octets) not shown …" (if any were), the held-back last lines, one note
"(message body: N lines, M bytes)", the client's "." line, and the lines of
whatever the client sent after it (from a line's start, within the last
`RETAIN` to twice `RETAIN` octets received: a transcript shows a pipelined
QUIT or next command, not a flood of them).

Memory is bounded, however big the message and the chunks it arrives in: one
display line being put together (4 x `DISPLAY_LIMIT` octets), `TAIL_LINES`
display lines, and twice `RETAIN` octets.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from .datareader import _end_line

Kind = Literal["client", "note"]
# the lab's remark opening a session of a host whose STARTTLS is stripped (`maillab hosts strip`)
STRIPPED_NOTE = "(STARTTLS stripped on this host: EHLO does not offer it, as if cut by an attacker on the path)"
DISPLAY_LIMIT = 512
RETAIN = 16 * 1024          # octets of a body's last chunks kept, for what follows its end
HEAD_LINES = 30             # a message's first lines, shown as they arrive
TAIL_LINES = 5              # and its last ones, shown when it has ended


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
        self._message_open = False     # in the body, its end-of-data line not seen yet
        self._lf_end = False           # `<LF>.<LF>` ends this message too
        self._after_crlf = True        # the last complete message line ended in CRLF
        self._head = 0                 # lines of the message shown as they came
        self._tail: deque[tuple[str, int]] = deque()   # its latest lines past the head: (text, octets)
        self._hidden_lines = 0         # lines between the head and the tail, and their octets
        self._hidden_octets = 0

    def body_started(self, buffered: int = 0, lf_end: bool = False) -> None:
        """The server answered 354: what follows is a message body.  `buffered`: octets the
        client sent before the 354 that the server has not read yet (shown already, as lines);
        `lf_end`: the DATA line ended in a bare LF, and so may the message (DataReader)."""
        self._in_body = self._message_open = True
        self._lf_end, self._after_crlf = lf_end, not lf_end
        self._seen = self._early = buffered
        self._recent.clear()
        self._recent_len = 0
        self._head = self._hidden_lines = self._hidden_octets = 0
        self._tail.clear()

    def body_ended(self, consumed: int, lines: int, octets: int) -> list[tuple[Kind, str]]:
        """The server's reader took `consumed` octets since the 354, the "." line included:
        a body of `lines` lines and `octets` octets.  What came after it are client lines again."""
        self._in_body = False
        if self._message_open:         # its end line came before the 354 (and was shown then)
            self._message_open = False
            self._partial.clear()
            self._partial_len = 0
        after = self._seen - consumed - max(self._early - consumed, 0)   # not counting what was shown
        kept = b"".join(self._recent)
        self._recent.clear()
        self._recent_len = 0
        out: list[tuple[Kind, str]] = []
        if self._hidden_lines:
            out.append(("note", f"… {self._hidden_lines} lines ({self._hidden_octets} octets) not shown …"))
        out += [("client", text) for text, _ in self._tail]
        self._tail.clear()
        out += [("note", f"(message body: {lines} lines, {octets} bytes)"), ("client", ".")]
        shown = kept[len(kept) - min(max(after, 0), len(kept)):]
        if after > len(shown):                          # cut: show from the next line's start
            shown = shown[shown.find(b"\n") + 1:] if b"\n" in shown else b""
            out.append(("note", f"({after - len(shown)} octets after the message not shown)"))
        if shown:
            out += self.feed(shown)
        return out

    def feed(self, data: bytes) -> list[tuple[Kind, str]]:
        if not self._in_body:
            return [("client", text) for text, _ in self._split(data)[0]]
        self._seen += len(data)
        kept = data[-RETAIN:] if len(data) > RETAIN else data   # a big chunk: its tail is all that may follow the end
        self._recent.append(kept)
        self._recent_len += len(kept)
        while self._recent_len - len(self._recent[0]) >= RETAIN:
            self._recent_len -= len(self._recent.popleft())
        return self._message_lines(data) if self._message_open else []

    def _message_lines(self, data: bytes) -> list[tuple[Kind, str]]:
        """The message lines `data` completes: shown now while in the head, else held in the tail."""
        # the end-of-data line, looked for from the start of the line in progress
        block = bytes(self._partial) + data if self._partial else data
        end = _end_line(block, self._lf_end, self._after_crlf)[0]
        last = block.rfind(b"\n")
        if last >= 0:
            self._after_crlf = block[last - 1:last] == b"\r"
        if end is not None:
            self._message_open = False
            cut = end[0] - len(self._partial)
            if cut < 0:                 # the line in progress was the start of the "." line
                self._partial.clear()
                self._partial_len = 0
            data = data[:max(cut, 0)]
        start = 0
        out: list[tuple[Kind, str]] = []
        if self._head < HEAD_LINES:
            lines, start = self._split(data, count=HEAD_LINES - self._head)
            self._head += len(lines)
            out = [("client", text) for text, _ in lines]
        if start < len(data):
            self._hold(data, start)
        return out

    def _hold(self, data: bytes, start: int) -> None:
        """Keep the last TAIL_LINES lines of the message seen so far; count the ones they push out."""
        ends = data.count(b"\n", start)
        if ends > TAIL_LINES:           # all but the last TAIL_LINES lines are only counted, in one go
            cut = len(data)
            for _ in range(TAIL_LINES + 1):
                cut = data.rfind(b"\n", start, cut)
            cut += 1
            self._hidden_lines += ends - TAIL_LINES + len(self._tail)
            self._hidden_octets += cut - start + self._partial_len + sum(o for _, o in self._tail)
            self._tail.clear()
            self._partial.clear()
            self._partial_len = 0
            start = cut
        for line in self._split(data, start)[0]:
            if len(self._tail) == TAIL_LINES:
                self._hidden_lines += 1
                self._hidden_octets += self._tail.popleft()[1]
            self._tail.append(line)

    def _split(self, data: bytes, start: int = 0, count: int | None = None) -> tuple[list[tuple[str, int]], int]:
        """Up to `count` lines that `data[start:]` completes (the line in progress first), each as
        (display text, octets with its line end), and where the next line starts.  What is left
        when no more lines end in `data` becomes the line in progress (its display part bounded)."""
        out: list[tuple[str, int]] = []
        while count is None or len(out) < count:
            nl = data.find(b"\n", start)
            if nl < 0:
                rest = data[start:]
                room = DISPLAY_LIMIT * 4 - len(self._partial)
                self._partial += rest[:max(room, 0)]
                self._partial_len += len(rest)
                return out, len(data)
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
            out.append((text, line_len + 1))
        return out, start
