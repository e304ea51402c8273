"""A non-delivery notice is sent once even when the lab dies between queuing it and recording the bounce."""

from __future__ import annotations

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


class Killed(BaseException):
    """Stands for a kill -9 at the spool write it is raised from: nothing after it runs (no
    Exception handler takes it)."""


class Host:
    """Runs of one host's queue manager over a spool; notices (sender <>) are counted as
    delivered, every other message bounces."""

    def __init__(self, tmp_path) -> None:
        self.folder, self.syncer = tmp_path / "spool", Syncer(tmp_path)
        self.notices: list[str] = []

    async def deliver(self, entry, message, rcpts):
        if entry.sender == "":
            self.notices.append(entry.id)
            return [Outcome(r, "sent", "local", "2.0.0", "delivered to maildir") for r in rcpts]
        return [Outcome(r, "bounce", "local", "5.1.1", 'unknown user: "nobody"') for r in rcpts]

    def run(self) -> QueueManager:
        ctx = SimpleNamespace(clock=Clock(start=1_800_000_000.0), bus=EventBus(), retry=RetryPolicy(),
                              syncer=self.syncer)
        return QueueManager("smtp1.syr.edu", ctx, Spool(self.folder), self.deliver)


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path)
    yield h
    h.syncer.close()


async def test_a_bounce_whose_record_a_kill_prevented_is_not_notified_twice(host):
    notices = host.notices
    run = host.run
    first = run()
    removals = first.spool.remove

    def killed_at_the_original(qid: str):
        if qid == "Q1":
            raise Killed("kill -9 before the bounce of Q1 is recorded")
        return removals(qid)
    first.spool.remove = killed_at_the_original
    await first.accept("Q1", "mafudge@syr.edu", ("nobody@syr.edu",), b"Subject: x\r\n\r\nx\r\n")
    await async_wait_for(lambda: (notices or any(e.extra.get("reports") == "Q1" for e in first.entries.values()))
                         and not first.busy, what="the notice made and the attempt over")
    await first.stop()
    first.close()

    again = run()
    again.load()
    await again.settle_notified()
    again.resume()
    await async_wait_for(lambda: not again.entries and not again.busy,
                         what=lambda: f"an empty queue; left {list(again.entries)}")
    again.close()
    assert len(notices) == 1, notices


async def test_a_notice_goes_even_when_recording_its_bounce_fails(host):
    manager = host.run()

    def failing(qid: str):
        raise OSError(28, "No space left on device")
    manager.spool.remove = failing
    await manager.accept("Q1", "mafudge@syr.edu", ("nobody@syr.edu",), b"Subject: x\r\n\r\nx\r\n")
    await async_wait_for(lambda: host.notices, what="the notice delivered in this run")
    await manager.stop()
    manager.close()
