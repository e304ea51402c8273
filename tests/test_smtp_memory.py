"""Memory of DATA bodies in flight, over real sockets: the shared budget answers
452 4.3.1 when spent, gives back what a finished or vanished session held, and
a later retry gets through."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from maillab.smtp import budget
from maillab.smtp.bodysink import SPILL_AT

from conftest import async_wait_for, maildir_messages
from test_smtp_server import Typist


@pytest.fixture
def tiny_budget(monkeypatch):
    b = budget.MemoryBudget(limit=64 * 1024)
    monkeypatch.setattr("maillab.smtp.server.IN_FLIGHT", b)
    return b


async def test_over_the_in_flight_budget_gets_452_and_a_retry_succeeds(lab, tiny_budget):
    body = b"Subject: big\r\n\r\n" + (b"z" * 70 + b"\r\n") * 2000   # 144 KB > 64 KiB budget

    def send(message: bytes):
        with smtplib.SMTP("127.0.0.4", lab.ports.smtp, timeout=30) as s:
            s.sendmail("bob@luxsci.net", ["tim.jorgensen@gmail.com"], message)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(send, body)
    assert refused.value.smtp_code == 452
    assert refused.value.smtp_error.startswith(b"4.3.1 ")
    assert tiny_budget.held == 0
    tiny_budget.limit = 1024 * 1024     # memory is free again: the retry goes through
    await asyncio.to_thread(send, body)
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "tim.jorgensen@gmail.com"))
    assert msgs[0]["Subject"] == "big"
    assert tiny_budget.held == 0


async def test_a_session_that_vanishes_mid_data_gives_its_budget_back(lab, tiny_budget):
    def vanish():
        t = Typist("127.0.0.1", lab.ports.smtp)
        t.say("EHLO gone.example")
        t.say("MAIL FROM:<santa@northpole.org>")
        t.say("RCPT TO:<mafudge@syr.edu>")
        t.say("DATA")
        # 3/4 of SPILL_AT: past the stream's read step, held in memory (a spilled body gives it back)
        t.send(b"Subject: half\r\n\r\n" + b"half a mess\r\n" * (SPILL_AT * 3 // 4 // 13))
        return t

    tiny_budget.limit = 1024 * 1024
    t = await asyncio.to_thread(vanish)
    assert await async_wait_for(lambda: tiny_budget.held > 0)
    t.file.close()      # the socket's file holds its descriptor open
    t.close()
    await async_wait_for(lambda: tiny_budget.held == 0, what=lambda: f"the budget freed, {tiny_budget.held} held")


def _spill_files(lab) -> list:
    return sorted((lab.state.root / "spool").glob("*/.body-*.tmp"))


async def test_a_9_mb_message_is_spilled_and_arrives_byte_exact(lab, tiny_budget):
    """1 MiB of in-memory budget: held whole, a 9 MB body would get 452; spilled, it goes through."""
    tiny_budget.limit = 1024 * 1024
    lines = [b".dotted line %d" % i if i % 7 == 0 else b"line %d of the big one" % i for i in range(360_000)]
    message = b"Subject: nine\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    assert len(message) > 9_000_000

    def send():
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=60) as s:
            s.sendmail("santa@northpole.org", ["mafudge@syr.edu"], message)

    await asyncio.to_thread(send)
    root = lab.state.root / "mail" / "syr.edu" / "mafudge"
    files = await async_wait_for(lambda: [p for sub in ("new", "cur") for p in (root / sub).glob("*")], 30)
    assert files[0].read_bytes().endswith(message.replace(b"\r\n", b"\n"))
    assert _spill_files(lab) == [] and tiny_budget.held == 0


async def test_a_body_over_the_limit_gets_552_and_leaves_no_spill_file(lab):
    limit = lab.world.message_size_limit
    body = b"Subject: huge\r\n\r\n" + (b"y" * 78 + b"\r\n") * (limit // 80 + 1000)

    def send():
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=60) as s:
            s.ehlo()
            s.mail("santa@northpole.org")      # no SIZE=: the limit is found during DATA
            s.rcpt("mafudge@syr.edu")
            return s.data(body)

    code, text = await asyncio.to_thread(send)
    assert code == 552 and text.startswith(b"5.3.4 ")
    assert _spill_files(lab) == []


async def test_a_session_dropped_mid_data_leaves_no_spill_file(lab):
    def start():
        t = Typist("127.0.0.1", lab.ports.smtp)
        t.say("EHLO gone.example")
        t.say("MAIL FROM:<santa@northpole.org>")
        t.say("RCPT TO:<mafudge@syr.edu>")
        t.say("DATA")
        t.send(b"Subject: half\r\n\r\n" + b"half a big message\r\n" * 100_000)   # 2 MB
        return t

    t = await asyncio.to_thread(start)
    await async_wait_for(lambda: _spill_files(lab), 20, what="the body to go to a spill file")
    t.file.close()
    t.close()
    await async_wait_for(lambda: not _spill_files(lab), 20,
                         what=lambda: f"the spill files removed: {_spill_files(lab)}")
