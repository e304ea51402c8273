"""Maildir files: unique names, sizes in the name, durable writes, header reads.

One message is one file, never changed after it is written (only renamed), so
a reader needs no lock.  File names follow the MDA's and Dovecot's shape:

    <secs>.M<usec>P<pid>Q<n>R<random>.<host>,S=<stored size>,W=<CRLF size>[,I=<tag>]:2,<flags>

The part before ":" is the *base*, stable for the life of a message in one
folder; `,S=` is the size on disk (LF line endings, as stored), `,W=` the
RFC822.SIZE that IMAP and POP3 report (every LF counted as CRLF), cached in the
name so that neither needs to read the file.  `,I=` is the MDA's delivery tag
(queue ID and recipient), by which a restart sees a delivery already made.  Files dropped in by other
programs may lack them; `size_of` then reads the file once.

Writes follow the Maildir rule: write into `tmp/` (`write_tmp`), fsync, then
the caller renames into `new/` or `cur/` and fsyncs that folder once per operation.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path

from ..base.fsutil import write_new

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_pid = os.getpid()          # getpid(2) is a real system call on every call: ask once per process
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_pid", os.getpid()))
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
_S_FIELD = re.compile(r",S=(\d+)")
_W_FIELD = re.compile(r",W=(\d+)")
_I_FIELD = re.compile(r",I=([^,:\n]+)")
_BLANK_LINE = re.compile(rb"(?:^|\n)\r?\n")


def unique_name() -> str:
    """A new unique part of a file name: unique per host, process and call (the Maildir recipe)."""
    with _counter_lock:
        n = next(_counter)
    now = time.time()
    return f"{int(now)}.M{int(now % 1 * 1e6)}P{_pid}Q{n}R{secrets.token_hex(4)}.{_HOST}"


def filename(unique: str, stored_size: int, crlf: int, letters: str | None, tag: str = "") -> str:
    """`unique,S=..,W=..[,I=tag]` (the base) plus `:2,letters` (None: no info, as in new/)."""
    name = f"{unique},S={stored_size},W={crlf}" + (f",I={tag}" if tag else "")
    return name if letters is None else f"{name}:2,{letters}"


def sizes_in_name(base: str) -> tuple[int | None, int | None]:
    """(S=, W=) from a base name; None where absent."""
    s, w = _S_FIELD.search(base), _W_FIELD.search(base)      # a count of a big Maildir reads every name
    return (int(s[1]) if s else None), (int(w[1]) if w else None)


def tags_in(folder: Path) -> set[str]:
    """The delivery tags (`,I=`) of every message file in new/ and cur/ of one Maildir folder:
    one listing per subfolder and one search over all the names."""
    names: list[str] = []
    for sub in ("new", "cur"):
        try:
            names += os.listdir(folder / sub)
        except FileNotFoundError:
            continue
    return set(_I_FIELD.findall("\n".join(names)))


def folder_totals(folder: Path) -> tuple[int, int, int]:
    """(messages, unseen, RFC822 size) of one Maildir folder, read-only.

    A flooded INBOX holds tens of thousands of files and the TUI counts it
    while the lab runs, so the work per file is done in C: one listing per
    subfolder, one search for the W= sizes over all the names; a file whose
    name has no W= is stat'ed.  Unseen: everything in new/, and what in cur/
    lacks the S flag."""
    messages = unseen = size = 0
    for sub in ("new", "cur"):
        try:
            names = [n for n in os.listdir(folder / sub) if not n.startswith(".")]
        except FileNotFoundError:
            continue
        sized = _W_FIELD.findall("\n".join(names))
        size += sum(map(int, sized))
        gone = 0
        if len(sized) < len(names):
            for name in names:
                if ",W=" not in name:
                    try:
                        size += os.stat(folder / sub / name).st_size
                    except FileNotFoundError:
                        gone += 1                   # expunged, or moved to cur/, meanwhile
        messages += len(names) - gone
        if sub == "new":
            unseen += len(names) - gone
        else:
            unseen += sum(1 for n in names if "S" not in n.partition(":2,")[2])
    return messages, unseen, size


def to_lf(data: bytes) -> bytes:
    """The stored form: CRLF line endings become LF (bare CR is left alone)."""
    return data.replace(b"\r\n", b"\n")


def to_crlf(data: bytes) -> bytes:
    """The wire form: every line ends in CRLF (RFC 5322 §2.1)."""
    if b"\r\n" in data:
        data = data.replace(b"\r\n", b"\n")
    return data.replace(b"\n", b"\r\n")


def crlf_size(data: bytes) -> int:
    """len(to_crlf(data)) without building it (a stored message, in LF, has no CR to count)."""
    crlf = data.count(b"\r\n") if b"\r" in data else 0
    return len(data) + data.count(b"\n") - crlf


def size_of(path: str | Path, base: str) -> int:
    """RFC822.SIZE of a message file: from its name's W=, else by reading it."""
    _s, w = sizes_in_name(base)
    if w is not None:
        return w
    with open(path, "rb") as f:
        return crlf_size(f.read())


def write_tmp(folder: Path, unique: str, data: bytes, mtime: float) -> Path:
    """Write `data` to `folder/tmp/<unique>` with its mtime (the internal date); not yet durable.

    The caller makes it durable, renames it into `new/` or `cur/` and makes that directory durable.
    """
    tmp = folder / "tmp" / unique
    write_new(tmp, data, mtime)
    return tmp


def read_file(path: str | Path) -> bytes:
    """A whole message file (plain os calls: cheaper than pathlib and io for small files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) <= size:               # a short read (or a file still growing): read on to the end
            parts = [data]
            while block := os.read(fd, 1 << 20):
                parts.append(block)
            data = b"".join(parts)
        return data
    finally:
        os.close(fd)


def _header_end(data: bytes) -> int:
    """Where the body begins (just after the blank line), or -1 if `data` holds no blank line."""
    if b"\r" not in data:                  # stored form, LF only: no regular expression needed
        if data[:1] == b"\n":
            return 1
        i = data.find(b"\n\n")
        return -1 if i < 0 else i + 2
    m = _BLANK_LINE.search(data)
    return -1 if m is None else m.end()


def read_header(path: str | Path, chunk: int = 8192) -> bytes:
    """The header of a message file, up to and including the blank line that ends it.

    Reads only as far as needed; a message without a body is returned whole.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        data = b""
        while True:
            block = os.read(fd, chunk)
            if not block:
                return data
            data += block
            end = _header_end(data)
            if end >= 0:
                return data[:end]
    finally:
        os.close(fd)
