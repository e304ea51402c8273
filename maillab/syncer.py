"""Group commit: the loop writes files, one thread makes many writers' files durable at once.

A writer puts its bytes in the page cache on the loop thread (cheap), then
`await syncer.flush(paths)`; it resumes once those files and folders are on
stable storage.  Requests made during one turn of the loop reach the thread
together, and requests that arrive while a flush is running share the next
one, so ten concurrent SMTP sessions cost one flush, not ten, and the loop
never waits on the disk itself.

How a flush is done:
- on Linux 5.8 and later, one `syncfs(2)` of the file system holding the
  state folder.  Its man page: since Linux waits for the I/O, "sync() or
  syncfs() provide the same guarantees as fsync() called on every file in
  the system or filesystem respectively" (and since 5.8 it reports writeback
  errors).  A writeback error is reported to one caller only, so after a
  failed syncfs the syncer fsyncs each path from then on: every writer then
  hears of its own file's error;
- elsewhere, `fsync` of every distinct path of the batch, files and folders
  alike; a path that fails fails only the requests that named it.

Why a thread of its own: a flush blocks for a fraction of a millisecond to a
few; the default executor would wake a different thread per request and every
small system call in those threads would hand the GIL back and forth with the
loop (measured: over a hundred futex calls per accepted message).  Here the
worker holds the GIL only to take a batch and to hand the results back.

Order matters to callers: what must be durable *before* a rename (the file)
and what makes the rename durable (its folder) are two flushes.  `run`
drives such steps (maillab.fsutil).  After `close()`, a flush fails with
OSError(ESHUTDOWN), as a disk that went away would.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import platform
import queue
import sys
import threading
from typing import Iterable, TypeVar

from .fsutil import Steps, StrPath, fsync_path

T = TypeVar("T")
_Request = tuple["asyncio.Future[None]", tuple[StrPath, ...]]    # a waiter and the paths it needs flushed


def _syncfs_function() -> "ctypes._NamedFuncPointer | None":
    """libc's syncfs on Linux 5.8+ (earlier kernels never report a writeback error)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


def _closed_error() -> OSError:
    return OSError(errno.ESHUTDOWN, "the lab is stopping: nothing more is written")


def _advance(steps: Steps[T], value: None) -> tuple[bool, object]:
    """One step of `steps` (in whatever thread): (False, paths) or, at the end, (True, result)."""
    try:
        return False, steps.send(value)
    except StopIteration as stop:
        return True, stop.value


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
            raise _closed_error()
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

    async def run(self, steps: Steps[T], first_in_thread: bool = False, rest_in_thread: bool = False) -> T:
        """Drive durability steps (maillab.fsutil): their file work on the loop, flushes here.

        `first_in_thread`: do the first step (say, writing a big file) in a
        worker thread; `rest_in_thread`: the steps after the first flush (say,
        work under a lock that other threads hold for long).
        """
        done, value = await asyncio.to_thread(_advance, steps, None) if first_in_thread \
            else _advance(steps, None)
        while not done:
            paths = value
            try:
                if paths:
                    await self.flush(paths)        # type: ignore[arg-type]
            except BaseException as e:
                try:
                    done, value = False, steps.throw(e)
                except StopIteration as stop:
                    return stop.value              # type: ignore[no-any-return]
                continue
            done, value = await asyncio.to_thread(_advance, steps, None) if rest_in_thread \
                else _advance(steps, None)
        return value                               # type: ignore[return-value]

    def close(self) -> None:
        """Stop the thread after the flush in progress (requests still waiting get an error)."""
        if self._closed:
            return
        self._closed = True
        pending, self._pending = self._pending, []
        _resolve(pending, _closed_error())          # asked this turn, not handed over yet
        self._requests.put(None)
        if self._thread is not None:
            self._thread.join(10)
            if self._thread.is_alive():
                return                              # stuck in the kernel: leave it its fd
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
                self._finish(requests, _closed_error())
                return
            try:
                failed = self._flush(requests)
            except BaseException as e:                 # every waiter hears of it; the thread goes on
                self._finish(requests, e)
            else:
                self._finish(requests, None, failed)

    def _flush(self, requests: list[_Request]) -> dict[StrPath, OSError]:
        """Flush for `requests`; the paths whose fsync failed (syncfs: raises OSError instead)."""
        self.flushes += 1
        if self._syncfs is not None:
            if self._syncfs(self._folder_fd) == 0:
                return {}
            code = ctypes.get_errno()
            self._syncfs = None          # unsupported, or a writeback error seen once: fsync from now on
            if code not in (errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(code, os.strerror(code))
        failed: dict[StrPath, OSError] = {}
        for path in dict.fromkeys(p for _, paths in requests for p in paths):
            try:
                fsync_path(path)
            except OSError as e:
                failed[path] = e
        return failed

    def _finish(self, batch: list[_Request], error: BaseException | None,
                failed: dict[StrPath, OSError] | None = None) -> None:
        if batch and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(_resolve, batch, error, failed or {})
            except RuntimeError:
                pass                            # the loop closed meanwhile


def _resolve(batch: list[_Request], error: BaseException | None,
             failed: dict[StrPath, OSError] | None = None) -> None:
    for future, paths in batch:
        if future.done():
            continue
        mine = error or next((failed[p] for p in paths if failed and p in failed), None)
        if mine is None:
            future.set_result(None)
        else:
            future.set_exception(mine)
