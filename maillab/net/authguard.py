"""Failed logins and protocol errors, held in check for SMTP, IMAP and POP3 alike (issue 13).

`AuthGuard` is the lab's one memory of failed logins per client address, as
Dovecot's auth penalty (and Postfix's anvil) keep: after the n-th recent
failure from an address its failure reply waits base * 2^(n-1) seconds, at
most `max_delay`; a success from the address forgets it, so does
`forget_after` lab seconds without a failure.  Memory is bounded: past
`max_addresses` the address that failed longest ago is forgotten.  It does no
I/O and keeps no clock: callers pass the lab's time.

`penalise` is what a session does after a failed login: count it, say so in
the maillog, and wait its delay with `asyncio.sleep` — only that session
waits; the loop and every other client go on.

`ErrorLimit` is Postfix's smtpd_hard_error_limit for a session: it counts
error replies (since the last message accepted) and failed logins and says
when the session must be dropped.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from ..base.clock import Clock
from ..base.events import EventBus, Notice

HARD_ERROR_LIMIT = 20        # Postfix smtpd_hard_error_limit
AUTH_FAILURE_LIMIT = 10      # failed logins in one SMTP session before it is dropped


@dataclass(slots=True)
class _Record:
    failures: int
    last: float               # lab time of the latest failure


class AuthGuard:
    """Recent login failures per client address, and the delay each new one costs."""

    def __init__(self, base_delay: float = 1.0, max_delay: float = 15.0, forget_after: float = 300.0,
                 max_addresses: int = 10_000) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_addresses = max_addresses
        self._records: OrderedDict[str, _Record] = OrderedDict()   # oldest failure first

    def failures(self, address: str, now: float) -> int:
        """Recent failures from `address` (0 once `forget_after` has passed since the last)."""
        record = self._records.get(address)
        if record is None or now - record.last >= self.forget_after:
            return 0
        return record.failures

    def failed(self, address: str, now: float) -> tuple[int, float]:
        """Count one failure from `address`: (recent failures, seconds its reply is to wait)."""
        n = self.failures(address, now) + 1
        self._records.pop(address, None)
        self._records[address] = _Record(n, now)
        while len(self._records) > self.max_addresses:
            self._records.popitem(last=False)
        return n, min(self.base_delay * 2 ** (n - 1), self.max_delay)

    def succeeded(self, address: str) -> None:
        """A good login from `address`: its penalty is gone."""
        self._records.pop(address, None)

    def __len__(self) -> int:
        return len(self._records)


async def penalise(guard: AuthGuard, bus: EventBus, clock: Clock, host: str, program: str, address: str,
                   session: str) -> None:
    """A failed login from `address`: count it, log the penalty, and hold this session for it."""
    failures, delay = guard.failed(address, clock.now())
    bus.publish(Notice(clock.now(), host, program,
                       f"auth penalty: rip={address}, failures={failures}, delay={delay:g}s ({session})"))
    await asyncio.sleep(delay)


class ErrorLimit:
    """One session's error replies and failed logins; `exceeded` once either reaches its limit."""

    def __init__(self, errors: int = HARD_ERROR_LIMIT, auth_failures: int = AUTH_FAILURE_LIMIT) -> None:
        self.max_errors, self.max_auth_failures = errors, auth_failures
        self.errors = self.auth_failures = 0

    def reply(self, code: str) -> bool:
        """Count a reply by its three-digit code (4xx and 5xx are errors, 535 a failed login);
        True if the session is now to be dropped."""
        if code[:1] in ("4", "5"):
            self.errors += 1
            self.auth_failures += code == "535"
        return self.exceeded

    def delivered(self) -> None:
        """A message was accepted: as Postfix, forgive the errors before it (not failed logins)."""
        self.errors = 0

    @property
    def exceeded(self) -> bool:
        return self.errors >= self.max_errors or self.auth_failures >= self.max_auth_failures
