"""Queue records: one per message, one per recipient, and the retry policy.

A message is in one of Postfix's queues, derived from its recipients and
flags: `hold` (set aside by the admin), `active` (a delivery is running),
`deferred` (waiting for its next attempt), `incoming` (just arrived).  Each
recipient keeps its attempts, next and last attempt, and last result; the
message keeps its last `MAX_HISTORY` tries, one `Attempt` per MX address tried.

The retry policy is Postfix's by default: first retry after 5 minutes
(minimal_backoff_time 300 s), doubling up to 4000 s (maximal_backoff_time),
a lifetime of 5 days (maximal_queue_lifetime) and a delay warning after 4 hours
(delay_warning_time).  All times are lab-clock seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING = "pending"      # not yet final: waiting for (another) attempt
SENT = "sent"
BOUNCED = "bounced"
MAX_HISTORY = 20         # tries kept per message, the newest


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_retry: float = 300.0
    max_backoff: float = 4000.0
    lifetime: float = 5 * 86400.0
    warn_after: float = 4 * 3600.0

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1, 2, ...)."""
        return min(self.first_retry * 2 ** max(attempts - 1, 0), self.max_backoff)

    def slots_until(self, attempts: int, due: float, now: float) -> int:
        """How many attempts this schedule makes from `due` (the next after `attempts`
        failures) up to `now`: 1 for a try on time, more after a clock jump."""
        slots = 0
        while due <= now:
            slots += 1
            due += self.delay_after(attempts + slots)
        return slots


@dataclass(slots=True)
class Recipient:
    address: str
    status: str = PENDING
    attempts: int = 0
    next_attempt: float = 0.0
    last_attempt: float = 0.0
    last_result: str = ""        # "4.4.1 connect to ...: Connection refused"

    def to_json(self) -> dict:
        return {"address": self.address, "status": self.status, "attempts": self.attempts,
                "next_attempt": self.next_attempt, "last_attempt": self.last_attempt,
                "last_result": self.last_result}


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one MX address: lab time, the MX, its IP:port, what came of it and why."""
    at: float
    mx: str
    address: str           # "127.0.0.1:25"; "" when the MX name did not resolve
    result: str            # "delivered", "deferred", "bounced" or "refused"
    reason: str

    def to_json(self) -> dict:
        return {"at": self.at, "mx": self.mx, "address": self.address, "result": self.result,
                "reason": self.reason}

    @classmethod
    def from_json(cls, item: dict) -> "Attempt":
        return cls(item["at"], item["mx"], item["address"], item["result"], item["reason"])


@dataclass(slots=True)
class Entry:
    id: str
    sender: str
    arrival: float
    size: int
    client: str = ""
    extra: dict = field(default_factory=dict)
    recipients: dict[str, Recipient] = field(default_factory=dict)
    held: bool = False
    warned: bool = False
    active: bool = False
    history: list[Attempt] = field(default_factory=list)     # oldest first, at most MAX_HISTORY

    def add_attempt(self, attempt: Attempt) -> None:
        self.history.append(attempt)
        del self.history[:-MAX_HISTORY]

    @property
    def pending(self) -> list[Recipient]:
        return [r for r in self.recipients.values() if r.status == PENDING]

    @property
    def next_attempt(self) -> float:
        return self.summary()[2]

    @property
    def queue(self) -> str:
        return self.summary()[0]

    def summary(self) -> tuple[str, list[Recipient], float, str]:
        """(queue, pending recipients, next attempt, last result), in one pass."""
        pending = [r for r in self.recipients.values() if r.status == PENDING]
        next_attempt: float | None = None
        last, last_time, tried = "", -1.0, False
        for r in pending:
            due = r.next_attempt if r.attempts else 0.0     # never tried: due now
            if next_attempt is None or due < next_attempt:
                next_attempt = due
            tried = tried or r.attempts > 0
            if r.last_attempt > last_time:
                last, last_time = r.last_result, r.last_attempt
        queue = "hold" if self.held else "active" if self.active else "deferred" if tried else "incoming"
        return queue, pending, next_attempt or 0.0, last

    def to_json(self) -> dict:
        queue, pending, next_attempt, last = self.summary()
        return {"id": self.id, "queue": queue, "sender": self.sender, "arrival": self.arrival,
                "size": self.size, "client": self.client,
                "recipients": [r.to_json() for r in self.recipients.values()],
                "next_attempt": next_attempt if pending else None, "last_result": last,
                "history": [a.to_json() for a in self.history]}
