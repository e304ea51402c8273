"""Framing of what an IMAP client sends: lines and literals, with limits (sans-IO).

RFC 3501 §2.2 and §4.3: a command is a line, unless the line ends in a
literal announcement `{n}`; then n octets follow, and the command goes on
with the next line.  The client waits for our continuation request ("+ ...")
before sending a synchronizing literal; with LITERAL+ (`{n+}`, RFC 7888) it
does not wait.  `Framer` turns the byte stream into whole commands
(`RawCommand`: line segments and the literals between them) or, while a
command such as IDLE or AUTHENTICATE waits for a bare line, into `RawLine`s.

Invariants:
- an announced literal size is checked against its limit *before* the "+ "
  is sent: APPEND may carry `max_append` octets, every other command
  `max_literal`, and a whole non-APPEND command (lines plus literals) at most
  `max_command`.  A refused synchronizing literal is never sent by the
  client; a refused non-synchronizing one is read and dropped as it arrives
  (counted, never stored), so memory stays bounded either way;
- the message literals of APPEND that all sessions hold at once stay within
  one budget (`APPEND_IN_FLIGHT`, a `maillab.smtp.budget.MemoryBudget`): an
  APPEND that would go over it is refused like a too-big one, with
  `NO [LIMIT]`, before its "+ ".  A literal's octets are held from its
  announcement until the framer is asked for the next command (its APPEND
  has run by then) or `release()`d as the session ends;
- a line longer than `max_line` is dropped as it arrives, up to its end;
- after any framing error the partial command is forgotten and framing
  starts again at the next line;
- the framer only frames when asked (`next()`), so the continuation request
  for a pipelined command goes out after the responses to earlier commands.

Transcript: every line segment becomes one client line; a literal appears as
"{n bytes literal}" at the start of the segment that follows it, never dumped.
LOGIN passwords and SASL responses are hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal

from ..smtp.budget import MemoryBudget
from ..smtp.transcript import printable

MAX_LINE = 64 * 1024                # octets in one line segment
MAX_LITERAL = 64 * 1024             # one literal of a command other than APPEND
MAX_APPEND = 64 * 1024 * 1024       # the message literal of APPEND (APPENDLIMIT, RFC 7889)
MAX_COMMAND = 1024 * 1024           # lines and literals of one command other than APPEND

APPEND_IN_FLIGHT = MemoryBudget(2 * MAX_APPEND)     # APPEND literals of every session of the process

Mode = Literal["command", "idle", "sasl"]

_LITERAL = re.compile(rb"\{(\d{1,20})(\+?)\}$")
_TAG = re.compile(rb"^([\x21-\x7e]{1,64}?) ")
_APPEND = re.compile(rb"^[\x21-\x7e]+ +APPEND ", re.IGNORECASE)
_LOGIN = re.compile(rb'^([\x21-\x7e]+ +LOGIN +("(?:[^"\\]|\\.)*"|[^ ]*))(.*)$', re.IGNORECASE | re.DOTALL)
_AUTH_IR = re.compile(rb"^([\x21-\x7e]+ +AUTHENTICATE +[^ ]+) +.+$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RawCommand:
    """One whole command: `literals[i]` came between `lines[i]` and `lines[i + 1]`."""
    lines: tuple[bytes, ...]
    literals: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line read in "idle" or "sasl" mode (IDLE's DONE, a SASL response)."""
    text: bytes


@dataclass(frozen=True, slots=True)
class FramingError:
    """The client broke a limit; answer `tag` (None: untagged) with NO or BAD."""
    tag: str | None
    text: str
    code: str = ""
    no: bool = False


Frame = RawCommand | RawLine | FramingError


def tag_of(line: bytes) -> str | None:
    """The tag a line starts with, if it has a plausible one (for error responses)."""
    m = _TAG.match(line)
    if m is None:
        return None
    tag = m.group(1).decode("ascii")
    return None if any(c in '(){%*"\\+' for c in tag) else tag


class Framer:
    def __init__(self, send: Callable[[bytes, str], None], note: Callable[[str], None], *,
                 max_line: int = MAX_LINE, max_literal: int = MAX_LITERAL,
                 max_append: int = MAX_APPEND, max_command: int = MAX_COMMAND,
                 budget: MemoryBudget | None = None) -> None:
        """`send(wire, transcript_text)` queues a continuation request; `note(text)` a client line;
        APPEND literals are taken from `budget` (default `APPEND_IN_FLIGHT`)."""
        self._send = send
        self._note = note
        self.max_line, self.max_literal = max_line, max_literal
        self.max_append, self.max_command = max_append, max_command
        self._buf = bytearray()
        self._scan = 0                  # LF search resumes here
        self._lines: list[bytes] = []
        self._literals: list[bytes] = []
        self._literal = bytearray()
        self._need = -1                 # octets of the current literal still to come; -1: none
        self._discard = 0               # octets of a refused literal still to drop
        self._skip_line = False         # drop input up to the end of the current line
        self._size = 0
        self._after_literal: int | None = None   # size of the literal before the next segment
        self._hide = ""                 # "login": the command is LOGIN (hide its password)
        self.budget = budget if budget is not None else APPEND_IN_FLIGHT
        self._held = 0                  # octets taken from the budget for the current APPEND

    # ---- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        """Octets held: unframed input plus the literal being collected."""
        return len(self._buf) + len(self._literal)

    @property
    def unframed(self) -> int:
        """Octets received but not yet framed (a literal being collected not included)."""
        return len(self._buf)

    @property
    def mid_command(self) -> bool:
        """True while a command has begun but is not complete (a partial line or literal)."""
        return bool(self._buf) or bool(self._lines) or self._need >= 0 or self._discard > 0

    def release(self) -> None:
        """Give back what the current APPEND holds of the budget (the session is over)."""
        self.budget.give(self._held)
        self._held = 0

    def next(self, mode: Mode = "command") -> Frame | None:
        """The next whole command (or line, in "idle"/"sasl" mode), an error, or None for more data."""
        buf = self._buf
        if self._held and self._need < 0 and not self._lines:
            self.release()                      # the APPEND that held it has been answered
        while True:
            if self._discard:
                n = min(self._discard, len(buf))
                del buf[:n]
                self._discard -= n
                self._scan = 0
                if self._discard:
                    return None
                self._skip_line = True          # the rest of the refused command's line
            if self._need >= 0:
                take = min(self._need, len(buf))
                if take:
                    self._literal += buf[:take]
                    del buf[:take]
                    self._need -= take
                if self._need:
                    return None
                self._literals.append(bytes(self._literal))
                self._after_literal = len(self._literal)
                self._literal.clear()
                self._need = -1
                self._scan = 0
                continue
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                if self._skip_line:
                    # keep the tail: it may hold the start of a "{n+}" marker that ends this line
                    if len(buf) > 32:
                        del buf[:-32]
                    self._scan = len(buf)
                    return None
                if len(buf) > self.max_line:
                    return self._line_too_long()
                self._scan = len(buf)
                return None
            line = bytes(buf[:nl])
            del buf[:nl + 1]
            self._scan = 0
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._skip_line:
                self._skip_line = False
                m = _LITERAL.search(line)
                if m is not None and m.group(2):
                    self._discard = int(m.group(1))  # a LITERAL+ the client sends anyway
                continue
            if len(line) > self.max_line:
                return self._line_too_long(line)
            if mode != "command":
                self._note_line(line, mode)
                return RawLine(line)
            frame = self._segment(line)
            if frame is not None:
                return frame

    def _segment(self, line: bytes) -> Frame | None:
        """One line segment of a command: complete it, or start a literal."""
        first = not self._lines
        if first:
            self._hide = "login" if _LOGIN.match(line) else ""
            self._size = 0
        self._size += len(line) + 2
        self._note_line(line, "command", first)
        m = _LITERAL.search(line)
        if m is None:
            self._lines.append(line)
            cmd = RawCommand(tuple(self._lines), tuple(self._literals))
            self._reset()
            return cmd
        digits, plus = m.group(1), bool(m.group(2))
        n = int(digits)
        append = bool(_APPEND.match(self._lines[0] if self._lines else line))
        limit = self.max_append if append else min(self.max_literal, self.max_command - self._size)
        tag = tag_of(self._lines[0] if self._lines else line)
        if n > limit:
            if append:
                return self._refuse(tag, n, plus, f"Message too big: {n} octets, the limit is "
                                                  f"{self.max_append} (APPENDLIMIT)", "TOOBIG", no=True)
            return self._refuse(tag, n, plus, f"Literal too big: {n} octets, the limit for this command "
                                              f"is {max(limit, 0)}", "TOOBIG")
        if append:
            if not self.budget.take(n):
                return self._refuse(tag, n, plus, "Too many messages being appended at once, "
                                                  "try again later", "LIMIT", no=True)
            self._held += n
        self._lines.append(line[:m.start()])
        self._size += n
        self._need = n
        if not plus:
            self._send(b"+ Ready for literal data\r\n", "+ Ready for literal data")
        return None

    def _refuse(self, tag: str | None, n: int, plus: bool, text: str, code: str, no: bool = False) -> FramingError:
        """Refuse an announced literal of `n` octets: forget the command, drop a LITERAL+ as it comes."""
        self._reset()
        if plus:
            self._discard = n
            if n == 0:
                self._skip_line = True
        return FramingError(tag, text, code, no=no)

    def _line_too_long(self, line: bytes | None = None) -> FramingError:
        head = bytes(self._lines[0]) if self._lines else bytes(line if line is not None else self._buf[:80])
        tag = tag_of(head)
        size = len(line) if line is not None else len(self._buf)
        self._note(f"({size}+ octets of an overlong line dropped)")
        self._reset()
        if line is None:
            self._buf.clear()
            self._skip_line = True
        return FramingError(tag, f"Line too long: the limit is {self.max_line} octets", "TOOBIG")

    def _reset(self) -> None:
        self._lines = []
        self._literals = []
        self._need = -1
        self._literal.clear()
        self._size = 0
        self._after_literal = None
        self._hide = ""

    # ---- transcript ----------------------------------------------------------------------

    def _note_line(self, line: bytes, mode: Mode, first: bool = False) -> None:
        prefix = ""
        if self._after_literal is not None:
            prefix = f"{{{self._after_literal} bytes literal}}"
            self._after_literal = None
        if mode == "sasl":
            text = f"(SASL response, {len(line)} octets, hidden)" if line != b"*" else "*"
        elif self._hide == "login":
            if first:
                m = _LOGIN.match(line)
                assert m is not None
                text = printable(m.group(1)) + (" ***" if m.group(3).strip() else "")
            else:
                text = " ***" if line.strip() else ""
        else:
            m = _AUTH_IR.match(line) if first else None
            text = printable(m.group(1)) + " ***" if m is not None else printable(line)
        self._note(prefix + text)
