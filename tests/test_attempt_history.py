"""Issue 13: every try at every MX is kept per message (bounded), persisted in the spool, and on the bus."""

from __future__ import annotations

import asyncio
import json

from maillab.base.events import MxTried
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab
from maillab.lab.world import load_world
from maillab.net.ports import Ports
from maillab.queue.records import MAX_HISTORY, Attempt, Entry, Recipient
from maillab.queue.spool import Spool

from conftest import async_wait_for, free_offset
from test_routing import send


async def test_a_refused_preferred_mx_is_in_the_history_and_survives_a_restart(tmp_path):
    state, offset = StateDir(tmp_path / "state"), free_offset()
    first = Lab(world=load_world(), state=state, ports=Ports(offset))
    await first.start()
    try:
        sub = first.bus.subscribe()
        await first.host_down("smtp1.syr.edu")
        assert await asyncio.to_thread(send, "127.0.0.4", first.ports.submission, "tim.jorgensen@gmail.com",
                                       "mafudge@syr.edu", "smtp1 is down", True) == {}
        seen: list = []

        def tries(host: str) -> list[MxTried]:
            seen.extend(sub.drain())
            return [e for e in seen if isinstance(e, MxTried) and e.host == host]

        # mx.gmail.com: smtp1 refused, then smtp2 took it, in that order
        await async_wait_for(lambda: any(t.result == "delivered" for t in tries("mx.gmail.com")))
        smtp = first.ports.smtp
        assert [(t.mx, t.address, t.result, t.reason) for t in tries("mx.gmail.com")][:1] == [
            ("smtp1.syr.edu", f"127.0.0.1:{smtp}", "refused", "Connection refused")]
        last = tries("mx.gmail.com")[-1]
        assert (last.mx, last.address, last.result) == ("smtp2.syr.edu", f"127.0.0.2:{smtp}", "delivered")
        assert last.reason.startswith("250")
        # smtp2 is the backup: it tried smtp1 too, and keeps that try in its queue record
        [entry] = await async_wait_for(lambda: [e for e in first.mta("smtp2.syr.edu").queue.listing()
                                                if e["history"]])
        assert entry["history"][0] | {"at": 0} == {"at": 0, "mx": "smtp1.syr.edu",
                                                   "address": f"127.0.0.1:{smtp}", "result": "refused",
                                                   "reason": "Connection refused"}
        await first.wait_idle()
    finally:
        await first.stop()
    second = Lab(world=load_world(), state=state, ports=Ports(offset))
    await second.start()
    try:
        [again] = second.queue_listing()
        assert again["history"] == entry["history"]
    finally:
        await second.stop()


def _entry(qid: str = "B1") -> Entry:
    entry = Entry(qid, "a@b.c", 1000.0, 10)
    entry.recipients = {"x@y.z": Recipient("x@y.z")}
    return entry


def test_history_keeps_the_newest_tries_and_reloads_them(tmp_path):
    spool = Spool(tmp_path / "spool")
    entry = _entry()
    list(spool.accept(entry, b"Subject: x\r\n\r\nx\r\n"))
    for n in range(MAX_HISTORY + 5):
        entry.add_attempt(Attempt(1000.0 + n, "smtp1.syr.edu", "127.0.0.1:25", "refused", f"try {n}"))
        r = entry.recipients["x@y.z"]
        r.attempts, r.last_attempt, r.last_result = n + 1, 1000.0 + n, "4.4.1 refused"
        spool.record(entry, [r])
    assert len(entry.history) == MAX_HISTORY and entry.history[0].reason == "try 5"
    spool.close()
    [loaded] = Spool(tmp_path / "spool").load()
    assert loaded.history == entry.history


def test_a_journal_written_before_the_history_still_loads(tmp_path):
    folder = tmp_path / "spool"
    spool = Spool(folder)
    entry = _entry()
    list(spool.accept(entry, b"Subject: x\r\n\r\nx\r\n"))
    spool.close()
    envelope = {"id": "B1", "sender": "a@b.c", "recipients": ["x@y.z"], "arrival": 1000.0, "size": 10,
                "client": "", "extra": {}}
    (folder / "journal").write_text(
        json.dumps({"q": "B1", "env": envelope}) + "\n"
        + json.dumps({"q": "B1", "r": "x@y.z", "s": "pending", "a": 1, "n": 1300.0, "l": 1000.0,
                      "x": "4.4.1 refused"}) + "\n")
    [loaded] = Spool(folder).load()
    assert loaded.history == [] and loaded.recipients["x@y.z"].attempts == 1
