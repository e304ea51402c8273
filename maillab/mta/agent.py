"""One MTA host of the world: its listeners, its queue, and the faults it can be given.

An `Mta` loads its spool (`load`, before any listener opens, local copies an
earlier run made already counted as delivered), listens on its own loopback address (port 25's stand-in, and the
submission port on a domain's mailbox host), hands what it accepts to its
`QueueManager`, and delivers through `routing` (local MDA or an SMTP hop from
its own address).

Outages are simulated here, for incoming connections: `down("refuse")` stops
listening (connection refused), `down("421")` answers every connection with
421 and closes, `down("silent")` accepts and never speaks (the client times
out), `down("greylist")` answers 450 to the first try of each (client, sender,
recipient) triple.  `chaos` makes MAIL, RCPT or DATA fail with a given
probability and code, from a seeded generator so a run replays exactly.
`strip_starttls(True)` makes the host's SMTP and submission stop offering
STARTTLS from the next session on (what an attacker on the path does by
cutting it from EHLO): a sender whose TLS is only opportunistic goes on in
plaintext, one that requires TLS defers.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from ..base.events import HostChanged, Notice
from ..dns.client import LookupFailed
from ..lab.world import Host
from ..net.ports import Endpoint
from ..queue.inbound import upstream_id
from ..queue.manager import QueueContext, QueueManager
from ..queue.records import Entry
from ..queue.redelivery import RedeliveryContext, already_delivered
from ..queue.spool import Spool
from ..auth.dkim_keys import DomainKeys
from ..auth.receiver import sender_checks
from ..smtp.checkpoints import Checkpoints
from ..smtp.policy import HostPolicy, standard_checks
from ..smtp.server import SmtpContext, SmtpServer
from .routing import Outcome, RoutingContext, deliver_local, relay

FAULT_MODES = ("refuse", "421", "silent", "greylist")
STRIPPED_LINE = ("STARTTLS stripped: the EHLO reply no longer offers it and STARTTLS gets 502 5.5.1 "
                 "(smtp_tls_security_level may: the sender goes on in plaintext; encrypt or verify: it defers)")
CHAOS_STAGES = ("MAIL", "RCPT", "DATA")
STOP_DRAIN = 3.0        # seconds a stop lets deliveries under way finish before abandoning them


@dataclass
class Chaos:
    stage: str
    probability: float
    code: int
    seed: int
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def strike(self, stage: str) -> str | None:
        if stage != self.stage or self.rng.random() >= self.probability:
            return None
        enhanced = f"{str(self.code)[0]}.3.0" if self.code >= 500 or stage != "RCPT" else "4.2.0"
        return f"{self.code} {enhanced} chaos: simulated failure at {stage}"

    def describe(self) -> str:
        return f"{self.probability:.0%} {self.code} at {self.stage} (seed {self.seed})"


class MtaContext(SmtpContext, QueueContext, RoutingContext, RedeliveryContext, Protocol):
    """What one host's MTA needs of the lab: what its SMTP server, queue, routing and replay
    check need, and the greylisting delay."""
    greylist_delay: float


class Mta:
    def __init__(self, host: Host, ctx: MtaContext) -> None:
        self.host = host
        self.ctx = ctx
        self.mailbox_domains = tuple(d.name for d in ctx.world.mailbox_domains(host.name))
        self.queue = QueueManager(host.name, ctx, Spool(ctx.state.spool(host.name)), self._deliver)
        self.endpoints: list[Endpoint] = []
        self.fault: str | None = None
        self.starttls_stripped = False      # read by each new SMTP session (SmtpServer)
        self.chaos: Chaos | None = None
        self._greylist: dict[tuple[str, str, str], float] = {}
        self.servers: list[SmtpServer] = []
        # what the receive path asks at each step; tests and later issues register more checks
        self.checkpoints = Checkpoints(standard_checks(HostPolicy(
            host.name, world=lambda: ctx.world, chaos=self.chaos_reply, greylisted=self.greylisted,
            mailbox_exists=lambda a: ctx.mda.account_for(a) is not None, in_flow=self.queue.in_flow)))
        for check in sender_checks(host.name, host.address, lambda: ctx.resolver, self.signing_keys):
            self.checkpoints.register(check)

    def signing_keys(self, domain: str) -> DomainKeys | None:
        """The DKIM keys this host signs `domain`'s mail with: it keeps that domain's mail."""
        return self.ctx.dkim_keys.get(domain) if domain in self.mailbox_domains else None

    # --- life cycle ----------------------------------------------------------
    async def load(self) -> int:
        """Take in this host's spool (before listening: see Lab._start); recipients whose
        copy an earlier run already put in their Maildir are recorded as delivered.  Returns
        how many messages are still to be delivered; `queue.resume()` starts them.  Recipients
        whose non-delivery notice an earlier run queued are recorded as bounced."""
        entries = await asyncio.to_thread(self.queue.load)
        found = await asyncio.to_thread(already_delivered, self.ctx, entries, self.is_local)
        await self.queue.settle_delivered(found)
        await self.queue.settle_notified()
        return len(self.queue.entries)

    async def start(self) -> None:
        """Listen on this host's address (again, after `stop_listening()`)."""
        services = ["smtp"] + (["submission"] if self.mailbox_domains else [])
        self.servers, self.endpoints = [], []
        for service in services:
            server = SmtpServer(self, service)
            await server.start()
            self.servers.append(server)
            self.endpoints += server.endpoints

    async def stop_listening(self) -> None:
        """Close the listeners and end every session (each through its own clean-up)."""
        servers, self.servers = self.servers, []
        for server in servers:
            await server.stop()

    async def stop(self, drain: float = STOP_DRAIN) -> None:
        """Start no delivery more, let those under way finish for up to `drain` seconds while
        still listening (a hop in flight to another host of the lab needs its listener), then
        stop listening, abandon the rest and close.  `Lab.stop` runs each step on every host
        before the next one."""
        self.queue.halt()
        await self.queue.drain(drain)
        await self.stop_listening()
        await self.queue.stop()
        self.queue.close()

    # --- outages and chaos ---------------------------------------------------
    async def down(self, mode: str = "refuse") -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown outage mode {mode!r}; choose one of {', '.join(FAULT_MODES)}")
        if mode == "refuse":
            await self.stop_listening()
        elif self.fault == "refuse":
            await self.start()
        self.fault = mode
        self._greylist.clear()
        self._changed()

    async def up(self) -> None:
        if self.fault == "refuse":
            await self.start()
        self.fault = None
        self._changed()

    def strip_starttls(self, on: bool) -> None:
        """Stop (or start again) offering STARTTLS on this host's SMTP ports; sessions already
        open keep what their EHLO said."""
        if on == self.starttls_stripped:
            return
        self.starttls_stripped = on
        self.ctx.bus.publish(Notice(self.ctx.clock.now(), self.host.name, "smtpd", STRIPPED_LINE if on else
                                    "STARTTLS offered again in the EHLO reply"))
        self._changed()

    def set_chaos(self, chaos: Chaos | None) -> None:
        self.chaos = chaos
        self._changed()

    @property
    def state(self) -> str:
        return "up" if self.fault is None else f"down ({self.fault})"

    def _changed(self) -> None:
        self.ctx.bus.publish(HostChanged(self.ctx.clock.now(), self.host.name, self.state,
                                         self.chaos.describe() if self.chaos else ""))

    def greylisted(self, client_ip: str, sender: str, rcpt: str) -> bool:
        """True if this triple must be told to come back later (RFC 6647)."""
        if self.fault != "greylist":
            return False
        now = self.ctx.clock.now()
        first = self._greylist.setdefault((client_ip, sender.lower(), rcpt.lower()), now)
        return now - first < self.ctx.greylist_delay

    def chaos_reply(self, stage: str) -> str | None:
        return self.chaos.strike(stage) if self.chaos is not None else None

    # --- intake and delivery -------------------------------------------------
    async def reverse_name(self, ip: str) -> str | None:
        try:
            return await self.ctx.resolver.ptr(ip, source=self.host.address)
        except LookupFailed:
            return None

    def upstream_id(self, client_ip: str, content: bytes, body: BinaryIO | None = None) -> str:
        """The key of a hop from another host of the lab (`queue.inbound`), "" from elsewhere;
        `body`: the message spilled to a file (then `content` is empty)."""
        host = self.ctx.world.host_at(client_ip)
        return upstream_id(client_ip, host.name if host is not None else "", content, body)

    def is_local(self, rcpt: str) -> bool:
        """Whether this host delivers `rcpt` itself (a mailbox domain of its own)."""
        return rcpt.rpartition("@")[2].lower() in self.mailbox_domains

    async def _deliver(self, entry: Entry, message: bytes, rcpts: list[str]) -> list[Outcome]:
        local = [r for r in rcpts if self.is_local(r)]
        by_domain: dict[str, list[str]] = defaultdict(list)
        for r in rcpts:
            if r not in local:
                by_domain[r.rpartition("@")[2].lower()].append(r)
        outcomes: list[Outcome] = []
        if local:
            outcomes += await deliver_local(self.ctx, entry, message, local)
        for group in await asyncio.gather(*(relay(self.ctx, self.host, entry, message, domain, group)
                                            for domain, group in by_domain.items())):
            outcomes += group
        return outcomes
