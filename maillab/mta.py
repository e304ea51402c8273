"""One MTA host of the world: its listeners, its spool, and where its mail goes next.

An `Mta` listens on its own loopback address (port 25's stand-in, and the
submission port on a domain's mailbox host), spools what it accepts, and
routes each recipient:

- a domain whose mailboxes live here -> the MDA (an unknown mailbox is
  bounced with an RFC 3464 DSN, as the course teaches);
- anything else -> MX look-up through the lab DNS, best preference first (a
  backup MX only tries hosts more preferred than itself), A look-up, then an
  SMTP hop from this host's own address; on a temporary failure the next MX,
  and if none takes it, the message stays spooled and is tried again later.

Permanent failures are bounced through the normal mail path; a bounce is
never bounced.  A recipient is final only once its outcome is durable, so a
crash at any point means delivery at least once (see queue/spool.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from dataclasses import dataclass

from .context import LabContext
from .dns.client import LookupFailed
from .dsn import DsnRecipient, build_dsn, is_bounce
from .events import Bounced, Deferred, Delivered, Notice, Queued, Removed
from .queue.spool import Spool, SpooledMessage, new_queue_id
from .smtp.client import send_hop
from .smtp.received import local_received_header
from .smtp.server import LabSMTP
from .world import Host

_out_sessions = itertools.count(1)
MAX_PARALLEL_DELIVERIES = 32
RETRY_CAP = 4000.0   # seconds, Postfix's maximal_backoff_time


@dataclass(frozen=True, slots=True)
class Endpoint:
    service: str
    host: str
    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.service:<11} {self.host:<22} {self.address}:{self.port}"


@dataclass(slots=True)
class Outcome:
    recipient: str
    kind: str          # "sent", "bounce", "defer"
    relay: str
    dsn: str
    detail: str
    remote_mta: str = ""


class Mta:
    def __init__(self, host: Host, ctx: LabContext) -> None:
        self.host = host
        self.ctx = ctx
        self.spool = Spool(ctx.state.spool(host.name))
        self.mailbox_domains = tuple(d.name for d in ctx.world.mailbox_domains(host.name))
        self.endpoints: list[Endpoint] = []
        self._servers: list[asyncio.Server] = []
        self._protocols: set[LabSMTP] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._attempts: dict[str, int] = defaultdict(int)
        self._slots = asyncio.Semaphore(MAX_PARALLEL_DELIVERIES)

    # --- life cycle ----------------------------------------------------------
    async def start(self) -> None:
        """Listen on this host's address (again, after a `stop()`)."""
        loop = asyncio.get_running_loop()
        self._servers, self.endpoints = [], []
        services = [("smtp", self.ctx.ports.smtp)]
        if self.mailbox_domains:
            services.append(("submission", self.ctx.ports.submission))
        for service, port in services:
            def factory(service: str = service) -> LabSMTP:
                proto = LabSMTP(self, service, loop=loop)
                self._protocols.add(proto)
                return proto
            server = await loop.create_server(factory, self.host.address, port, reuse_address=True,
                                              backlog=1024)
            self._servers.append(server)
            self.endpoints.append(Endpoint(service, self.host.name, self.host.address, port))

    def replay(self) -> int:
        """Queue again every message left in the spool by an earlier run."""
        ids = self.spool.pending()
        for qid in ids:
            self.kick(qid)
        return len(ids)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for proto in list(self._protocols):
            if proto.transport is not None:
                proto.transport.close()
        self._protocols.clear()
        for server in self._servers:
            await server.wait_closed()
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- intake --------------------------------------------------------------
    def new_queue_id(self) -> str:
        return new_queue_id(self.ctx.clock.now())

    async def reverse_name(self, ip: str) -> str | None:
        try:
            return await self.ctx.resolver.ptr(ip, source=self.host.address)
        except LookupFailed:
            return None

    async def accept(self, qid: str, sender: str, recipients: tuple[str, ...], message: bytes,
                     client: str = "", extra: dict | None = None) -> None:
        """Spool a message durably and schedule its delivery; raises OSError if not stored."""
        msg = SpooledMessage(qid, sender, recipients, self.ctx.clock.now(), len(message), client,
                             extra or {})
        await asyncio.to_thread(self.spool.accept, msg, message)
        self.ctx.bus.publish(Queued(msg.arrival, self.host.name, qid, sender, recipients,
                                    len(message), client))
        self.kick(qid)

    def kick(self, qid: str) -> None:
        """Try to deliver `qid` now (unless a delivery of it is already running)."""
        timer = self._timers.pop(qid, None)
        if timer is not None:
            timer.cancel()
        if qid in self._active:
            return
        self._active.add(qid)
        task = asyncio.ensure_future(self._run(qid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def flush(self) -> None:
        for qid in list(self._timers):
            self.kick(qid)

    # --- delivery ------------------------------------------------------------
    async def _run(self, qid: str) -> None:
        try:
            async with self._slots:
                await self._deliver(qid)
        except Exception as e:   # a bug must not lose the message: it stays spooled
            self._notice("qmgr", f"delivery failed unexpectedly ({type(e).__name__}: {e}); "
                                 "message left in queue", qid)
            self._schedule_retry(qid)
        finally:
            self._active.discard(qid)

    async def _deliver(self, qid: str) -> None:
        try:
            msg, message = await asyncio.to_thread(self.spool.load, qid)
        except FileNotFoundError:
            return
        pending = msg.pending
        local = [r for r in pending if r.rpartition("@")[2].lower() in self.mailbox_domains]
        by_domain: dict[str, list[str]] = defaultdict(list)
        for r in pending:
            if r not in local:
                by_domain[r.rpartition("@")[2].lower()].append(r)
        outcomes: list[Outcome] = []
        if local:
            outcomes += await asyncio.to_thread(self._deliver_local, msg, message, local)
        relayed = await asyncio.gather(*(self._relay(msg, message, domain, rcpts)
                                         for domain, rcpts in by_domain.items()))
        for group in relayed:
            outcomes += group
        await self._settle(msg, message, outcomes)

    def _deliver_local(self, msg: SpooledMessage, message: bytes, rcpts: list[str]) -> list[Outcome]:
        outcomes = []
        for rcpt in rcpts:
            account = self.ctx.mda.account_for(rcpt)
            if account is None:
                outcomes.append(Outcome(rcpt, "bounce", "local", "5.1.1",
                                        f"unknown user: \"{rcpt.rpartition('@')[0]}\""))
                continue
            try:
                result = self.ctx.mda.deliver(account, rcpt, msg.sender, message)
            except OSError as e:
                outcomes.append(Outcome(rcpt, "defer", "local", "4.3.0",
                                        f"cannot write to maildir: {e.strerror}"))
                continue
            detail = result.detail if account.address == rcpt.lower() else \
                f"{result.detail} of {account.address}"
            outcomes.append(Outcome(rcpt, "sent", "local", result.status, detail))
        return outcomes

    async def _relay(self, msg: SpooledMessage, message: bytes, domain: str,
                     rcpts: list[str]) -> list[Outcome]:
        resolver, me = self.ctx.resolver, self.host.address
        try:
            mx = await resolver.mx(domain, source=me)
        except LookupFailed as e:
            kind, dsn = ("defer", "4.4.3") if e.temporary else ("bounce", "5.1.2")
            return [Outcome(r, kind, "none", dsn, f"Host or domain name not found. "
                                                  f"Name service error for name={domain} type=MX: {e.reason}")
                    for r in rcpts]
        own = next((pref for pref, name in mx if name == self.host.name), None)
        if own is not None:
            mx = [(pref, name) for pref, name in mx if pref < own]
            if not mx:
                return [Outcome(r, "bounce", "none", "5.4.6",
                                f"mail for {domain} loops back to myself") for r in rcpts]
        last_error = "no MX host answered"
        remaining = list(rcpts)
        outcomes: list[Outcome] = []
        for _pref, name in mx:
            try:
                addresses = await resolver.a(name, source=me)
            except LookupFailed as e:
                last_error = f"Host or domain name not found. Name service error for name={name} type=A: {e.reason}"
                continue
            for ip in addresses:
                relay = f"{name}[{ip}]:{self.ctx.ports.smtp}"
                hop = await send_hop(helo=self.host.name, source_ip=me, dest_ip=ip,
                                     dest_port=self.ctx.ports.smtp, sender=msg.sender,
                                     recipients=remaining, message=message, bus=self.ctx.bus,
                                     clock=self.ctx.clock, host=self.host.name,
                                     session=f"{self.host.name}/smtp-out/{next(_out_sessions)}",
                                     eightbit=not message.isascii(),
                                     smtputf8=not all(a.isascii() for a in (msg.sender, *remaining)))
                if not hop.connected or (hop.error and not hop.rcpt_replies):
                    last_error = hop.error or "connection failed"
                    if hop.temporary:
                        continue
                    return outcomes + [Outcome(r, "bounce", relay, "5.0.0", last_error, name)
                                       for r in remaining]
                still: list[str] = []
                for r in remaining:
                    reply = hop.rcpt_replies.get(r)
                    if reply is None:
                        still.append(r)
                    elif reply.is_positive:
                        outcomes.append(Outcome(r, "sent", relay, reply.enhanced or "2.0.0", str(reply), name))
                    elif reply.is_permanent:
                        outcomes.append(Outcome(r, "bounce", relay, reply.enhanced or "5.0.0",
                                                f"host {relay} said: {reply}", name))
                    else:
                        outcomes.append(Outcome(r, "defer", relay, reply.enhanced or "4.0.0",
                                                f"host {relay} said: {reply}", name))
                remaining = still
                if not remaining:
                    return outcomes
        return outcomes + [Outcome(r, "defer", "none", "4.4.1", last_error) for r in remaining]

    async def _settle(self, msg: SpooledMessage, message: bytes, outcomes: list[Outcome]) -> None:
        """Make the outcomes durable and report them; remove the message once all are final."""
        now = self.ctx.clock.now()
        delay = max(now - msg.arrival, 0.0)
        bounces = [o for o in outcomes if o.kind == "bounce"]
        notice_id = ""
        if bounces and not is_bounce(msg.sender):
            notice_id = await self._send_dsn(msg, message, bounces)
        finals = [o for o in outcomes if o.kind != "defer"]
        deferred = [o for o in outcomes if o.kind == "defer"]
        if deferred:
            for o in finals:
                await asyncio.to_thread(self.spool.mark_done, msg.id, o.recipient, o.kind)
        else:
            await asyncio.to_thread(self.spool.remove, msg.id)
        bus = self.ctx.bus
        for o in outcomes:
            if o.kind == "sent":
                bus.publish(Delivered(now, self.host.name, msg.id, o.recipient, o.relay, delay, o.dsn, o.detail))
            elif o.kind == "bounce":
                bus.publish(Bounced(now, self.host.name, msg.id, o.recipient, o.relay, delay, o.dsn,
                                    o.detail, notice_id))
            else:
                bus.publish(Deferred(now, self.host.name, msg.id, o.recipient, o.relay, delay, o.dsn, o.detail))
        if deferred:
            self._schedule_retry(msg.id)
        else:
            self._attempts.pop(msg.id, None)
            bus.publish(Removed(now, self.host.name, msg.id))

    async def _send_dsn(self, msg: SpooledMessage, message: bytes, bounces: list[Outcome]) -> str:
        qid = self.new_queue_id()
        now = self.ctx.clock.now()
        dsn = build_dsn(reporting_host=self.host.name, original_sender=msg.sender, original=message,
                        queue_id=msg.id, arrival=msg.arrival, now=now,
                        recipients=[DsnRecipient(o.recipient, o.dsn, self._diagnostic(o), o.remote_mta)
                                    for o in bounces])
        stamp = local_received_header(by=self.host.name, queue_id=qid, when=now)
        await self.accept(qid, "", (msg.sender,), stamp + dsn, client="local")
        self._notice("bounce", f"sender non-delivery notification: {qid}", msg.id)
        return qid

    @staticmethod
    def _diagnostic(o: Outcome) -> str:
        if o.relay == "local":
            return f"x-unix; {o.detail}"
        text = o.detail.split(" said: ", 1)[-1]
        return f"smtp; {text}"

    def _schedule_retry(self, qid: str) -> None:
        self._attempts[qid] += 1
        delay = min(self.ctx.retry_delay * 2 ** (self._attempts[qid] - 1), RETRY_CAP)
        loop = asyncio.get_running_loop()
        self._timers[qid] = loop.call_later(delay / self.ctx.clock.speed, self.kick, qid)

    def _notice(self, program: str, text: str, qid: str = "") -> None:
        self.ctx.bus.publish(Notice(self.ctx.clock.now(), self.host.name, program, text, qid))
