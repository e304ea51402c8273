"""SMTP replies, sans-IO: the `Reply` value and a `ReplyParser` fed raw bytes.

Shared by the outbound client (which parses what servers say) and the servers
(which render replies with `Reply.to_bytes`).  A reply is one or more lines
with the same three-digit code; every line but the last has "-" after the
code, the last has " " or nothing (RFC 5321 §4.2, §4.2.1).  An enhanced
status code ("5.1.1") may follow the basic one (RFC 3463, RFC 2034).

Invariants of `ReplyParser`: input may be split anywhere; CRLF and bare LF
both end a line; memory stays bounded (a line over `MAX_LINE` octets or a
reply over `MAX_LINES` lines raises `ProtocolError`, as does a line without a
valid code or a continuation that changes the code).  Once it has raised, the
parser stays broken: every later `feed` raises again.  Text that is not valid
UTF-8 is decoded with U+FFFD replacements, never rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 4096   # octets per reply line, without its line ending
MAX_LINES = 200   # lines per reply

_LINE = re.compile(r"([1-5][0-9][0-9])([ -]?)(.*)\Z", re.S)
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?=[ \t]|\Z)")


class ProtocolError(Exception):
    """The peer sent something that is not an SMTP reply.

    `replies` holds the replies the same `feed` completed before the fault, so
    a reader acts on them as it would have had they come in an earlier chunk."""

    def __init__(self, text: str, replies: list["Reply"] | None = None) -> None:
        super().__init__(text)
        self.replies = replies or []


@dataclass(frozen=True)
class Reply:
    """One complete SMTP reply; `lines` hold the text after "250-" / "250 "."""

    code: int
    lines: tuple[str, ...] = ("",)

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def enhanced(self) -> str:
        """The RFC 3463 status code at the start of the first line, or ""."""
        match = _ENHANCED.match(self.lines[0] if self.lines else "")
        if match is None or match.group(1) != str(self.code)[0]:
            return ""
        return match.group(0)

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return 500 <= self.code < 600

    def wire_lines(self) -> tuple[str, ...]:
        """The lines as sent on the wire, without line endings ("250-a", "250 b")."""
        *first, last = self.lines or ("",)
        return (*(f"{self.code}-{line}" for line in first),
                f"{self.code} {last}" if last else str(self.code))

    def to_bytes(self) -> bytes:
        return "".join(line + "\r\n" for line in self.wire_lines()).encode("utf-8")

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip(" ")


class ReplyParser:
    """Feed bytes as they arrive; get back the replies they complete."""

    def __init__(self) -> None:
        self._buffer = b""
        self._code: int | None = None      # code of the reply in progress
        self._lines: list[str] = []
        self._broken: ProtocolError | None = None

    @property
    def pending(self) -> bool:
        """True while a reply (or a line of one) is incomplete."""
        return bool(self._buffer or self._lines)

    def feed(self, data: bytes) -> list[Reply]:
        if self._broken is not None:
            raise ProtocolError(str(self._broken))     # the same fault, with no replies this time
        try:
            return self._feed(data)
        except ProtocolError as exc:
            self._broken = exc
            self._buffer = b""
            self._lines = []
            raise

    def _feed(self, data: bytes) -> list[Reply]:
        buffer = self._buffer + data
        *complete, self._buffer = buffer.split(b"\n")
        replies: list[Reply] = []
        try:
            for raw in complete:
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                if len(raw) > MAX_LINE:
                    raise ProtocolError(f"reply line longer than {MAX_LINE} octets")
                reply = self._line(raw.decode("utf-8", errors="replace"))
                if reply is not None:
                    replies.append(reply)
            # a partial line may still get its "\r": allow one octet for it
            if len(self._buffer) > MAX_LINE + 1 or (
                    len(self._buffer) == MAX_LINE + 1 and not self._buffer.endswith(b"\r")):
                raise ProtocolError(f"reply line longer than {MAX_LINE} octets")
        except ProtocolError as exc:
            exc.replies = replies
            raise
        return replies

    def _line(self, line: str) -> Reply | None:
        match = _LINE.match(line)
        if match is None or (match.group(2) == "" and match.group(3) != ""):
            raise ProtocolError(f"malformed reply line: {line[:80]!r}")
        code = int(match.group(1))
        if self._code is not None and code != self._code:
            raise ProtocolError(f"reply code changed from {self._code} to {code} "
                                "inside a multi-line reply")
        if len(self._lines) >= MAX_LINES:
            raise ProtocolError(f"reply longer than {MAX_LINES} lines")
        self._code = code
        self._lines.append(match.group(3))
        if match.group(2) == "-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._code, self._lines = None, []
        return reply
