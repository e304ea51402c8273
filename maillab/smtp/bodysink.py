"""Where the octets of a message body go while DATA is read: memory, then a spill file.

A `BodySink` keeps the first octets in memory, taken from the shared
`MemoryBudget`; once a body passes `SPILL_AT` and a spill folder is given (the
host's spool), everything held so far and all that follows goes to a temp file
`.body-<random>.tmp` there, written as it arrives, and the memory goes back to
the budget.  So a body in flight holds at most `SPILL_AT` octets of memory,
however big; the spool makes its entry from the file (`Spool.accept(...,
body=)`: a kernel copy, fsync, rename).  `.tmp` files are what the spool
deletes at start, so a crash leaves nothing behind for long.

Plain files and bytes: no dependency on the SMTP server's library.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

from .budget import MemoryBudget

SPILL_AT = 256 * 1024        # octets held in memory before the body goes to a file


class BodySink:
    """The stored body of one message; `write` says False when there is no room for it."""

    def __init__(self, spill_folder: Path | None = None, budget: MemoryBudget | None = None,
                 spill_at: int = SPILL_AT) -> None:
        self.spill_folder = spill_folder
        self.budget = budget
        self.spill_at = spill_at
        self.size = 0               # octets stored
        self.held = 0               # octets in memory, taken from the budget
        self.largest = 0            # the most octets ever in memory at once
        self.file: BinaryIO | None = None   # the spill file, once spilled
        self.path: Path | None = None
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> bool:
        if self.file is None and self.spill_folder is not None and self.held + len(data) > self.spill_at:
            self._spill()
        if self.file is not None:
            self.file.write(data)
        else:
            if self.budget is not None and not self.budget.take(len(data)):
                return False
            self.held += len(data)
            self.largest = max(self.largest, self.held)
            self._parts.append(data)
        self.size += len(data)
        return True

    def content(self) -> bytes:
        """The body as bytes: only for a body still in memory."""
        assert self.file is None, "a spilled body is read from its file"
        if len(self._parts) > 1:
            self._parts[:] = [b"".join(self._parts)]   # one copy held, not two
        return self._parts[0] if self._parts else b""

    def spilled(self) -> BinaryIO | None:
        """The spill file, flushed, for a copy from its start; None for a body in memory."""
        if self.file is not None:
            self.file.flush()
        return self.file

    def discard(self) -> None:
        """Drop the body: memory back to the budget, the spill file closed and deleted."""
        self._parts.clear()
        if self.budget is not None:
            self.budget.give(self.held)
        self.held = 0
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    def _spill(self) -> None:
        path = self.spill_folder / f".body-{secrets.token_hex(8)}.tmp"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self.path, self.file = path, os.fdopen(fd, "w+b")
        for part in self._parts:
            self.file.write(part)
        self._parts.clear()
        if self.budget is not None:
            self.budget.give(self.held)
        self.held = 0
