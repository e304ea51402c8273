"""Durable file writes: the few primitives behind "fsync before 250".

`write_all` loops until every byte is written; `write_new` creates a file that
did not exist (not yet durable); `write_durable` creates a file under a temp
name, fsyncs it and renames it into place, then fsyncs the folder so the
rename itself survives a power cut.  `private_dir` makes (or checks) a folder
only its owner may enter: 0700, owned by us, umask-independent.

Multi-step writes are written once as *durability steps*: a generator that
does its file work and yields the paths that must be on stable storage before
it may go on (a file before its rename, a folder after it), then returns its
result.  Before work that may block for long (a lock other threads hold, a
folder scan) they yield `MAY_BLOCK` instead of paths.  `finish` drives such
steps in place with fsync (worker threads, scripts); `Syncer.run`
(maillab.base.syncer) drives them in its thread with group commit, and moves
them to a pool thread at `MAY_BLOCK`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Generator, TypeVar

T = TypeVar("T")
StrPath = str | Path
Steps = Generator[list[StrPath], None, T]

MAY_BLOCK: list[StrPath] = []
"""Yielded by durability steps, instead of paths to flush, before a part that may block for long."""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _writev_all(fd: int, pieces: list[bytes]) -> None:
    done, total = os.writev(fd, pieces), sum(map(len, pieces))
    if done < total:                        # a short write: the rest, the simple way
        write_all(fd, b"".join(pieces)[done:])


def fsync_path(path: StrPath) -> None:
    """fsync a file or a folder by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: StrPath, data: bytes | list[bytes], mtime: float | None = None,
              fsync: bool = False) -> None:
    """Create `path` (it must not exist) holding `data` (or its pieces, one after the other,
    written without joining them first), mtime set if given; fsynced only if asked.

    On failure the partial file is removed and the error raised.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if isinstance(data, list):
            _writev_all(fd, data)
        else:
            write_all(fd, data)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):      # the error to report is the first one
            os.unlink(path)
        raise
    os.close(fd)


def append_file(path: StrPath, source: BinaryIO) -> None:
    """Append the whole content of the open file `source` to `path`, copied in the kernel
    (copy_file_range) where the file system allows, else through a 1 MiB buffer; no fsync."""
    fd = os.open(path, os.O_WRONLY)          # not O_APPEND: copy_file_range refuses it
    try:
        src, offset, at = source.fileno(), 0, os.fstat(fd).st_size
        end = os.fstat(src).st_size
        while offset < end:
            try:
                done = os.copy_file_range(src, fd, end - offset, offset, at + offset)
            except OSError as e:
                if e.errno not in _NO_KERNEL_COPY:
                    raise
                done = os.pwrite(fd, os.pread(src, min(end - offset, 1 << 20), offset), at + offset)
            if done == 0:
                raise OSError(f"{path}: copy stopped at {offset} of {end} octets")
            offset += done
    finally:
        os.close(fd)


_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM}


def overwrite(path: StrPath, data: list[bytes]) -> None:
    """Replace what the existing file `path` holds with `data` (its pieces, one after the
    other), in place: no new inode, its blocks reused; no fsync."""
    fd = os.open(path, os.O_WRONLY)
    try:
        _writev_all(fd, data)
        os.ftruncate(fd, sum(map(len, data)))
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes, tmp: Path | None = None, sync_dir: bool = True) -> None:
    """Write `data` to `path`: temp file, fsync, rename (then fsync the folder)."""
    tmp = tmp or path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    write_new(tmp, data, fsync=True)
    os.rename(tmp, path)
    if sync_dir:
        fsync_path(path.parent)


class UnsafeFolder(Exception):
    """A folder we did not make for ourselves: another user's, or others may write in it."""


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) mode 0700 whatever the umask, or accept an
    existing one only if we own it and neither group nor others may write in it (then it
    is made 0700 too); raises UnsafeFolder otherwise. Does not follow a symlink at `path`."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{path}: not a folder")
    if st.st_uid != os.getuid():
        raise UnsafeFolder(f"{path}: owned by uid {st.st_uid}, not by us (uid {os.getuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeFolder(f"{path}: group or others may write in it (mode "
                           f"{stat.S_IMODE(st.st_mode):o}); refusing to use it")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def finish(steps: Steps[T]) -> T:
    """Run durability steps here and now, fsyncing each path they ask for. Blocking."""
    try:
        paths = next(steps)
        while True:
            try:
                for path in dict.fromkeys(paths):
                    fsync_path(path)
            except BaseException as e:
                paths = steps.throw(e)
            else:
                paths = steps.send(None)
    except StopIteration as stop:
        return stop.value
