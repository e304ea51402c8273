"""The queue manager of one MTA host (Postfix's qmgr): what is queued, and when it is tried.

It owns the host's queue records (`Entry`, one `Recipient` each), runs
deliveries through a `deliver` function it is given, and turns their outcomes
into state: sent and bounced recipients are final; deferred ones wait for the
retry policy's next attempt (the `Scheduler` wakes only for due work); past
the lifetime they bounce with "delivery time expired"; after `warn_after` the
sender gets one delayed-delivery DSN.  Permanent failures bounce at once,
through the normal mail path; a bounce is never bounced.  A notice is queued
naming what it reports and started only once the bounce is recorded, so a kill
in between neither bounces nor notifies twice (`settle_notified` at load).

Admin operations (flush, hold, release, delete, requeue) and every change of
queue are events on the bus.  `in_flow` is the SMTP server's brake when mail
comes in faster than it goes out (Postfix's in-flow control).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from typing import Awaitable, BinaryIO, Callable, Protocol

from ..base.clock import Clock
from ..base.events import Bounced, Deferred, Delivered, EventBus, Notice, Queued, QueueMoved, Removed
from ..base.syncer import Syncer
from ..mta.dsn import DsnRecipient, build_dsn, is_bounce, wants_notice
from ..mta.routing import Outcome
from ..smtp.budget import ByteGate
from ..smtp.received import local_received_header
from .inbound import InboundLedger
from .records import BOUNCED, PENDING, SENT, Entry, Recipient, RetryPolicy
from .scheduler import Scheduler
from .spool import Spool, new_queue_id

Deliver = Callable[[Entry, bytes, list[str]], Awaitable[list[Outcome]]]
# Deliveries in progress at once.  Each one spends most of its time waiting for flushes to disk
# and for the loop, so too few cannot keep up with a flood: under the TUI at 500 msg/s offered,
# 32 delivered 400 a second and the queue grew; 64 keep up.  A kill -9 can catch that many
# delivered but not yet removed from the spool: the restart finds the local copies in their
# Maildirs (queue/redelivery.py) and the next host recognises the hops (queue/inbound.py).
MAX_PARALLEL_DELIVERIES = 64
# In-flow control, as Postfix's in_flow_delay (1 s): when mail arrives faster than it is delivered,
# a new message waits up to IN_FLOW_DELAY for the deliveries started and waiting for a slot to
# fall under IN_FLOW_BACKLOG; then it goes on anyway.  A flood slows its sender down instead of
# growing the queue for as long as it lasts.
IN_FLOW_BACKLOG = 4 * MAX_PARALLEL_DELIVERIES
IN_FLOW_DELAY = 1.0
IN_FLOW_NOTICE_EVERY = 10.0     # seconds (monotonic) between two maillog lines saying so
# A message just accepted goes to its first attempt from memory, not from the
# spool, while the bytes so held in waiting stay under this bound.
MAX_HELD_BYTES = 32 * 1024 * 1024
# Deliveries running at once hold at most this many octets of messages (each message
# is in memory two or three times while it is delivered); one bigger message goes alone.
DELIVERY_MEMORY = 40 * 1024 * 1024


class QueueError(Exception):
    """An admin request about an unknown or unsuitable message."""


class QueueContext(Protocol):
    """What a host's queue needs of the lab: the bus and clock, the retry policy, and the
    group-commit thread that makes its files durable."""
    bus: EventBus
    clock: Clock
    retry: RetryPolicy
    syncer: Syncer


class QueueManager:
    def __init__(self, host: str, ctx: QueueContext, spool: Spool, deliver: Deliver) -> None:
        self.host = host
        self.ctx = ctx
        self.spool = spool
        self.inbound = InboundLedger(spool.folder / "inbound")
        self.deliver = deliver
        self.entries: dict[str, Entry] = {}
        self.scheduler = Scheduler(ctx.clock, self.kick)
        ctx.clock.on_change(self.scheduler.reschedule)
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_PARALLEL_DELIVERIES)
        self._delivery_memory = ByteGate(DELIVERY_MEMORY)
        self._held_bytes = 0
        self._inflow: deque[asyncio.Future[None]] = deque()
        self.flow_delays = 0            # messages that had to wait in in_flow
        self._flow_noticed = -IN_FLOW_NOTICE_EVERY
        self._stopping = False          # stop() began: nothing new is started

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def in_flow(self) -> None:
        """Before a new message: return at once while deliveries keep up, else once the backlog
        is under IN_FLOW_BACKLOG again, or after IN_FLOW_DELAY at the most."""
        if len(self._tasks) < IN_FLOW_BACKLOG and not self._inflow:
            return
        self.flow_delays += 1
        loop = asyncio.get_running_loop()
        if loop.time() - self._flow_noticed >= IN_FLOW_NOTICE_EVERY:
            self._flow_noticed = loop.time()
            self._notice(f"mail arrives faster than it is delivered ({len(self._tasks)} deliveries "
                         f"under way or waiting): new messages wait up to {IN_FLOW_DELAY:g} s "
                         f"(in-flow control)", program="cleanup")
        future = loop.create_future()
        self._inflow.append(future)
        try:
            async with asyncio.timeout(IN_FLOW_DELAY):
                await future
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._inflow.remove(future)

    def _delivery_done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        room = IN_FLOW_BACKLOG - len(self._tasks)
        while room > 0 and self._inflow:
            future = self._inflow.popleft()
            if not future.done():
                future.set_result(None)
                room -= 1

    # --- intake and start-up ------------------------------------------------
    def new_queue_id(self) -> str:
        return new_queue_id(self.ctx.clock.now())

    async def accept(self, qid: str, sender: str, recipients: tuple[str, ...], message: bytes,
                     client: str = "", extra: dict | None = None, body: BinaryIO | None = None,
                     upstream: str = "", start: bool = True, session: str = "") -> str:
        """Spool a message durably, then schedule its delivery; raises OSError if not stored.
        `body`: a file holding the rest of the message, after `message` (see Spool.accept).
        `upstream`: the hop's key when another host of the lab sends it (`inbound.upstream_id`):
        recipients it queued here already are not queued again.  Returns the queue ID that
        holds the message: `qid`, or the earlier one of a hop replayed.  `start=False`: queued
        only; the caller `kick`s it.  `session`: the SMTP session that hands it over (the Queued
        event names it)."""
        if upstream:
            earlier, taken = self.inbound.taken(upstream)
            fresh = tuple(r for r in recipients if r.lower() not in taken)
            if len(fresh) < len(recipients):
                self._notice(f"from {client} ({upstream.partition(' ')[2]}): to=<"
                             f"{', '.join(r for r in recipients if r not in fresh)}> queued here "
                             f"already, not again (a hop replayed after a restart)", earlier, "smtpd")
            if not fresh:
                return earlier
            recipients = fresh
        size = len(message) + (os.fstat(body.fileno()).st_size if body is not None else 0)
        extra = (extra or {}) | ({"upstream": upstream} if upstream else {})
        entry = Entry(qid, sender, self.ctx.clock.now(), size, client, extra)
        entry.recipients = {r: Recipient(r) for r in dict.fromkeys(recipients)}
        await self.ctx.syncer.run(self.spool.accept(entry, message, body))
        if upstream:
            self.inbound.record(upstream, qid, list(entry.recipients))
        self.entries[qid] = entry
        self.ctx.bus.publish(Queued(entry.arrival, self.host, qid, sender, tuple(entry.recipients),
                                    size, client, session))
        if start:
            held = body is None and self._held_bytes + size <= MAX_HELD_BYTES
            self.kick(qid, message if held else None)
        return qid

    def load(self) -> list[Entry]:
        """Take in what an earlier run left in the spool, without trying anything yet (the lab
        loads every spool before it listens, and `resume`s after).  Blocking."""
        entries = self.spool.load()
        self.inbound.load(entries)
        for entry in entries:
            self.entries[entry.id] = entry
        return entries

    def notified_before(self) -> dict[str, tuple[list[str], str]]:
        """Queue ID -> (its pending recipients, the notice) for which an earlier run queued a
        non-delivery notice but was stopped before it recorded the bounce: the notice's envelope
        names them (`_send_dsn`); they are not tried, nor bounced, again."""
        found: dict[str, tuple[list[str], str]] = {}
        for notice in self.entries.values():
            reports = notice.extra.get("reports")
            original = self.entries.get(reports) if reports else None
            if original is None or notice.extra.get("action") != "failed":
                continue
            rcpts = [a for a in notice.extra.get("rcpts", ())
                     if a in original.recipients and original.recipients[a].status == PENDING]
            if rcpts:
                found[original.id] = (rcpts, notice.id)
        return found

    async def settle_delivered(self, found: dict[str, list[str]]) -> None:
        """Record as sent the recipients an earlier run delivered without recording it
        (`redelivery.already_delivered`): they are not delivered again."""
        for qid, rcpts in found.items():
            await self._settle_replayed(qid, rcpts, SENT, "2.0.0 delivered before the restart "
                                        "(found in the maildir)", "not delivered again")

    async def settle_notified(self) -> None:
        """Record as bounced the recipients of `notified_before` (their notice is queued
        already), and as warned a message whose delay notice is queued."""
        for qid, (rcpts, notice) in self.notified_before().items():
            await self._settle_replayed(qid, rcpts, BOUNCED, f"5.0.0 bounced before the restart "
                                        f"(non-delivery notification {notice})", "not bounced again")
        for notice in list(self.entries.values()):
            original = self.entries.get(notice.extra.get("reports", ""))
            if original is not None and notice.extra.get("action") == "delayed" and not original.warned:
                original.warned = True
                await asyncio.to_thread(self.spool.record, original, [], True, warned=True)

    async def _settle_replayed(self, qid: str, rcpts: list[str], status: str, result: str,
                               what: str) -> None:
        now = self.ctx.clock.now()
        entry = self.entries[qid]
        changed = []
        for address in rcpts:
            r = entry.recipients[address]
            r.status, r.last_attempt, r.last_result = status, now, result
            changed.append(r)
        self._notice(f"to=<{', '.join(rcpts)}>: {result.partition(' ')[2]}, {what}", qid)
        if entry.pending:
            await asyncio.to_thread(self.spool.record, entry, changed, True)
        else:
            await self.ctx.syncer.run(self.spool.remove(qid))
            del self.entries[qid]
            self.ctx.bus.publish(Removed(now, self.host, qid))

    def resume(self) -> None:
        """Schedule every loaded message that is not on hold; due ones are tried now."""
        for entry in self.entries.values():
            if not entry.held and not entry.active:
                self.scheduler.at(entry.id, entry.next_attempt)

    # --- running deliveries --------------------------------------------------
    def kick(self, qid: str, message: bytes | None = None) -> None:
        """Try `qid` now, unless it is held, gone or already being delivered.

        `message`: its bytes, when the caller has them (read from the spool otherwise).
        """
        entry = self.entries.get(qid)
        if entry is None or entry.held or entry.active or self._stopping:
            return
        self.scheduler.cancel(qid)
        entry.active = True
        self._moved(entry)
        task = asyncio.ensure_future(self._run(entry, message))
        self._tasks.add(task)
        task.add_done_callback(self._delivery_done)

    def _kick_all(self, qids: list[str]) -> None:
        for qid in qids:
            self.kick(qid)

    async def _run(self, entry: Entry, message: bytes | None) -> None:
        held = len(message) if message is not None else 0
        self._held_bytes += held
        try:
            async with self._slots:
                self._held_bytes -= held
                held = 0
                if self.entries.get(entry.id) is not entry or entry.held or self._stopping:
                    return      # deleted, put on hold or the lab stopping while it waited for a slot
                await self._delivery_memory.take(entry.size)
                try:
                    if message is None:
                        message = await asyncio.to_thread(self.spool.read_message, entry.id)
                    pending = [r.address for r in entry.pending]
                    outcomes = await self.deliver(entry, message, pending)
                    await self._settle(entry, message, outcomes)
                finally:
                    message = None
                    self._delivery_memory.give(entry.size)
        except FileNotFoundError:
            self.entries.pop(entry.id, None)     # deleted by the admin meanwhile
        except Exception as e:   # a bug must not lose the message: it stays queued
            self._notice(f"delivery failed unexpectedly ({type(e).__name__}: {e}); message left in queue",
                         entry.id)
            entry.active = False
            self.scheduler.at(entry.id, self.ctx.clock.now() + self.ctx.retry.first_retry)
        finally:
            self._held_bytes -= held
            entry.active = False

    async def _settle(self, entry: Entry, message: bytes, outcomes: list[Outcome]) -> None:
        now = self.ctx.clock.now()
        if self._stopping:
            # a stop closes the lab's listeners: a hop refused meanwhile is no attempt of the world's
            # (a deferral is not fsynced anyway: not recording one only brings its retry forward)
            outcomes = [o for o in outcomes if o.kind != "defer"]
        policy = self.ctx.retry
        expired = now - entry.arrival >= policy.lifetime
        for o in outcomes:
            if o.kind == "defer" and expired:
                o.kind, o.dsn = "bounce", "4.4.7"
                o.detail = f"message delivery time expired: {o.detail}"
        bounces = [o for o in outcomes if o.kind == "bounce"]
        notice_id = ""
        if bounces and not is_bounce(entry.sender):
            notice_id = await self._send_dsn(entry, message, bounces, "failed")
        notices = [notice_id] if notice_id else []
        if entry.extra.get("dsn") and not is_bounce(entry.sender):     # NOTIFY=SUCCESS (RFC 3461 §4.1)
            sent = [o for o in outcomes if o.kind == "sent"]
            # RFC 3461 §5.2.2: "relayed" only when the next hop had no DSN to take the request along
            for action, group in (("delivered", [o for o in sent if o.relay == "local"]),
                                  ("relayed", [o for o in sent if o.relay != "local" and not o.passed_on])):
                if group:
                    notices += filter(None, [await self._send_dsn(entry, message, group, action)])
        changed: list[Recipient] = []
        for o in outcomes:
            r = entry.recipients[o.recipient]
            # a clock jump (or a stopped lab) spans attempts the world did not run:
            # counted as the schedule would have made them, and said so
            skipped = (policy.slots_until(r.attempts, r.next_attempt, now) - 1
                       if r.attempts and r.next_attempt > 0 else 0)
            r.attempts += 1 + max(skipped, 0)
            r.last_attempt = now
            r.last_result = f"{o.dsn} {o.detail}" + (f" ({skipped} scheduled attempts skipped: "
                                                     "the clock jumped or the lab was stopped)"
                                                     if skipped > 0 else "")
            if o.kind == "defer":
                r.next_attempt = now + policy.delay_after(r.attempts)
            else:
                r.status = SENT if o.kind == "sent" else BOUNCED
            changed.append(r)
        pending = entry.pending
        warn = bool(pending) and not entry.warned and not is_bounce(entry.sender) \
            and now - entry.arrival >= policy.warn_after
        if warn:
            delayed = [o for o in outcomes if o.kind == "defer"]
            notices += filter(None, [await self._send_dsn(entry, message, delayed, "delayed")])
            entry.warned = True
        # The spool file goes in the syncer's thread (unlinking 100 KB costs
        # about 0.25 ms); an unsynced journal line is written here (0.01 ms).
        flags = {"warned": True} if warn else {}
        # the notices start only now: one started before the record could be sent twice; if
        # the record fails they start anyway (else they would wait for the next run)
        try:
            if not pending:
                await self.ctx.syncer.run(self.spool.remove(entry.id))
            elif any(r.status != PENDING for r in changed):
                await asyncio.to_thread(self.spool.record, entry, changed, True, **flags)
            else:
                self.spool.record(entry, changed, False, **flags)
        except Exception:
            self._kick_all(notices)
            raise
        self._kick_all(notices)
        self._report(entry, outcomes, now, notice_id)
        if pending:
            entry.active = False
            if entry.id in self.entries and not entry.held:
                self.scheduler.at(entry.id, entry.next_attempt)
            self._moved(entry)
        else:
            self.entries.pop(entry.id, None)
            self.ctx.bus.publish(Removed(now, self.host, entry.id))

    def _report(self, entry: Entry, outcomes: list[Outcome], now: float, notice_id: str) -> None:
        delay = max(now - entry.arrival, 0.0)
        bus = self.ctx.bus
        for o in outcomes:
            if o.kind == "sent":
                stored = o.stored
                bus.publish(Delivered(now, self.host, entry.id, o.recipient, o.relay, delay, o.dsn, o.detail,
                                      mailbox=stored.mailbox if stored else "", uid=stored.uid if stored else None,
                                      path=stored.path if stored else "", account=o.account))
            elif o.kind == "defer":
                bus.publish(Deferred(now, self.host, entry.id, o.recipient, o.relay, delay, o.dsn, o.detail))
            else:
                bus.publish(Bounced(now, self.host, entry.id, o.recipient, o.relay, delay, o.dsn, o.detail,
                                    notice_id))

    async def _send_dsn(self, entry: Entry, message: bytes, outcomes: list[Outcome], action: str) -> str:
        """Queue the notice of `action` for the recipients of `outcomes` that want one (their
        NOTIFY, RFC 3461 §4.1; the sender's RET and ENVID, in the envelope's "dsn" as the SMTP
        server put them); "" if none does."""
        asked = entry.extra.get("dsn") or {}
        wanted = {r: asked.get("rcpts", {}).get(r, [[], ""]) for r in (o.recipient for o in outcomes)}
        outcomes = [o for o in outcomes if wants_notice(tuple(wanted[o.recipient][0]), action)]
        if not outcomes:
            return ""
        qid = self.new_queue_id()
        now = self.ctx.clock.now()
        dsn = build_dsn(reporting_host=self.host, original_sender=entry.sender, original=message,
                        queue_id=entry.id, arrival=entry.arrival, now=now, action=action,
                        ret=asked.get("ret", ""), envid=asked.get("envid", ""),
                        recipients=[DsnRecipient(o.recipient, o.dsn, o.diagnostic, o.remote_mta,
                                                 orcpt=wanted[o.recipient][1]) for o in outcomes])
        stamp = local_received_header(by=self.host, queue_id=qid, when=now)
        # the notice names what it reports: queued durably, it stands for their bounce at a
        # restart (`notified_before`); it is started once the bounce is recorded (`_settle`)
        await self.accept(qid, "", (entry.sender,), stamp + dsn, client="local", start=False,
                          extra={"reports": entry.id, "action": action,
                                 "rcpts": [o.recipient for o in outcomes]})
        what = "non-delivery" if action == "failed" else "delay"
        self._notice(f"sender {what} notification: {qid}", entry.id, "bounce")
        return qid

    # --- admin ---------------------------------------------------------------
    def _entry(self, qid: str) -> Entry:
        entry = self.entries.get(qid.upper())
        if entry is None:
            raise QueueError(f"no message {qid} in the queue of {self.host}")
        return entry

    def flush(self) -> int:
        """Try every deferred message now (like `postqueue -f`)."""
        ids = self.scheduler.all_ids()
        for qid in ids:
            self.kick(qid)
        return len(ids)

    async def hold(self, qid: str) -> None:
        entry = self._entry(qid)
        entry.held = True
        self.scheduler.cancel(entry.id)
        await asyncio.to_thread(self.spool.record, entry, [], True, held=True)
        self._moved(entry)

    async def release(self, qid: str) -> None:
        entry = self._entry(qid)
        if not entry.held:
            raise QueueError(f"message {entry.id} is not on hold")
        entry.held = False
        for r in entry.pending:
            r.next_attempt = 0.0     # tried now; no attempts were due while it was held
        await asyncio.to_thread(self.spool.record, entry, [], True, held=False)
        self._moved(entry)
        self.kick(entry.id)

    async def requeue(self, qid: str) -> None:
        """Forget the past attempts' schedule and try again now (like `postsuper -r`)."""
        entry = self._entry(qid)
        for r in entry.pending:
            r.next_attempt = 0.0
        self.kick(entry.id)

    async def delete(self, qid: str) -> None:
        entry = self._entry(qid)
        self.scheduler.cancel(entry.id)
        self.entries.pop(entry.id, None)
        await self.ctx.syncer.run(self.spool.remove(entry.id))
        self._notice("removed by the administrator", entry.id, "postsuper")
        self.ctx.bus.publish(Removed(self.ctx.clock.now(), self.host, entry.id))

    def listing(self) -> list[dict]:
        return [e.to_json() | {"host": self.host} for e in self.entries.values()]

    def halt(self) -> None:
        """Start no delivery more (the first step of a stop); those waiting for a slot never start."""
        self.scheduler.stop()
        self._stopping = True

    async def drain(self, timeout: float) -> None:
        """Let the deliveries under way finish, for up to `timeout` seconds."""
        if self._tasks and timeout > 0:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def stop(self, drain: float = 0.0) -> None:
        """Halt; let deliveries under way finish for up to `drain` seconds, then abandon the
        rest: an abandoned one stays in the spool, not recorded as delivered (a local copy it
        made meanwhile is found at the next replay, a hop the next host took is recognised
        there: `inbound`)."""
        self.halt()
        await self.drain(drain)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        """After `stop`: release the spool's and the inbound journal's files."""
        self.spool.close()
        self.inbound.close()

    def _moved(self, entry: Entry) -> None:
        self.ctx.bus.publish(QueueMoved(self.ctx.clock.now(), self.host, entry.id, entry.queue))

    def _notice(self, text: str, qid: str = "", program: str = "qmgr") -> None:
        self.ctx.bus.publish(Notice(self.ctx.clock.now(), self.host, program, text, qid))
