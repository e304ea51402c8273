"""The retry schedule on the lab clock: backoff, delay warning, expiry — days in milliseconds."""

from __future__ import annotations

import asyncio
import email
from types import SimpleNamespace

import pytest

from maillab.base.clock import Clock, parse_duration
from maillab.base.events import EventBus, QueueMoved
from maillab.base.syncer import Syncer
from maillab.mta.routing import Outcome
from maillab.queue.manager import QueueError, QueueManager
from maillab.queue.records import RetryPolicy
from maillab.queue.spool import Spool

T0 = 1_800_000_000.0


class FakeNet:
    """Stands in for routing: records attempt times, answers what the test says."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.attempts: dict[str, list[float]] = {}
        self.answer = "defer"

    async def deliver(self, entry, message, rcpts):
        self.attempts.setdefault(entry.sender or "<>", []).append(self.clock.now())
        if entry.sender == "":          # bounces and warnings go through fine
            return [Outcome(r, "sent", "local", "2.0.0", "delivered") for r in rcpts]
        kind, dsn = {"defer": ("defer", "4.4.1"), "bounce": ("bounce", "5.1.1"),
                     "sent": ("sent", "2.0.0")}[self.answer]
        return [Outcome(r, kind, "mx.example[127.0.0.9]:25", dsn, "connect to 127.0.0.9:25: Connection refused")
                for r in rcpts]


@pytest.fixture
def queue(tmp_path):
    clock = Clock(start=T0)
    bus = EventBus()
    ctx = SimpleNamespace(clock=clock, bus=bus, retry=RetryPolicy(), syncer=Syncer(tmp_path))
    net = FakeNet(clock)
    manager = QueueManager("smtp1.syr.edu", ctx, Spool(tmp_path / "spool"), net.deliver)
    yield manager, clock, net, bus
    manager.spool.close()
    ctx.syncer.close()


async def settle(manager=None):
    for _ in range(5):
        await asyncio.sleep(0)
    while manager is not None and manager.busy:
        await asyncio.sleep(0.001)


async def async_wait(predicate, manager, timeout: float = 10.0) -> None:
    """Let the loop run until `predicate()` holds; fail loudly after `timeout` seconds."""
    async def until() -> None:
        while not predicate():
            await settle(manager)
            await asyncio.sleep(0.001)
    await asyncio.wait_for(until(), timeout)


async def run_until(manager, clock, lab_seconds, step=60.0):
    """Advance the lab clock in steps, letting due deliveries run."""
    end = clock.now() + lab_seconds
    while clock.now() < end:
        clock.advance(min(step, end - clock.now()))
        await settle(manager)


async def test_backoff_doubles_from_5_minutes_to_the_4000_second_cap(queue):
    manager, clock, net, _ = queue
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu",), b"Subject: x\r\n\r\nx\r\n")
    await run_until(manager, clock, 4 * 3600 - 60, step=10)
    times = net.attempts["santa@northpole.org"]
    gaps = [round(b - a) for a, b in zip(times, times[1:])]
    # retries come due on the minute steps of run_until: each gap is the planned delay, to 10 s
    planned = [300, 600, 1200, 2400, 4000, 4000]
    assert len(gaps) >= len(planned)
    for gap, want in zip(gaps, planned):
        assert want <= gap < want + 10
    [entry] = manager.listing()
    assert entry["queue"] == "deferred"
    assert entry["recipients"][0]["attempts"] == len(times)
    assert entry["last_result"].startswith("4.4.1 connect to 127.0.0.9:25")


async def test_a_4_hour_clock_jump_counts_the_attempts_the_schedule_would_have_made(queue):
    """Issue 13: `clock advance 4h` with the host down is not one retry but the backoff's ~7."""
    manager, clock, net, _ = queue
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu",), b"Subject: x\r\n\r\nx\r\n")
    await settle(manager)
    first = net.attempts["santa@northpole.org"][0]
    clock.advance(4 * 3600)
    await async_wait(lambda: len(net.attempts["santa@northpole.org"]) == 2, manager)
    await settle(manager)
    # Postfix's schedule from the first try: +300, +600, +1200, +2400, then +4000 each
    slots, due, delay = [], first + 300, 300
    while due <= clock.now():
        slots.append(due)
        delay = min(delay * 2, 4000)
        due += delay
    assert len(slots) == 6                       # 300, 900, 2100, 4500, 8500, 12500 s
    [entry] = manager.listing()
    [rcpt] = entry["recipients"]
    assert rcpt["attempts"] == 1 + len(slots)    # the first, 5 skipped by the jump, 1 real now
    assert rcpt["last_result"].endswith("(5 scheduled attempts skipped: the clock jumped or the lab was stopped)")
    assert len(net.attempts["santa@northpole.org"]) == 2        # the world ran two
    assert entry["next_attempt"] == pytest.approx(rcpt["last_attempt"] + 4000)


async def test_no_attempts_are_counted_for_the_hours_a_message_was_held(queue):
    manager, clock, net, _ = queue
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu",), b"Subject: x\r\n\r\nx\r\n")
    await settle(manager)
    await manager.hold("Q1")
    clock.advance(4 * 3600)
    await manager.release("Q1")
    await async_wait(lambda: len(net.attempts["santa@northpole.org"]) == 2, manager)
    await settle(manager)
    [entry] = manager.listing()
    assert entry["recipients"][0]["attempts"] == 2
    assert "skipped" not in entry["last_result"]


async def test_delay_warning_once_after_4_hours_then_failure_after_5_days(queue):
    manager, clock, net, bus = queue
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu",), b"Subject: slow\r\n\r\nx\r\n")
    await run_until(manager, clock, 3.9 * 3600, step=600)
    assert "<>" not in net.attempts                    # no warning yet
    await run_until(manager, clock, 1.2 * 3600, step=600)   # the first attempt after 4 h
    assert len(net.attempts["<>"]) == 1                # one delayed DSN, sent on
    await run_until(manager, clock, 5 * 86400, step=3600)
    assert manager.listing() == []                     # expired: gone from the queue
    assert len(net.attempts["<>"]) == 2                # the failure DSN followed


async def test_dsn_contents_for_delay_and_expiry(queue, tmp_path):
    manager, clock, net, bus = queue
    seen = []
    real = net.deliver

    async def capture(entry, message, rcpts):
        if entry.sender == "":
            seen.append(email.message_from_bytes(message))
        return await real(entry, message, rcpts)

    manager.deliver = capture
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu",), b"Subject: slow\r\n\r\nx\r\n")
    await run_until(manager, clock, parse_duration("5d") + 3600, step=1800)
    delayed, failed = seen
    assert delayed["Subject"].startswith("Delayed Mail")
    assert "Action: delayed" in delayed.get_payload()[1].as_string()
    assert failed["Subject"] == "Undeliverable: slow"
    status = failed.get_payload()[1].as_string()
    assert "Action: failed" in status and "Status: 4.4.7" in status


async def test_permanent_failure_bounces_at_once(queue):
    manager, clock, net, _ = queue
    net.answer = "bounce"
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu",), b"Subject: x\r\n\r\nx\r\n")
    await settle(manager)
    assert len(net.attempts["santa@northpole.org"]) == 1
    assert len(net.attempts["<>"]) == 1
    assert manager.listing() == []


async def test_the_scheduler_sleeps_when_nothing_is_due(queue):
    manager, clock, net, _ = queue
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu",), b"x\r\n")
    await settle(manager)
    timer = manager.scheduler._timer
    assert timer is not None
    assert timer.when() - asyncio.get_running_loop().time() > 250   # one timer, 5 minutes out
    await asyncio.sleep(0.05)
    assert len(net.attempts["santa@northpole.org"]) == 1


async def test_hold_release_delete_requeue(queue):
    manager, clock, net, bus = queue
    sub = bus.subscribe()
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu",), b"x\r\n")
    await settle(manager)
    await manager.hold("q1")
    assert manager.listing()[0]["queue"] == "hold"
    await run_until(manager, clock, 3600)
    assert len(net.attempts["santa@northpole.org"]) == 1      # held: not tried
    net.answer = "sent"
    await manager.release("Q1")
    await settle(manager)
    assert manager.listing() == []
    with pytest.raises(QueueError, match="no message Q1"):
        await manager.delete("Q1")
    assert [e.queue for e in sub.drain() if isinstance(e, QueueMoved)][:3] == ["active", "deferred", "hold"]
    net.answer = "defer"
    await manager.accept("Q2", "santa@northpole.org", ("a@syr.edu",), b"x\r\n")
    await settle(manager)
    await manager.requeue("Q2")
    await settle(manager)
    assert len(net.attempts["santa@northpole.org"]) == 4   # Q1 twice, Q2 at arrival and requeued
    await manager.delete("Q2")
    assert manager.listing() == [] and not any(manager.spool.folder.glob("*.msg"))


async def test_queue_state_survives_a_restart(queue, tmp_path):
    manager, clock, net, _ = queue
    await manager.accept("Q1", "santa@northpole.org", ("a@syr.edu", "b@syr.edu"), b"x\r\n")
    await settle(manager)
    await manager.hold("Q1")
    manager.spool.close()
    again = QueueManager("smtp1.syr.edu", manager.ctx, Spool(manager.spool.folder), net.deliver)
    assert len(again.load()) == 1
    [entry] = again.listing()
    assert entry["queue"] == "hold"
    assert [r["attempts"] for r in entry["recipients"]] == [1, 1]
    again.spool.close()
    manager.spool = Spool(manager.spool.folder)    # for the fixture's close

