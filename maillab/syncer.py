"""Group commit: the loop writes files, one thread makes many writers' files durable at once.

A writer puts its bytes in the page cache on the loop thread (cheap), then
`await syncer.flush(paths)`; it resumes once those files and folders are on
stable storage.  Requests that arrive while a flush is running share the next
one, so ten concurrent SMTP sessions cost one flush, not ten, and the loop
never waits on the disk itself.

How a flush is done:
- on Linux, one `syncfs(2)` of the file system holding the state folder.  Its
  man page: since Linux waits for the I/O, "sync() or syncfs() provide the
  same guarantees as fsync() called on every file in the system or
  filesystem respectively";
- elsewhere (or if syncfs fails as unsupported), `fsync` of every distinct
  path of the batch, files and folders alike.

Why a thread of its own: a flush blocks for a fraction of a millisecond to a
few; the default executor would wake a different thread per request and every
small system call in those threads would hand the GIL back and forth with the
loop (measured: over a hundred futex calls per accepted message).  Here the
worker holds the GIL only to take a batch and to hand the results back.

Order matters to callers: what must be durable *before* a rename (the file)
and what makes the rename durable (its folder) are two flushes.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import queue
import sys
import threading
from typing import Iterable, TypeVar

from .fsutil import Steps, StrPath

T = TypeVar("T")
_Request = tuple["asyncio.Future[None]", tuple[StrPath, ...]]    # a waiter and the paths it needs flushed


def _syncfs_function() -> "ctypes._NamedFuncPointer | None":
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


class Syncer:
    def __init__(self, folder: StrPath, use_syncfs: bool = True) -> None:
        self._folder_fd = os.open(folder, os.O_RDONLY)
        self._syncfs = _syncfs_function() if use_syncfs else None
        self._pending: list[_Request] = []            # asked during this turn of the loop
        self._requests: queue.SimpleQueue[list[_Request] | None] = queue.SimpleQueue()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.flushes = 0            # how many flushes ran (for tests and benchmarks)

    @property
    def method(self) -> str:
        return "syncfs" if self._syncfs is not None else "fsync"

    async def flush(self, paths: Iterable[StrPath]) -> None:
        """Return once `paths` (files or folders) are durable; OSError if the flush failed."""
        if self._closed:
            raise RuntimeError("syncer closed")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="maillab-sync", daemon=True)
            self._thread.start()
        future = loop.create_future()
        self._pending.append((future, tuple(paths)))
        if len(self._pending) == 1:
            loop.call_soon(self._hand_over)            # once per turn of the loop: one wake-up
        await future

    def _hand_over(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._requests.put(batch)

    async def run(self, steps: Steps[T], first_in_thread: bool = False) -> T:
        """Drive durability steps (maillab.fsutil): their file work on the loop, flushes here.

        `first_in_thread`: do the first step (usually writing a big file) in a worker thread.
        """
        try:
            paths = await asyncio.to_thread(next, steps) if first_in_thread else next(steps)
            while True:
                try:
                    if paths:
                        await self.flush(paths)
                except BaseException as e:
                    paths = steps.throw(e)
                else:
                    paths = steps.send(None)
        except StopIteration as stop:
            return stop.value

    def close(self) -> None:
        """Stop the thread after the flush in progress (requests still waiting get an error)."""
        self._closed = True
        pending, self._pending = self._pending, []
        _resolve(pending, RuntimeError("syncer closed"))   # asked this turn, not handed over yet
        self._requests.put(None)
        if self._thread is not None:
            self._thread.join(10)
        os.close(self._folder_fd)

    # --- the worker thread ---------------------------------------------------
    def _run(self) -> None:
        while True:
            batches = [self._requests.get()]           # wait for requests, then take all there are
            while True:
                try:
                    batches.append(self._requests.get_nowait())
                except queue.Empty:
                    break
            requests = [r for b in batches if b is not None for r in b]
            if None in batches:                        # close() asked to stop
                self._finish(requests, RuntimeError("syncer closed"))
                return
            try:
                self._flush(dict.fromkeys(p for _, paths in requests for p in paths))
            except OSError as e:
                self._finish(requests, e)
            else:
                self._finish(requests, None)

    def _flush(self, paths: Iterable[StrPath]) -> None:
        self.flushes += 1
        if self._syncfs is not None:
            if self._syncfs(self._folder_fd) == 0:
                return
            code = ctypes.get_errno()
            if code not in (errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(code, os.strerror(code))
            self._syncfs = None                 # not supported here: fsync from now on
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _finish(self, batch: list[_Request], error: BaseException | None) -> None:
        if batch and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(_resolve, batch, error)
            except RuntimeError:
                pass                            # the loop closed meanwhile


def _resolve(batch: list[_Request], error: BaseException | None) -> None:
    for future, _ in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
