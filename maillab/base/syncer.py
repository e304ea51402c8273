"""Group commit: one thread writes and flushes files for every writer at once.

A writer hands its durability steps (maillab.base.fsutil: a generator that does
file work, then yields the paths that must be on stable storage before it
goes on) to `syncer.run`, or asks `syncer.flush(paths)`; it resumes once they
are done.  The thread works in rounds: it takes every request made since the
last round (those of one turn of the loop arrive together), runs their first
step (writing a spool or Maildir file), flushes once for all of them, then
advances each; steps that ask for another flush (a folder after a rename)
join the next round.  So ten concurrent SMTP sessions cost one flush, not
ten, and the loop neither writes message files nor waits on the disk: it
only awaits a future.

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
loop (measured: over a hundred futex calls per accepted message).  Here one
thread takes a whole round at once and hands all results back in one call.
Writing a 100 KB file costs about 0.3 ms of system time, which the loop no
longer spends; steps that may block for long (a lock IMAP sessions hold, a
folder scan) run in a pool thread instead, so they never hold up a round.

After `close()`, a request fails with OSError(ESHUTDOWN), as a disk that went
away would, and steps in progress get that error thrown in to clean up.
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

from .fsutil import MAY_BLOCK, Steps, StrPath, fsync_path

T = TypeVar("T")
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


def _step(steps: Steps[T], error: BaseException | None = None) -> tuple[bool, object]:
    """Advance `steps` once (in whatever thread), or throw `error` into them:
    (False, the paths they want flushed) or, at their end, (True, their result).
    Their own errors propagate."""
    try:
        return False, (steps.send(None) if error is None else steps.throw(error))
    except StopIteration as stop:
        return True, stop.value


def _driven(steps: Steps[T], paths: list[StrPath] | None = None) -> Steps[tuple[bool, object]]:
    """`steps` as the syncer's thread drives them: from their start or, given the
    `paths` their last step asked for, from that flush on.  At their end:
    (True, result); at a `MAY_BLOCK` of theirs: (False, None), for the caller
    to go on in a pool thread."""
    if paths is None:
        done, value = _step(steps)
        if done:
            return True, value
        paths = value                                   # type: ignore[assignment]
    while paths is not MAY_BLOCK:
        error: BaseException | None = None
        try:
            yield paths                                 # type: ignore[misc]
        except Exception as e:                          # the flush failed
            error = e
        done, value = _step(steps, error)
        if done:
            return True, value
        paths = value                                   # type: ignore[assignment]
    return False, None


def _flushing(paths: list[StrPath]) -> Steps[None]:
    yield paths


class _Request:
    """One waiter in the thread: its future, the steps the thread drives, the paths they wait on."""
    __slots__ = ("future", "steps", "paths")

    def __init__(self, future: "asyncio.Future[object]", steps: Steps[object]) -> None:
        self.future = future
        self.steps = steps
        self.paths: list[StrPath] | None = None         # None: not started yet


_Outcome = tuple["asyncio.Future[object]", object, BaseException | None]    # future, result, error


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
        await self._ask(_flushing(list(paths)))

    async def run(self, steps: Steps[T]) -> T:
        """Drive durability steps (maillab.base.fsutil) to their end and return their result.

        Their file work runs in the syncer's thread, each step just before the
        flush it asks for, so the loop only waits.  A step that may block for
        long (opening a mailbox that needs a scan, a lock other threads hold
        for long) must not hold up everyone's flushes: before it the steps
        yield `MAY_BLOCK`, and they go on in a pool thread until they ask for
        a flush again.
        """
        paths: list[StrPath] | None = None
        while True:
            if self._closed and paths is not None:          # under way: let them clean up first
                done, value = _step(steps, _closed_error())
                if done:
                    return value                                 # type: ignore[return-value]
            done, value = await self._ask(_driven(steps, paths))  # type: ignore[arg-type,misc]
            if done:
                return value                                     # type: ignore[return-value]
            paths = MAY_BLOCK
            while paths is MAY_BLOCK:
                done, paths = await asyncio.to_thread(_step, steps)  # type: ignore[assignment]
                if done:
                    return paths                                 # type: ignore[return-value]

    async def _ask(self, steps: Steps[T]) -> T:
        if self._closed:
            raise _closed_error()
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="maillab-sync", daemon=True)
            self._thread.start()
        future: asyncio.Future[object] = loop.create_future()
        self._pending.append(_Request(future, steps))            # type: ignore[arg-type]
        if len(self._pending) == 1:
            loop.call_soon(self._hand_over)            # once per turn of the loop: one wake-up
        return await future                                      # type: ignore[return-value]

    def _hand_over(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._requests.put(batch)

    def close(self) -> None:
        """Stop the thread after the round in progress (requests still waiting get an error)."""
        if self._closed:
            return
        self._closed = True
        pending, self._pending = self._pending, []
        for request in pending:                     # asked this turn, not handed over yet
            request.steps.close()
            if not request.future.done():
                request.future.set_exception(_closed_error())
        self._requests.put(None)
        if self._thread is not None:
            self._thread.join(10)
            if self._thread.is_alive():
                return                              # stuck in the kernel: leave it its fd
        os.close(self._folder_fd)

    # --- the worker thread ---------------------------------------------------
    def _run(self) -> None:
        """Rounds: take what was asked, run its first steps, flush once for all,
        advance every waiter; steps that want another flush wait for the next
        round, with whatever arrives meanwhile."""
        waiting: list[_Request] = []
        while True:
            batches = [] if waiting else [self._requests.get()]     # idle: sleep until asked
            while True:
                try:
                    batches.append(self._requests.get_nowait())
                except queue.Empty:
                    break
            outcomes: list[_Outcome] = []
            fresh = [r for b in batches if b is not None for r in b]
            if None in batches:                        # close() asked to stop
                for r in waiting + fresh:
                    self._advance(r, _closed_error(), outcomes)
                self._resolve(outcomes)
                return
            waiting += [r for r in fresh if self._advance(r, None, outcomes)]
            try:
                waiting = self._round(waiting, outcomes)
            except BaseException as e:                 # a bug of ours: fail the round, never hang it
                answered = {id(o[0]) for o in outcomes}
                outcomes += [(r.future, None, e) for r in waiting if id(r.future) not in answered]
                waiting = []
            self._resolve(outcomes)

    def _round(self, waiting: list[_Request], outcomes: list[_Outcome]) -> list[_Request]:
        """One flush for `waiting`, then advance each; those that wait for the next round."""
        try:
            failed = self._flush(waiting)
            error: BaseException | None = None
        except Exception as e:                         # every waiter hears of it; the thread goes on
            failed, error = {}, e
        return [r for r in waiting
                if self._advance(r, error or next((failed[p] for p in r.paths or () if p in failed), None),
                                 outcomes)]

    @staticmethod
    def _advance(r: _Request, error: BaseException | None, outcomes: list[_Outcome]) -> bool:
        """Advance the steps of `r` (throwing `error` in); whether they now wait for a flush."""
        try:
            if r.paths is None and error is not None:   # never started: nothing to clean up
                r.steps.close()
                raise error
            done, value = _step(r.steps, error)
        except BaseException as e:
            outcomes.append((r.future, None, e))
            return False
        if done:
            outcomes.append((r.future, value, None))
            return False
        r.paths = list(value)                                    # type: ignore[call-overload]
        return True

    def _flush(self, requests: list[_Request]) -> dict[StrPath, OSError]:
        """Flush for `requests`; the paths whose fsync failed (syncfs: raises OSError instead)."""
        paths = dict.fromkeys(p for r in requests for p in r.paths or ())
        if not paths:
            return {}
        self.flushes += 1
        if self._syncfs is not None:
            if self._syncfs(self._folder_fd) == 0:
                return {}
            code = ctypes.get_errno()
            self._syncfs = None          # unsupported, or a writeback error seen once: fsync from now on
            if code not in (errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(code, os.strerror(code))
        failed: dict[StrPath, OSError] = {}
        for path in paths:
            try:
                fsync_path(path)
            except OSError as e:
                failed[path] = e
        return failed

    def _resolve(self, outcomes: list[_Outcome]) -> None:
        if outcomes and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(_settle, outcomes)
            except RuntimeError:
                pass                            # the loop closed meanwhile


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
