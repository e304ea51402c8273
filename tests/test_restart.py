"""Restarting the lab: a message file that goes away while the spool folder is being listed
(delivered and removed meanwhile) is skipped, not a crash of the whole load; every spool is
loaded before any port opens and delivered after; a local copy made before the stop but not
recorded in the spool is found in the Maildir and not delivered again."""

from __future__ import annotations

import asyncio
import os
import smtplib
from types import SimpleNamespace

from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab
from maillab.lab.world import load_world
from maillab.mta.agent import Mta
from maillab.net.ports import Ports
from maillab.queue.manager import QueueManager
from maillab.queue.spool import Spool

from conftest import async_wait_for, free_offset, maildir_messages


def test_a_message_file_removed_during_the_listing_is_skipped(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool")
    real_scandir = os.scandir

    def listing_with_a_vanished_file(folder):
        with real_scandir(folder) as found:
            entries = list(found)
        gone = os.path.join(folder, "1A2B3C4D5E.msg")       # listed, then removed
        return iter(entries + [SimpleNamespace(name="1A2B3C4D5E.msg", path=gone)])

    monkeypatch.setattr(os, "scandir", listing_with_a_vanished_file)
    assert spool.load() == []
    assert spool.load(compact=False) == []


# --- start order: every spool loaded before any port opens, deliveries after --------------------

def _submit(lab: Lab, subjects: list[str]) -> None:
    """Submit one message per subject from mafudge@syr.edu to santa@northpole.org, in one
    session on smtp1.syr.edu's submission port."""
    with smtplib.SMTP("127.0.0.1", lab.ports.submission, timeout=10) as s:
        s.starttls()                    # logins only over TLS; the restart is under test here
        s.login("mafudge@syr.edu", "maillab")
        for subject in subjects:
            s.sendmail("mafudge@syr.edu", ["santa@northpole.org"], f"Subject: {subject}\r\n\r\nx\r\n".encode())


async def _deferred_lab(state: StateDir, offset: int, count: int) -> None:
    """Run a lab that leaves `count` messages for santa@northpole.org deferred in the spool of
    smtp1.syr.edu (mail.northpole.org refused them), then stop it."""
    first = Lab(world=load_world(), state=state, ports=Ports(offset))
    await first.start()
    try:
        await first.mta("mail.northpole.org").down("refuse")
        await asyncio.to_thread(_submit, first, [f"spooled-{i}" for i in range(count)])
        queue = first.mta("smtp1.syr.edu").queue
        assert await async_wait_for(lambda: len(queue.scheduler) == count, what="all to be deferred")
    finally:
        await first.stop()


async def test_every_spool_is_loaded_before_any_port_opens_and_delivered_after(tmp_path, monkeypatch):
    state, offset = StateDir(tmp_path / "state"), free_offset()
    await _deferred_lab(state, offset, 1)
    order: list[str] = []
    real_load, real_start, real_resume = Spool.load, Mta.start, QueueManager.resume

    def load(self, compact=True):
        order.append("load")
        return real_load(self, compact)

    async def start(self):
        order.append("listen")
        await real_start(self)

    def resume(self):
        order.append("resume")
        real_resume(self)

    monkeypatch.setattr(Spool, "load", load)
    monkeypatch.setattr(Mta, "start", start)
    monkeypatch.setattr(QueueManager, "resume", resume)
    second = Lab(world=load_world(), state=state, ports=Ports(offset))
    await second.start()
    try:
        hosts = len(second.mtas)
        assert order == ["load"] * hosts + ["listen"] * hosts + ["resume"] * hosts
        assert len(second.queue_listing()) == 1
    finally:
        await second.stop()


async def test_a_restart_with_a_full_spool_delivers_each_message_exactly_once(tmp_path):
    """200 deferred messages in the spool, a restart while clients send 50 more at once: each of
    the 250 reaches the mailbox exactly once."""
    state, offset = StateDir(tmp_path / "state"), free_offset()
    await _deferred_lab(state, offset, 200)
    second = Lab(world=load_world(), state=state, ports=Ports(offset))
    clients = [asyncio.create_task(_submit_when_up(second, [f"fresh-{c}-{i}" for i in range(10)]))
               for c in range(5)]
    await second.start()
    try:
        await asyncio.gather(*clients)
        second.queue_flush()
        expected = {f"spooled-{i}" for i in range(200)} | {f"fresh-{c}-{i}" for c in range(5) for i in range(10)}

        def subjects() -> list[str]:
            return [m["Subject"] for m in maildir_messages(state.root, "santa@northpole.org")]

        assert await async_wait_for(lambda: len(subjects()) >= 250, timeout=60,
                                    what=lambda: f"250 arrivals, {len(subjects())} so far")
        await second.wait_idle(30)
        got = subjects()
        assert sorted(got) == sorted(expected)           # none lost, none twice
        assert second.queue_listing() == []
    finally:
        await second.stop()


async def _submit_when_up(lab: Lab, subjects: list[str]) -> None:
    """`_submit` as soon as smtp1.syr.edu listens, retrying only a refused connection."""
    while True:
        try:
            await asyncio.to_thread(_submit, lab, subjects)
            return
        except ConnectionRefusedError:
            await asyncio.sleep(0.01)

