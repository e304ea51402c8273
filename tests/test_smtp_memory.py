"""Memory of DATA bodies in flight, over real sockets: the shared budget answers
452 4.3.1 when spent, gives back what a finished or vanished session held, and
a later retry gets through."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from maillab.smtp import budget

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
        t.send(b"Subject: half\r\n\r\n" + b"half a mess\r\n" * 30000)  # 390 KB: past the stream's read step
        return t

    tiny_budget.limit = 1024 * 1024
    t = await asyncio.to_thread(vanish)
    assert await async_wait_for(lambda: tiny_budget.held > 0)
    t.file.close()      # the socket's file holds its descriptor open
    t.close()
    assert await async_wait_for(lambda: tiny_budget.held == 0), tiny_budget.held
