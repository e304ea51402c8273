"""The in-flight budget: octets of DATA bodies held in memory across all sessions.

Each `DataReader` takes from one shared `MemoryBudget` as it stores lines and
gives back when its message is handed on or dropped.  A session that would go
over the budget gets 452 4.3.1 (RFC 3463: insufficient system storage) and may
retry later, so many large messages in parallel cannot exhaust the host.
"""

from __future__ import annotations

DEFAULT_LIMIT = 200 * 1024 * 1024  # octets


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
