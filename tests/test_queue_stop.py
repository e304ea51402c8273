"""A stop of the queue manager: nothing new starts, and the stop itself is no attempt of the world's."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from maillab.base.clock import Clock
from maillab.base.events import EventBus
from maillab.base.syncer import Syncer
from maillab.mta.routing import Outcome
from maillab.queue.manager import QueueManager
from maillab.queue.records import RetryPolicy
from maillab.queue.spool import Spool

from conftest import async_wait_for


class Gate:
    """A delivery function that waits until the test opens it, then answers `kind`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.opened = asyncio.Event()
        self.calls: list[str] = []

    async def deliver(self, entry, message, rcpts):
        self.calls.append(entry.id)
        await self.opened.wait()
        return [Outcome(r, self.kind, "mail.northpole.org[127.0.0.3]:2525", "4.4.1",
                        "connect to mail.northpole.org[127.0.0.3]:2525: Connection refused") for r in rcpts]


@pytest.fixture
def make(tmp_path):
    made = []

    def build(kind: str) -> tuple[QueueManager, Gate]:
        gate = Gate(kind)
        ctx = SimpleNamespace(clock=Clock(start=1_800_000_000.0), bus=EventBus(), retry=RetryPolicy(),
                              syncer=Syncer(tmp_path))
        manager = QueueManager("smtp1.syr.edu", ctx, Spool(tmp_path / "spool"), gate.deliver)
        made.append(manager)
        return manager, gate
    yield build
    for m in made:
        m.close()
        m.ctx.syncer.close()


async def test_a_hop_refused_while_the_lab_stops_is_not_recorded_as_an_attempt(make, tmp_path):
    """The lab's listeners close during a stop: a hop refused then is retried at once after the
    restart, not 5 minutes later with an attempt counted."""
    manager, gate = make("defer")
    await manager.accept("Q1", "mafudge@syr.edu", ("santa@northpole.org",), b"Subject: x\r\n\r\nx\r\n")
    await async_wait_for(lambda: gate.calls, what="the delivery to start")
    manager.halt()
    gate.opened.set()
    await manager.stop(drain=10)
    (r,) = Spool(tmp_path / "spool").load(compact=False)[0].recipients.values()
    assert (r.attempts, r.next_attempt, r.last_result) == (0, 0.0, "")


async def test_a_delivery_waiting_for_a_slot_does_not_start_once_halted(make):
    manager, gate = make("sent")
    manager._slots = asyncio.Semaphore(1)          # one delivery at a time
    for qid in ("Q1", "Q2"):
        await manager.accept(qid, "mafudge@syr.edu", ("santa@northpole.org",), b"Subject: x\r\n\r\nx\r\n")
    await async_wait_for(lambda: gate.calls, what="the first delivery to start")
    manager.halt()
    gate.opened.set()
    await manager.stop(drain=10)
    assert gate.calls == ["Q1"]
    assert list(manager.entries) == ["Q2"]          # still queued, for the next run
