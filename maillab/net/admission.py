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

Sessions in progress are never paused, and the valve refuses nothing.  `maillab
serve` runs no valve: there the gate is always open.

`ConnectionLimits` is the other gate, which every SMTP, IMAP and POP3
connection passes as it is accepted: at most `per_client` connections from
one address to one service of a host (Postfix's
smtpd_client_connection_count_limit, Dovecot's mail_max_userip_connections),
at most `per_service` to one service of a host, and never so many in the
whole lab that fewer than `fd_reserve` file descriptors remain, so that past
the limits the lab still accepts and answers with a refusal instead of
refusing silently.  It also holds `preauth_timeout`, the idle time allowed to
an IMAP or POP3 client that has not logged in.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter, deque
from dataclasses import dataclass, field

from ..lab.world import PER_CLIENT, PER_SERVICE, PREAUTH_TIMEOUT, World

FD_RESERVE = 64         # descriptors kept for accepting and answering past the limits


@dataclass
class ConnectionLimits:
    per_client: int = PER_CLIENT
    per_service: int = PER_SERVICE
    fd_reserve: int = FD_RESERVE
    preauth_timeout: float = PREAUTH_TIMEOUT
    _by_client: Counter[tuple[str, str, str]] = field(default_factory=Counter, repr=False)
    _by_service: Counter[tuple[str, str]] = field(default_factory=Counter, repr=False)
    _total: int = field(default=0, repr=False)

    @classmethod
    def of(cls, world: World) -> "ConnectionLimits":
        """The limits lab.toml's [lab] table sets."""
        return cls(per_client=world.connections_per_client, per_service=world.connections_per_service,
                   preauth_timeout=world.preauth_timeout)

    def admit(self, host: str, service: str, ip: str, per_service: int | None = None) -> str | None:
        """Count a new connection in and return None, or return why it is refused (not counted):
        "client" (too many from `ip`) or "service" (too many to the service, or too few
        descriptors left).  `per_service` lowers the service's own limit."""
        if self._by_client[host, service, ip] >= self.per_client:
            return "client"
        limit = self.per_service if per_service is None else min(per_service, self.per_service)
        if self._by_service[host, service] >= limit or self._total >= self._descriptor_budget():
            return "service"
        self._by_client[host, service, ip] += 1
        self._by_service[host, service] += 1
        self._total += 1
        return None

    def leave(self, host: str, service: str, ip: str) -> None:
        """An admitted connection has ended."""
        key = (host, service, ip)
        self._by_client[key] -= 1
        if not self._by_client[key]:
            del self._by_client[key]
        self._by_service[host, service] -= 1
        self._total -= 1

    def count(self, host: str, service: str, ip: str) -> int:
        return self._by_client[host, service, ip]

    def warning(self, refusal: str, service: str, ip: str) -> str:
        """The maillog line for a refusal, in Postfix's words."""
        if refusal == "client":
            return (f"warning: Connection concurrency limit exceeded: {self.per_client} from "
                    f"unknown[{ip}] for service {service}")
        return f"warning: Too many connections to service {service}; refused unknown[{ip}]"

    def _descriptor_budget(self) -> int:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return (1 << 62) if soft == resource.RLIM_INFINITY else soft - self.fd_reserve


class Admission:
    def __init__(self) -> None:
        self.limits = ConnectionLimits()      # what every SMTP/IMAP/POP3 connection passes at accept
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.closed = False
        self.waited = 0            # sessions that had to wait (shown on the Monitor panel)

    @property
    def open_now(self) -> bool:
        """A new session would go in at once (the gate is open and nobody waits)."""
        return not self.closed and not self._waiting

    async def enter(self) -> None:
        """Return when a new session may start (at once while the gate is open)."""
        if self.open_now:
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
