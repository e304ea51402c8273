"""Where a recipient goes next from one host, and what happened when it went.

`deliver_local` hands recipients of the host's own domains to the MDA (an
unknown mailbox is a permanent failure, 5.1.1, bounced by the caller);
`relay` looks up the domain's MX in the lab DNS, best preference first (a
backup MX only tries hosts more preferred than itself), resolves each MX to
its A records, and hands the walk over the MX hosts to the SMTP client
(`smtp.client.relay_hop`: an SMTP hop from the host's own address to each, the
next MX after a temporary failure).  Both return one `Outcome` per recipient:
sent, bounce or defer — the queue manager decides what to do with them.
Each try at an MX address goes into the message's history (`Entry.history`)
and on the bus (`MxTried`, the client publishes it), the failed ones before
the one that took it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..base.clock import Clock
from ..base.events import EventBus
from ..base.syncer import Syncer
from ..dns.client import LabResolver, LookupFailed
from ..lab.world import Host, World
from ..net.ports import Ports
from ..queue.records import Attempt, Entry
from ..smtp.client import Unresolved, relay_hop
from ..smtp.client_protocol import Rcpt
from ..smtp.outbound_tls import OutboundTls
from .mda import LocalResult, Mda


class RoutingContext(Protocol):
    """What delivery needs of the lab: the MDA and the group-commit thread for local copies;
    the resolver, the ports, the hop timeout, the world's TLS levels and the client's TLS
    contexts for relays; the bus and clock."""
    mda: Mda
    syncer: Syncer
    resolver: LabResolver
    ports: Ports
    smtp_timeout: float
    world: World
    outbound_tls: OutboundTls | None          # None before the lab CA is loaded: plaintext
    bus: EventBus
    clock: Clock


@dataclass(slots=True)
class Outcome:
    recipient: str
    kind: str          # "sent", "bounce" or "defer"
    relay: str         # "local", "none" or "name[ip]:port"
    dsn: str           # enhanced status code
    detail: str
    remote_mta: str = ""
    stored: LocalResult | None = None     # a local delivery: where the copy went
    account: str = ""                     # ... and whose mailbox it is
    passed_on: bool = False               # relayed to a host that offered DSN: it reports from now on

    @property
    def diagnostic(self) -> str:
        """The Diagnostic-Code of a DSN (RFC 3464 §2.3.6)."""
        if self.relay == "local":
            return f"x-unix; {self.detail}"
        if " said: " in self.detail:
            return f"smtp; {self.detail.split(' said: ', 1)[1]}"
        return f"X-Maillab; {self.detail}"


async def deliver_local(ctx: RoutingContext, entry: Entry, message: bytes, rcpts: list[str]) -> list[Outcome]:
    """Store one copy per recipient.

    The message file is written and flushed by the group-commit thread
    (`ctx.syncer`), which then files it (rename, UID, index) under the
    user's lock; a mailbox not yet open is opened, and a lock that IMAP or
    POP3 sessions hold is waited for, in a pool thread (see Folder.add_steps).
    """
    outcomes = []
    for rcpt in rcpts:
        account = ctx.mda.account_for(rcpt)
        if account is None:
            outcomes.append(Outcome(rcpt, "bounce", "local", "5.1.1",
                                    f"unknown user: \"{rcpt.rpartition('@')[0]}\""))
            continue
        try:
            result = await ctx.syncer.run(ctx.mda.deliver(account, rcpt, entry.sender, message, entry.id))
        except OSError as e:
            outcomes.append(Outcome(rcpt, "defer", "local", "4.3.0", f"cannot write to maildir: {e.strerror}"))
            continue
        detail = result.detail if account.address == rcpt.lower() else f"{result.detail} of {account.address}"
        outcomes.append(Outcome(rcpt, "sent", "local", result.status, detail, stored=result, account=account.address))
    return outcomes


async def relay(ctx: RoutingContext, host: Host, entry: Entry, message: bytes, domain: str,
                rcpts: list[str]) -> list[Outcome]:
    resolver, me = ctx.resolver, host.address
    try:
        mx = await resolver.mx(domain, source=me)
    except LookupFailed as e:
        kind, dsn = ("defer", "4.4.3") if e.temporary else ("bounce", "5.1.2")
        return [Outcome(r, kind, "none", dsn, f"Host or domain name not found. "
                                              f"Name service error for name={domain} type=MX: {e.reason}")
                for r in rcpts]
    own = next((pref for pref, name in mx if name == host.name), None)
    if own is not None:
        mx = [(pref, name) for pref, name in mx if pref < own]
        if not mx:
            return [Outcome(r, "bounce", "none", "5.4.6", f"mail for {domain} loops back to myself")
                    for r in rcpts]

    async def addresses(name: str) -> list[str]:
        try:
            return await resolver.a(name, source=me)
        except LookupFailed as e:
            raise Unresolved(f"Host or domain name not found. "
                             f"Name service error for name={name} type=A: {e.reason}") from None

    asked = entry.extra.get("dsn") or {}            # the DSN request the sender made (smtp/server.py)
    wanted = asked.get("rcpts", {})
    hop_rcpts = [Rcpt(r, tuple(wanted[r][0]), wanted[r][1]) if r in wanted else Rcpt(r) for r in rcpts]
    walk = await relay_hop([name for _pref, name in mx], addresses, port=ctx.ports.smtp, helo=host.name,
                           source_ip=me, sender=entry.sender, recipients=hop_rcpts, message=message,
                           bus=ctx.bus, clock=ctx.clock, host=host.name, queue_id=entry.id,
                           timeout=ctx.smtp_timeout, ret=asked.get("ret", ""), envid=asked.get("envid", ""),
                           tls=ctx.outbound_tls, level=ctx.world.tls_level_for(domain))  # type: ignore[arg-type]
    for t in walk.tries:
        entry.add_attempt(Attempt(t.time, t.mx, t.address, t.result, t.reason))
    outcomes: list[Outcome] = []
    for r in rcpts:
        decided = walk.decided.get(r)
        if decided is None:
            outcomes.append(Outcome(r, "defer", "none", walk.last_dsn, "; ".join(walk.failures) or walk.last_error))
            continue
        reply, relay_name = decided.reply, decided.relay
        if reply.is_positive:
            outcomes.append(Outcome(r, "sent", relay_name, reply.enhanced or "2.0.0", str(reply), decided.mx,
                                    passed_on=decided.dsn))
        elif reply.is_permanent:
            outcomes.append(Outcome(r, "bounce", relay_name, reply.enhanced or "5.0.0",
                                    f"host {relay_name} said: {reply}", decided.mx))
        else:
            outcomes.append(Outcome(r, "defer", relay_name, reply.enhanced or "4.0.0",
                                    f"host {relay_name} said: {reply}", decided.mx))
    return outcomes
