"""The maillog: events written as the familiar syslog lines of a mail server.

    Nov 23 10:00:01 smtp1.syr.edu maillab/smtpd[4242]: 5BJ2KQ8ZC3LM: client=mail.northpole.org[127.0.0.3]

`format_event` is the one place an event becomes a log line (None for events
that are not logged, like each line of a dialogue).  `MailLog` drains a bus
subscription into the state folder's log file and, for `maillab serve`, a
stream, and keeps the last `RECENT` lines it wrote (`tail`) for the TUI's
Log panel, which so shows exactly the file's lines without making them twice.

What may grow the file without bound is held back (`LogLimits`): DNS query
lines pass a token bucket per client address (the rest become one line "N
similar lines from IP suppressed" at most every `summary_every` seconds), and a
line that repeats the one before it exactly (stamp aside) becomes, syslog-style,
"last message repeated N times".  The file is rotated by size like logrotate
(`maillog` -> `maillog.1` ... `maillog.<keep>`), and a write that fails (disk
full, I/O error) costs the lines, counted, not the writer: it tries again
`retry_after` seconds later and says once when it stops and once when it
starts writing again.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import stat
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from ..base.events import (Bounced, Deferred, Delivered, DnsQuery, Event, EventBus, Notice, Queued, Removed,
                           SessionClosed, SessionOpened)
from .maillog_read import rotation

_PID = os.getpid()
RECENT = 5_000
TICK = 1.0                  # seconds: how often an idle writer flushes summaries and retries
MAX_SOURCES = 4096          # DNS clients with a bucket; the least recently heard is forgotten first


def _stamp(when: float) -> str:
    return time.strftime("%b %d %H:%M:%S", time.localtime(when))


def _line(when: float, host: str, program: str, text: str) -> str:
    return f"{_stamp(when)} {host} maillab/{program}[{_PID}]: {text}"


def _program(protocol: str) -> str:
    return "smtpd" if protocol == "smtp" else protocol


# The event types format_event writes: the log subscribes to these alone (SessionLine, the
# bulk of the bus, never reaches it).  A type format_event learns must be added here.
LOGGED: tuple[type[Event], ...] = (SessionOpened, SessionClosed, Queued, Delivered, Deferred, Bounced,
                                   Removed, DnsQuery, Notice)


def format_event(e: Event) -> str | None:
    if isinstance(e, SessionOpened):
        if e.protocol == "smtp-out":
            return None
        return _line(e.time, e.host, _program(e.protocol),
                     f"connect from {e.peer_name}[{e.peer.rpartition(':')[0]}] ({e.session})")
    if isinstance(e, SessionClosed):
        if "/smtp-out/" in e.session:
            return None
        protocol = e.session.split("/")[-2] if e.session.count("/") >= 2 else "smtp"   # host/protocol/n
        return _line(e.time, e.host, _program(protocol), f"disconnect ({e.session}): {e.reason}")
    if isinstance(e, Queued):
        rcpts = ",".join(f"<{r}>" for r in e.recipients)
        client = f"client={e.client}, " if e.client else ""
        return _line(e.time, e.host, "qmgr", f"{e.queue_id}: {client}from=<{e.sender}>, "
                                             f"size={e.size}, nrcpt={len(e.recipients)} to={rcpts} (queue active)")
    if isinstance(e, (Delivered, Deferred, Bounced)):
        status = {Delivered: "sent", Deferred: "deferred", Bounced: "bounced"}[type(e)]
        program = "local" if e.relay == "local" else "smtp"
        text = (f"{e.queue_id}: to=<{e.recipient}>, relay={e.relay}, delay={e.delay:.2f}, "
                f"dsn={e.dsn}, status={status} ({e.detail})")
        return _line(e.time, e.host, program, text)
    if isinstance(e, Removed):
        return _line(e.time, e.host, "qmgr", f"{e.queue_id}: removed")
    if isinstance(e, DnsQuery):
        return _line(e.time, "ns.lab", "dns", f"query from {e.client} ({e.transport}): {e.name} IN {e.rdtype}"
                                              f" -> {e.rcode}, {e.answers} answer{'s' if e.answers != 1 else ''}")
    if isinstance(e, Notice):
        prefix = f"{e.queue_id}: " if e.queue_id else ""
        return _line(e.time, e.host, e.program, prefix + e.text)
    return None


@dataclass(frozen=True, slots=True)
class LogLimits:
    """How large the maillog may grow and how fast one source may fill it."""
    max_bytes: int = 10 << 20       # rotate before a file would pass this
    keep: int = 5                   # maillog.1 ... maillog.<keep>
    dns_rate: float = 20.0          # DNS query lines per second per client address...
    dns_burst: int = 200            # ...after a burst of this many
    summary_every: float = 10.0     # seconds between "N similar lines ... suppressed" for one address
    repeat_flush: float = 30.0      # seconds a "last message repeated" count waits for a different line
    retry_after: float = 1.0        # seconds after a failed write before the next try


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float                       # time.monotonic() of the last refill
    suppressed: int = 0
    last_line: str = ""             # the last suppressed line (its stamp and host go on the summary)
    summarized: float = 0.0         # time.monotonic() of the last summary


class _DnsLimiter:
    """A token bucket per client address for the DNS query lines."""

    def __init__(self, limits: LogLimits) -> None:
        self._limits = limits
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def admit(self, e: DnsQuery, line: str, now: float) -> list[str]:
        """The lines to write for this query's line: itself, or nothing (counted), and the
        summary of an address the bucket table had to forget."""
        ip = e.client.rpartition(":")[0] or e.client
        out: list[str] = []
        b = self._buckets.get(ip)
        if b is None:
            b = self._buckets[ip] = _Bucket(float(self._limits.dns_burst), now, summarized=now)
            if len(self._buckets) > MAX_SOURCES:
                old_ip, old = self._buckets.popitem(last=False)
                out += self._summary(old_ip, old)
        else:
            self._buckets.move_to_end(ip)
            b.tokens = min(float(self._limits.dns_burst), b.tokens + (now - b.at) * self._limits.dns_rate)
            b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            out.append(line)
        else:
            b.suppressed += 1
            b.last_line = line
        return out

    def summaries(self, now: float, final: bool = False) -> list[str]:
        """One line per address with lines suppressed `summary_every` seconds after its last
        summary (every such address when `final`)."""
        out: list[str] = []
        for ip, b in self._buckets.items():
            if b.suppressed and (final or now - b.summarized >= self._limits.summary_every):
                out += self._summary(ip, b)
                b.summarized = now
        return out

    @staticmethod
    def _summary(ip: str, b: _Bucket) -> list[str]:
        if not b.suppressed:
            return []
        line = _restamped(b.last_line, f"{b.suppressed} similar lines from {ip} suppressed")
        b.suppressed = 0
        return [line]


def _restamped(line: str, text: str) -> str:
    """`line`'s stamp, host and program with another text."""
    head, _sep, _text = line.partition("]: ")
    return f"{head}]: {text}"


def _body(line: str) -> str:
    """A line without its stamp ("Nov 23 10:00:01 ": two spaces in it, the day zero-padded)."""
    return line.split(" ", 3)[3]


class _Repeats:
    """Collapses a line that repeats the one before it exactly (stamp aside), like syslogd."""

    def __init__(self, limits: LogLimits) -> None:
        self._limits = limits
        self._last_body = ""            # the last line let through, without its stamp
        self._count = 0                 # repeats of it held back
        self._repeated = ""             # the last of them (its stamp goes on the summary)
        self._since = 0.0               # time.monotonic() of the first repeat held back

    def feed(self, line: str, now: float) -> list[str]:
        body = _body(line)
        if body == self._last_body:
            if not self._count:
                self._since = now
            self._count += 1
            self._repeated = line
            return []
        out = self.flush(now, final=True)
        self._last_body = body
        return out + [line]

    def flush(self, now: float, final: bool = False) -> list[str]:
        """"last message repeated N times" if repeats are held back (for `repeat_flush`
        seconds, unless `final`)."""
        if not self._count or not (final or now - self._since >= self._limits.repeat_flush):
            return []
        out = [_restamped(self._repeated, f"last message repeated {self._count} time"
                                          f"{'s' if self._count != 1 else ''}")]
        self._count = 0
        return out


class _LogFile:
    """The maillog file: appended whole lines, rotated by size, reopened after a failed write."""

    def __init__(self, path: Path, limits: LogLimits, notice: Callable[[str], None]) -> None:
        self._path = path
        self._limits = limits
        self._notice = notice
        self._fd: int | None = None
        self._size = 0
        self._retry_at = 0.0            # time.monotonic() of the next try after a failure
        self._failed = ""               # why the last write failed ("" while writing works)
        self._partial = False           # a failed write left half a line at the end of the file
        self.dropped = 0                # lines not written since writing last worked
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        st = os.fstat(self._fd)
        if stat.S_ISREG(st.st_mode):
            os.fchmod(self._fd, 0o600)  # addresses and sizes: the owner's only
        self._size = st.st_size

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass

    def write(self, lines: list[str], now: float, force: bool = False) -> None:
        """Append these lines; when writing fails, count them and try again `retry_after`
        seconds later (at once if `force`)."""
        report = 0                      # 1: the first line says how many were not written
        if self._failed:
            if (now < self._retry_at and not force) or not (lines or self.dropped):
                self.dropped += len(lines)
                return
            lines = [_line(time.time(), "maillab", "log", f"{self.dropped} lines not written "
                                                           f"({self._failed})")] + lines
            report = 1
        done = 0
        try:
            if self._fd is None:
                self._open()
            if self._partial:
                self._append(b"\n")    # end the half line a failed write left
            chunk: list[bytes] = []
            size = 0
            for raw in (line.encode("utf-8", "replace") + b"\n" for line in lines):
                if self._size + size + len(raw) > self._limits.max_bytes and self._size + size > 0:
                    done += self._append(b"".join(chunk))
                    chunk, size = [], 0
                    self._rotate()
                chunk.append(raw)
                size += len(raw)
            done += self._append(b"".join(chunk))
        except OSError as e:
            self._close()
            lost = len(lines) - max(done, report)
            self.dropped = lost if done >= report > 0 else self.dropped + lost    # reported: start again
            self._retry_at = now + self._limits.retry_after
            if not self._failed:
                self._notice(f"cannot write {self._path}: {e.strerror or e}; lines are dropped "
                             f"(counted) and writing is tried again every {self._limits.retry_after:g} s")
            self._failed = e.strerror or errno.errorcode.get(e.errno or 0, str(e))
            return
        if self._failed:
            self._notice(f"writing {self._path} again; {self.dropped} lines were not written")
            self._failed, self.dropped = "", 0

    def _append(self, data: bytes) -> int:
        """Write all of `data`; the count of whole lines written (a failure keeps the count of
        those before it in `self._partial` and raises)."""
        view = memoryview(data)
        lines = 0
        while view:
            assert self._fd is not None
            try:
                n = os.write(self._fd, view)
            except OSError:
                written = len(data) - len(view)
                self._partial = written > 0 and data[written - 1:written] != b"\n"
                raise
            lines += view[:n].tobytes().count(b"\n")
            self._size += n
            view = view[n:]
        self._partial = False
        return lines

    def _rotate(self) -> None:
        """maillog.<keep-1> -> maillog.<keep> ... maillog -> maillog.1, then a new maillog."""
        self._close()
        for n in range(self._limits.keep - 1, 0, -1):
            if rotation(self._path, n).exists():
                os.replace(rotation(self._path, n), rotation(self._path, n + 1))
        os.replace(self._path, rotation(self._path, 1))
        self._open()

    def close(self) -> None:
        self._close()


class MailLog:
    """Writes every loggable event to the log file (and optionally a stream)."""

    def __init__(self, bus: EventBus, path: Path, echo: TextIO | None = None,
                 limits: LogLimits = LogLimits()) -> None:
        self._bus = bus
        self._sub = bus.subscribe(maxlen=100_000, kinds=LOGGED)
        self._file = _LogFile(path, limits, self._notice)
        self._dns = _DnsLimiter(limits)
        self._repeats = _Repeats(limits)
        self._echo = echo
        self._task: asyncio.Task[None] | None = None
        self._recent: deque[str] = deque(maxlen=RECENT)
        self.written = 0                    # lines written so far

    @property
    def dropped(self) -> int:
        """Lines lost since writing the file last worked (0 while it works)."""
        return self._file.dropped

    def _notice(self, text: str) -> None:
        print(f"maillab: maillog: {text}", file=sys.stderr, flush=True)
        self._bus.publish(Notice(time.time(), "maillab", "log", text))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that
            # comes as the batch arrives (stop right after an event), and stop never returned
            try:
                async with asyncio.timeout(TICK):
                    batch = await self._sub.next_batch()
            except TimeoutError:
                batch = []
            self.write(batch)
            await asyncio.sleep(0.05)   # coalesce: one write per 50 ms at most

    def write(self, events: list[Event], final: bool = False) -> None:
        now = time.monotonic()
        lines: list[str] = []
        for e in events:
            line = format_event(e)
            if line is None:
                continue
            for kept in self._dns.admit(e, line, now) if isinstance(e, DnsQuery) else [line]:
                lines += self._repeats.feed(kept, now)
        if self._sub.dropped:
            lines.append(_line(time.time(), "maillab", "log",
                               f"{self._sub.dropped} events dropped (log could not keep up)"))
            self._sub.dropped = 0
        lines += self._repeats.flush(now, final) + self._dns.summaries(now, final)
        if lines:
            self._recent.extend(lines)
            self.written += len(lines)
        self._file.write(lines, now, force=final)
        if lines and self._echo is not None:
            text = "\n".join(lines) + "\n"
            self._echo.write(text)
            self._echo.flush()

    def tail(self, since: int = 0) -> list[str]:
        """The lines written after the first `since` (the last RECENT at most), oldest first."""
        new = min(self.written - since, len(self._recent))
        return list(itertools.islice(self._recent, len(self._recent) - new, None)) if new > 0 else []

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.write(self._sub.drain(), final=True)
        if self._file.dropped:
            self._notice(f"stopped with {self._file.dropped} lines not written")
        self._sub.close()
        self._file.close()
