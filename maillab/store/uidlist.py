"""`maillab-uidlist`: one folder's UIDVALIDITY, UIDs, MODSEQs and cached sizes.

The Maildir files say which messages exist and their flags; this file says
which UID each has had since it was first seen, so UIDs survive restarts and
outside changes (the role of Dovecot's `dovecot-uidlist`).  It is a text log:

    maillab-uidlist 1 V<uidvalidity> N<uidnext> M<highestmodseq>
    + <uid> <modseq> <rfc822 size> <internal date> <cur|new>/<file name>
    = <uid> <modseq> <cur|new>/<file name>        renamed: flags changed, or new/ → cur/
    - <uid> <modseq>                              expunged

The last record of a UID wins.  Changes are appended (O_APPEND, then fsync)
before anyone is told about them; when dead records pass half the live ones
the file is rewritten whole (temp file, fsync, rename, fsync the folder).

Invariants: UIDNEXT and HIGHESTMODSEQ never go down (on load they are the
maximum of the header and every record, expunged ones included); a torn last
line (crash during an append) is ignored and the file is rewritten before the
next append; a missing or unreadable header means the list is lost, and the
folder starts again with a new UIDVALIDITY (RFC 3501 §2.3.1.1).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..base.fsutil import fsync_path, write_all, write_durable

MAGIC = "maillab-uidlist"
VERSION = "1"


@dataclass(slots=True)
class Record:
    uid: int
    modseq: int
    size: int          # RFC822.SIZE (CRLF form)
    date: int          # internal date, seconds since the epoch
    relpath: str       # "cur/<file name>" or "new/<file name>"


@dataclass(slots=True)
class Loaded:
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    records: dict[int, Record]
    lines: int
    clean: bool        # False: a torn or garbled line was skipped; rewrite before appending


def add_line(r: Record) -> str:
    return f"+ {r.uid} {r.modseq} {r.size} {r.date} {r.relpath}\n"


def rename_line(uid: int, modseq: int, relpath: str) -> str:
    return f"= {uid} {modseq} {relpath}\n"


def gone_line(uid: int, modseq: int) -> str:
    return f"- {uid} {modseq}\n"


class UidList:
    FILENAME = MAGIC

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / self.FILENAME
        self.lines = 0                 # records in the file (header excluded)
        self.needs_rewrite = True      # until loaded clean or rewritten

    def load(self) -> Loaded | None:
        """Parse the file; None if it is missing or its header is not ours."""
        try:
            text = self.path.read_text("utf-8", "surrogateescape")
        except FileNotFoundError:
            return None
        head, _, body = text.partition("\n")
        fields = head.split(" ")
        if len(fields) != 5 or fields[0] != MAGIC or fields[1] != VERSION:
            return None
        try:
            values = {f[0]: int(f[1:]) for f in fields[2:]}
            uidvalidity, uidnext, highest = values["V"], values["N"], values["M"]
        except (KeyError, ValueError, IndexError):
            return None
        if not 0 < uidvalidity < 2 ** 32:
            return None
        records: dict[int, Record] = {}
        clean = True
        body_lines = body.split("\n")
        if body_lines[-1] != "":
            clean = False              # torn last line: no newline after it
        body_lines.pop()
        top_uid, top_mod = uidnext - 1, highest
        for line in body_lines:
            try:
                if line[0] == "+":
                    _, u, m, size, date, relpath = line.split(" ", 5)
                    uid, modseq = int(u), int(m)
                    records[uid] = Record(uid, modseq, int(size), int(date), relpath)
                elif line[0] == "=":
                    _, u, m, relpath = line.split(" ", 3)
                    uid, modseq = int(u), int(m)
                    rec = records[uid]
                    rec.modseq, rec.relpath = modseq, relpath
                elif line[0] == "-":
                    _, u, m = line.split(" ")
                    uid, modseq = int(u), int(m)
                    records.pop(uid, None)
                else:
                    raise ValueError(line)
            except (ValueError, IndexError, KeyError):
                clean = False
                continue
            if uid > top_uid:
                top_uid = uid
            if modseq > top_mod:
                top_mod = modseq
        self.lines, self.needs_rewrite = len(body_lines), not clean
        return Loaded(uidvalidity, top_uid + 1, top_mod, records, len(body_lines), clean)

    def append(self, lines: Iterable[str], sync: bool = True) -> None:
        """Append records and fsync (unless not `sync`: the next fsynced append or rewrite covers them);
        FileNotFoundError if the file vanished (rewrite then)."""
        data = "".join(lines).encode("utf-8", "surrogateescape")
        if not data:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.lines += data.count(b"\n")

    def rewrite(self, uidvalidity: int, uidnext: int, highestmodseq: int,
                records: Iterable[Record]) -> None:
        """Replace the whole file atomically with the live records."""
        body = [f"{MAGIC} {VERSION} V{uidvalidity} N{uidnext} M{highestmodseq}\n"]
        body += [add_line(r) for r in records]
        tmp = self.folder / "tmp" / f"{self.FILENAME}.{os.getpid()}.{secrets.token_hex(4)}"
        write_durable(self.path, "".join(body).encode("utf-8", "surrogateescape"), tmp=tmp, sync_dir=False)
        fsync_path(self.folder)
        self.lines, self.needs_rewrite = len(body) - 1, False

    def should_compact(self, live: int) -> bool:
        """Due when dead records pass half the live ones (and 1000): loads stay fast."""
        return self.needs_rewrite or self.lines > live + max(1000, live // 2)
