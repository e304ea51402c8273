"""When to try a queued message again: a heap of due times and one timer.

The scheduler never polls: it keeps one asyncio timer set to the earliest due
time (in lab time, converted with the clock's speed) and, when it fires, hands
every due queue id to `on_due`.  Re-scheduling an id simply pushes a new heap
item; stale items are skipped by checking the id's current due time.
`reschedule()` re-arms the timer after the clock jumps or changes speed.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Callable

from ..base.clock import Clock


class Scheduler:
    def __init__(self, clock: Clock, on_due: Callable[[str], None]) -> None:
        self.clock = clock
        self.on_due = on_due
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._due)

    def at(self, qid: str, when: float) -> None:
        """Run `on_due(qid)` at lab time `when` (replacing any earlier plan for it)."""
        self._due[qid] = when
        heapq.heappush(self._heap, (when, qid))
        if self._heap[0] == (when, qid):
            self.reschedule()

    def cancel(self, qid: str) -> None:
        self._due.pop(qid, None)

    def due_time(self, qid: str) -> float | None:
        return self._due.get(qid)

    def all_ids(self) -> list[str]:
        return list(self._due)

    def reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)      # stale: cancelled or moved
        if not self._heap:
            return
        wait = max(self._heap[0][0] - self.clock.now(), 0.0) / self.clock.speed
        self._timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            when, qid = heapq.heappop(self._heap)
            if self._due.get(qid) == when:
                del self._due[qid]
                self.on_due(qid)
        self.reschedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
