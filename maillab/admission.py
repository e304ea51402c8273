"""Admission of new SMTP sessions: the lab's overload valve.

One event loop runs the whole lab and, under `maillab tui`, the UI too.  In a
flood every turn of the loop is long, and a key press waits behind hundreds of
SMTP callbacks.  `Admission` is the gate a new SMTP session passes before its
banner; `LagValve` watches how late the loop runs its timers and closes the
gate while the loop is behind, so the sessions already talking finish, the
loop catches up, and the gate opens again — a few sessions at a time, so the
backlog does not rush in at once.  A key press holds the gate shut for a
moment too (`hold`), so the answer to a person comes before new sessions.  A waiting client just sees a late banner,
as it would from a busy Postfix whose clients wait in the listen queue.

Sessions in progress are never paused, and nothing is refused.  `maillab
serve` runs no valve: there the gate is always open.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Admission:
    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.closed = False
        self.waited = 0            # sessions that had to wait (shown on the Monitor panel)

    async def enter(self) -> None:
        """Return when a new session may start (at once while the gate is open)."""
        if not self.closed and not self._waiting:
            return
        self.waited += 1
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        finally:
            if not future.done():
                future.cancel()

    def close(self) -> None:
        self.closed = True

    def open(self, batch: int | None = None) -> None:
        """Open the gate, letting at most `batch` waiting sessions in now (all if None);
        with some still waiting, newcomers queue behind them."""
        self.closed = False
        self.admit(len(self._waiting) if batch is None else batch)

    def admit(self, count: int) -> None:
        """Let the first `count` waiting sessions in, open or closed."""
        while self._waiting and count > 0:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                count -= 1


class LagValve:
    """Close `admission` while the loop runs its timers late; let sessions in again in small steps.

    Every `period` seconds a timer notes how late it ran: more than `high`
    closes the gate; under `low` it opens it, letting `step` waiting sessions
    in; in between it lets one in, so no session waits for ever.
    """

    def __init__(self, admission: Admission, period: float = 0.01, high: float = 0.025,
                 low: float = 0.008, step: int = 8) -> None:
        self.admission = admission
        self.period, self.high, self.low, self.step = period, high, low, step
        self.lag = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._held_until = 0.0
        self.holds = 0                 # key presses that held the gate

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self.period
        self._handle = loop.call_at(self._due, self._tick)

    def hold(self, seconds: float) -> None:
        """Keep the gate closed for `seconds` from now, whatever the lag: a person pressed a key,
        and its answer should not queue behind new sessions.  Nothing once stopped."""
        if self._handle is None:
            return
        self.holds += 1
        self.admission.close()
        self._held_until = max(self._held_until, asyncio.get_running_loop().time() + seconds)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.admission.open()

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.lag = now - self._due
        if self.lag > self.high or now < self._held_until:
            self.admission.close()
        elif self.lag < self.low:
            self.admission.open(self.step)
        else:
            self.admission.admit(1)     # neither late nor quiet: one a tick, so none waits for ever
        self._due = now + self.period
        self._handle = loop.call_at(self._due, self._tick)
