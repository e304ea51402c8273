"""A hop from another host of the lab replayed after a restart is not queued twice (queue/inbound.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from maillab.base.clock import Clock
from maillab.base.events import EventBus, Notice
from maillab.base.syncer import Syncer
from maillab.lab.world import load_world
from maillab.mta.routing import Outcome
from maillab.queue.inbound import upstream_id
from maillab.queue.manager import QueueManager
from maillab.queue.records import RetryPolicy
from maillab.queue.spool import Spool
from maillab.smtp.received import local_received_header, received_header

WORLD = load_world()


def stamped(by: str, qid: str, body: bytes = b"Subject: hop\r\n\r\nhello\r\n") -> bytes:
    return received_header(helo="syr.edu", client_name="client", client_ip="127.0.0.9", by=by,
                           protocol="ESMTPA", queue_id=qid, recipients=["a@x", "b@x"], when=0) + body


def lab_hop(client_ip: str, content: bytes) -> str:
    """The key for a client, as `Mta.upstream_id` looks it up: the world's host at that address."""
    host = WORLD.host_at(client_ip)
    return upstream_id(client_ip, host.name if host is not None else "", content)


def test_upstream_id_is_the_lab_hosts_own_stamp_on_top():
    assert lab_hop("127.0.0.3", stamped("mail.northpole.org", "4F3A2B1C9D")) == "127.0.0.3 4F3A2B1C9D"
    bounce = local_received_header(by="mail.northpole.org", queue_id="BBB1", when=0) + b"Subject: b\r\n\r\nx\r\n"
    assert lab_hop("127.0.0.3", bounce) == "127.0.0.3 BBB1"
    # another host's name, a client that is no host of the lab, a stamp that is not on top
    assert lab_hop("127.0.0.3", stamped("mx.gmail.com", "4F3A2B1C9D")) == ""
    assert lab_hop("127.0.0.200", stamped("mail.northpole.org", "4F3A2B1C9D")) == ""
    assert lab_hop("127.0.0.3", b"Subject: x\r\n" + stamped("mail.northpole.org", "Q")) == ""
    assert lab_hop("127.0.0.3", b"Subject: typed by hand\r\n\r\nx\r\n") == ""
    assert upstream_id("127.0.0.3", "", stamped("mail.northpole.org", "Q")) == ""


def test_upstream_id_of_a_body_spilled_to_a_file(tmp_path):
    """A message past the memory threshold reaches the DATA hook as a file, `content` empty."""
    spill = tmp_path / ".body-x.tmp"
    spill.write_bytes(stamped("mail.northpole.org", "BIG1", b"Subject: big\r\n\r\n" + b"y" * 300_000))
    with open(spill, "rb") as body:
        assert upstream_id("127.0.0.3", "mail.northpole.org", b"", body) == "127.0.0.3 BIG1"


class Host:
    """One receiving host's queue manager over a spool folder; `restart()` is a new run on it."""

    def __init__(self, tmp_path) -> None:
        self.folder, self.syncer = tmp_path / "spool", Syncer(tmp_path)
        self.delivered: list[tuple[str, str]] = []
        self.notices: list = []          # each run's subscription to Notice events
        self.manager = self._new()

    def _new(self) -> QueueManager:
        bus = EventBus()
        self.notices.append(bus.subscribe(kinds=(Notice,)))
        ctx = SimpleNamespace(clock=Clock(start=1_800_000_000.0), bus=bus, retry=RetryPolicy(),
                              syncer=self.syncer)
        manager = QueueManager("mail.northpole.org", ctx, Spool(self.folder), self._deliver)
        manager.halt()                 # keep what is queued queued: the test looks at the spool
        manager.load()
        return manager

    async def _deliver(self, entry, message, rcpts):
        self.delivered += [(entry.id, r) for r in rcpts]
        return [Outcome(r, "sent", "local", "2.0.0", "delivered") for r in rcpts]

    def restart(self) -> None:
        self.manager.close()
        self.manager = self._new()

    async def accept(self, rcpts: tuple[str, ...], upstream: str) -> str:
        m = self.manager
        return await m.accept(m.new_queue_id(), "mafudge@syr.edu", rcpts, stamped("smtp1.syr.edu", "UP1"),
                              client="smtp1.syr.edu[127.0.0.1]", upstream=upstream)

    def queued(self) -> list[tuple[str, ...]]:
        return sorted(tuple(e.recipients) for e in Spool(self.folder).load(compact=False))

    def close(self) -> None:
        self.manager.close()
        self.syncer.close()


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path)
    yield h
    h.close()


async def test_a_replayed_hop_is_answered_with_the_first_queue_id_across_restarts(host):
    first = await host.accept(("santa@northpole.org",), "127.0.0.1 UP1")
    assert await host.accept(("santa@northpole.org",), "127.0.0.1 UP1") == first
    host.restart()
    assert await host.accept(("Santa@northpole.org",), "127.0.0.1 UP1") == first
    assert host.queued() == [("santa@northpole.org",)]
    assert any("queued here already, not again" in e.text for sub in host.notices for e in sub.drain())
    # a recipient not taken before is queued; another upstream queue ID is another message
    third = await host.accept(("santa@northpole.org", "elf@northpole.org"), "127.0.0.1 UP1")
    assert third != first
    await host.accept(("santa@northpole.org",), "127.0.0.1 UP2")
    assert host.queued() == [("elf@northpole.org",), ("santa@northpole.org",), ("santa@northpole.org",)]


async def test_a_hop_queued_but_not_yet_journaled_is_known_from_its_envelope(host):
    """A kill between the copy made durable and its inbound line: the queued copy's envelope
    holds the key."""
    first = await host.accept(("santa@northpole.org",), "127.0.0.1 UP1")
    host.manager.close()
    (host.folder / "inbound").unlink()
    host.manager = host._new()
    assert await host.accept(("santa@northpole.org",), "127.0.0.1 UP1") == first
    assert host.queued() == [("santa@northpole.org",)]


async def test_without_an_upstream_key_every_message_is_queued(host):
    await host.accept(("santa@northpole.org",), "")
    await host.accept(("santa@northpole.org",), "")
    assert host.queued() == [("santa@northpole.org",), ("santa@northpole.org",)]


def test_the_journal_keeps_the_last_hops_and_stays_bounded(tmp_path, monkeypatch):
    from maillab.queue import inbound
    monkeypatch.setattr(inbound, "KEEP", 5)
    ledger = inbound.InboundLedger(tmp_path / "inbound")
    ledger.load([])
    for n in range(40):
        ledger.record(f"127.0.0.1 UP{n}", f"Q{n}", [f"r{n}@northpole.org"])
        assert len((tmp_path / "inbound").read_bytes().splitlines()) <= 2 * 5
    ledger.close()
    again = inbound.InboundLedger(tmp_path / "inbound")
    again.load([])
    assert again.taken("127.0.0.1 UP39") == ("Q39", {"r39@northpole.org"})
    assert again.taken("127.0.0.1 UP35") == ("Q35", {"r35@northpole.org"})
    assert again.taken("127.0.0.1 UP34") == ("", set())        # past the last KEEP
    again.close()
