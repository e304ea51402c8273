"""Reading the message that follows DATA: sans-IO, chunk at a time (RFC 5321 §4.5.2).

`DataReader.feed(chunk)` takes bytes as they arrive, split anywhere, and finds
the end-of-data line.  It removes the transparency dot, turns every line
ending into CRLF, and checks the limits of RFC 5321: lines of at most 1000
octets with their CRLF (§4.5.3.1.6), the message size announced in EHLO SIZE
(RFC 1870), and no NUL (RFC 5322 §2.3: a message is characters 1-127 and
UTF-8; refused as Postfix's `message_reject_characters = \0` would).

Which "." line ends the message (SMTP smuggling, CVE-2023-51766 and kin: a
relay passes on `<LF>.<LF>` inside a body, a lax receiver sees two messages):
a lone "." line ends it only if its own line ending and the one before it are
both CRLF, `<CR><LF>.<CR><LF>` as RFC 5321 §4.1.1.4 has it.  `<LF>.<LF>`,
`<LF>.<CR><LF>` and `<CR><LF>.<LF>` are message lines (the dot removed as a
transparency dot, as for any line starting with one).  One exception, for a
person at nc (`lf_end`): a client whose DATA command itself ended in a bare
LF may end with `<LF>.<LF>` too (never with the mixed forms).  A relay, the
only party smuggling works through, speaks CRLF, so its DATA line never
turns that on.  Bare-LF lines are message lines ending in CRLF (Postfix's
`smtpd_forbid_bare_newline = normalize`); with `forbid_bare_lf` (the
"pedantic" line endings) the first one stops the message (`BARE_LF`).

Work is done with whole-buffer byte operations (split, regex, join), never a
Python loop per line, so a 100 KB message costs a few scans.  Over a limit, the
reader keeps scanning for the end but stores nothing more.  The message goes to
a `BodySink`: memory up to its spill threshold, then a file in the spool, so a
reader holds at most that threshold plus one chunk, whatever the message size.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

from .bodysink import BodySink
from .budget import MemoryBudget

MAX_LINE = 1000  # octets including CRLF, RFC 5321 §4.5.3.1.6

_BARE_LF = re.compile(rb"(?<!\r)\n")
_STUFFED = re.compile(rb"^\.", re.M)


def _end_line(block: bytes, lf_end: bool = False, after_crlf: bool = True) -> tuple[tuple[int, int] | None, bool]:
    """Where the first end-of-data line of `block` (whole lines) starts and ends, if it has
    one, and whether a line starting with a dot comes before it (then there is unstuffing
    to do).  `after_crlf`: the line before `block` ended in CRLF; `lf_end`: `<LF>.<LF>`
    ends the data too (see the module's docstring).

    `bytes.find` jumps from one line that starts with a dot to the next (a
    multi-line regex would try every position).
    """
    i = 0 if block.startswith(b".") else block.find(b"\n.") + 1 or -1
    dots = False
    while i >= 0:
        crlf_before = after_crlf if i == 0 else block[i - 2:i - 1] == b"\r"
        if crlf_before and block.startswith(b".\r\n", i):
            return (i, i + 3), dots
        if lf_end and not crlf_before and block.startswith(b".\n", i):
            return (i, i + 2), dots
        dots = True
        i = block.find(b"\n.", i) + 1 or -1
    return None, dots


class DataStatus(enum.Enum):
    OK = "ok"
    TOO_BIG = "too big"          # 552 5.3.4
    LINE_TOO_LONG = "line too long"  # 500 5.5.2 (after the final dot)
    NO_STORAGE = "no storage"    # 452 4.3.1: the in-flight budget is spent
    NUL = "nul"                  # 554 5.6.0: a NUL octet in the message
    BARE_LF = "bare lf"          # a bare LF with forbid_bare_lf: refused at once


class DataReader:
    """Feed bytes after the 354; `done` turns true at the end-of-data line."""

    def __init__(self, max_size: int, max_line: int = MAX_LINE,
                 budget: MemoryBudget | None = None, spill_folder: Path | None = None, *,
                 lf_end: bool = False, forbid_bare_lf: bool = False) -> None:
        self.max_size = max_size
        self.lf_end = lf_end
        self.forbid_bare_lf = forbid_bare_lf
        self._after_crlf = not lf_end   # the DATA line's own ending: bare LF when lf_end
        # the stored message: memory from `budget` (shared across sessions), then a file
        # in `spill_folder`; `release()` gives both back
        self.body = BodySink(spill_folder, budget)
        self.max_line = max_line
        self.status = DataStatus.OK
        self.done = False
        self.leftover = b""        # bytes after the end-of-data line
        self.size = 0              # octets of message received (after unstuffing)
        self.lines = 0
        self.taken = 0             # octets fed, up to the end of the end-of-data line
        self.end_line = 0          # octets of that line (".\r\n": 3)
        self._carry = b""          # an incomplete last line
        self._skipping = False     # inside an over-long line: drop until its LF

    def feed(self, data: bytes) -> None:
        """Take the next bytes."""
        if self.done:
            self.leftover += data
            return
        self.taken += len(data)
        block = self._carry + data if self._carry else data
        cut = block.rfind(b"\n") + 1
        complete, self._carry = block[:cut], block[cut:]
        if self._skipping and complete:
            # the rest of an over-long line ends at the first LF
            complete = complete[complete.index(b"\n") + 1:]
            self._skipping = False
        if len(self._carry) > self.max_line + 1:  # room for a stuffed dot and a CR
            self._over_line()
            self._carry = self._carry[-1:] if self._carry.endswith(b"\r") else b""
            self._skipping = True
        if not complete:
            return
        end, dots = _end_line(complete, self.lf_end, self._after_crlf)
        self._after_crlf = complete.endswith(b"\r\n")
        if end is not None:
            self.leftover = complete[end[1]:] + self._carry
            self._carry = b""
            complete = complete[:end[0]]
            self.done = True
            self.taken -= len(self.leftover)
            self.end_line = end[1] - end[0]
        self._take(complete, dots)

    def message(self) -> bytes:
        """The message with CRLF line endings, unstuffed (valid once done and OK, for a
        body kept in memory; a spilled one is `body.spilled()`)."""
        return self.body.content()

    def release(self) -> None:
        """Drop the stored message: its memory back to the budget, its spill file deleted."""
        self.body.discard()

    def _over_line(self) -> None:
        self._refuse(DataStatus.LINE_TOO_LONG)

    def _refuse(self, status: DataStatus) -> None:
        """The message will be refused: the first reason is the one given; nothing more is kept."""
        if self.status is DataStatus.OK:
            self.status = status
            self.release()

    def _take(self, lines: bytes, dots: bool) -> None:
        """Store whole lines: CRLF endings, transparency dots removed (`dots`: there are some)."""
        if not lines:
            return
        pieces = lines.split(b"\n")
        self.lines += len(pieces) - 1
        longest = max(map(len, pieces))
        if len(pieces) - 1 != lines.count(b"\r\n"):
            if self.forbid_bare_lf:
                self._refuse(DataStatus.BARE_LF)
                return
            lines = _BARE_LF.sub(b"\r\n", lines)
        if b"\x00" in lines:
            self._refuse(DataStatus.NUL)
        if dots:
            lines = _STUFFED.sub(b"", lines)
        # A piece is a line's text, perhaps with its CR and a stuffed dot: at most
        # 998 octets, no line can be too long; else measure the lines as stored.
        if self.status is DataStatus.OK and longest > self.max_line - 2 \
                and max(map(len, lines.split(b"\n"))) > self.max_line - 1:
            self._over_line()  # a line of more than 998 octets before its CRLF
        self.size += len(lines)
        if self.status is not DataStatus.OK:
            return
        if self.size > self.max_size:
            self.status = DataStatus.TOO_BIG
            self.release()
            return
        if not self.body.write(lines):
            self.status = DataStatus.NO_STORAGE
            self.release()
