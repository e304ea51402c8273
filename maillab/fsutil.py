"""Durable file writes: the few primitives behind "fsync before 250".

`write_all` loops until every byte is written; `write_durable` creates a file
under a temp name, fsyncs it and renames it into place, then fsyncs the folder
so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes, tmp: Path | None = None, sync_dir: bool = True) -> None:
    """Write `data` to `path`: temp file, fsync, rename (then fsync the folder)."""
    tmp = tmp or path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)
