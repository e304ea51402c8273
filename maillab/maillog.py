"""The maillog: events written as the familiar syslog lines of a mail server.

    Nov 23 10:00:01 smtp1.syr.edu maillab/smtpd[4242]: 5BJ2KQ8ZC3LM: client=mail.northpole.org[127.0.0.3]

`format_event` is the one place an event becomes a log line (None for events
that are not logged, like each line of a dialogue).  `MailLog` drains a bus
subscription into the state folder's log file and, for `maillab serve`, a
stream, and keeps the last `RECENT` lines it wrote (`tail`) for the TUI's
Log panel, which so shows exactly the file's lines without making them twice.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import deque
from pathlib import Path
from typing import TextIO

from .events import (Bounced, Deferred, Delivered, DnsQuery, Event, EventBus, Notice, Queued,
                     Removed, SessionClosed, SessionOpened)

_PID = os.getpid()
RECENT = 5_000


def _stamp(when: float) -> str:
    return time.strftime("%b %d %H:%M:%S", time.localtime(when))


def _line(when: float, host: str, program: str, text: str) -> str:
    return f"{_stamp(when)} {host} maillab/{program}[{_PID}]: {text}"


def _program(protocol: str) -> str:
    return "smtpd" if protocol == "smtp" else protocol


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


class MailLog:
    """Writes every loggable event to the log file (and optionally a stream)."""

    def __init__(self, bus: EventBus, path: Path, echo: TextIO | None = None) -> None:
        self._sub = bus.subscribe(maxlen=100_000)
        self._file = open(path, "a", encoding="utf-8", buffering=1 << 16,
                          opener=lambda p, flags: os.open(p, flags, 0o600))
        os.fchmod(self._file.fileno(), 0o600)     # addresses and sizes: the owner's only
        self._echo = echo
        self._task: asyncio.Task[None] | None = None
        self._recent: deque[str] = deque(maxlen=RECENT)
        self.written = 0                    # lines written so far

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.write(await self._sub.next_batch())
            await asyncio.sleep(0.05)   # coalesce: one write per 50 ms at most

    def write(self, events: list[Event]) -> None:
        lines = [line for line in map(format_event, events) if line is not None]
        if self._sub.dropped:
            lines.append(f"{_stamp(time.time())} maillab maillab/log[{_PID}]: "
                         f"{self._sub.dropped} events dropped (log could not keep up)")
            self._sub.dropped = 0
        if not lines:
            return
        self._recent.extend(lines)
        self.written += len(lines)
        text = "\n".join(lines) + "\n"
        self._file.write(text)
        self._file.flush()
        if self._echo is not None:
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
        self.write(self._sub.drain())
        self._sub.close()
        self._file.close()
