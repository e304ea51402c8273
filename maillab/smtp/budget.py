"""Memory budgets: octets of DATA bodies held in memory across all sessions, and a gate
for big deliveries running at once.

Each `DataReader` takes from one shared `MemoryBudget` as it stores lines and
gives back when its message is handed on or dropped.  A session that would go
over the budget gets 452 4.3.1 (RFC 3463: insufficient system storage) and may
retry later, so many large messages in parallel cannot exhaust the host.
"""

from __future__ import annotations

import asyncio

DEFAULT_LIMIT = 64 * 1024 * 1024  # octets


class MemoryBudget:
    """A counter of octets held, never above `limit`."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> bool:
        """Hold `n` more octets if that stays within the limit; say whether it did."""
        if self.held + n > self.limit:
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        """Give back `n` octets taken earlier."""
        self.held -= n


IN_FLIGHT = MemoryBudget()  # shared by every SMTP session of the process


class ByteGate:
    """Lets tasks through while the octets they hold stay under `limit`; the others wait.

    One item bigger than the limit goes through alone.  The queue uses it to bound
    the memory of big deliveries running at once (each holds its message, and
    copies of it, in memory)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def take(self, n: int) -> None:
        """Wait until `n` more octets fit (or nothing is held), then hold them."""
        while self.held and self.held + n > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        self.held += n

    def give(self, n: int) -> None:
        """Give back `n` octets taken earlier and wake the waiting."""
        self.held -= n
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
