"""In-flow control (Postfix's in_flow_delay): while a host's deliveries lag behind, a new message
waits at MAIL FROM, up to a bound, and goes on as soon as they catch up.  Real SMTP on loopback."""

from __future__ import annotations

import asyncio
import smtplib
import time

from maillab.base.events import Notice
from maillab.queue import manager as qm

from conftest import async_wait_for, maildir_messages

def _timed_mail(port: int, rcpt: str = "mafudge@syr.edu") -> float:
    """Seconds from MAIL FROM to its reply, in a whole SMTP transaction."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("northpole.org")
        started = time.monotonic()
        code, _ = s.mail("santa@northpole.org")
        took = time.monotonic() - started
        assert code == 250
        s.rcpt(rcpt)
        s.data(b"Subject: in-flow\r\n\r\nx\r\n")
    return took


async def test_new_mail_waits_while_deliveries_lag_behind_then_goes_on(lab, monkeypatch):
    monkeypatch.setattr(qm, "IN_FLOW_BACKLOG", 2)
    monkeypatch.setattr(qm, "IN_FLOW_DELAY", 0.5)
    queue = lab.mta("smtp1.syr.edu").queue
    gate = asyncio.Event()
    real = queue.deliver

    async def stuck(entry, message, rcpts):          # deliveries that cannot keep up
        await gate.wait()
        return await real(entry, message, rcpts)

    queue.deliver = stuck
    notices = lab.bus.subscribe(accept=lambda e: isinstance(e, Notice) and e.program == "cleanup")
    port = lab.ports.smtp
    assert await asyncio.to_thread(_timed_mail, port) < 0.3     # backlog 0, then 1: no wait
    assert await asyncio.to_thread(_timed_mail, port) < 0.3
    waited = await asyncio.to_thread(_timed_mail, port)         # backlog 2: waits, then goes on
    assert 0.4 < waited < 1.5 and queue.flow_delays == 1
    monkeypatch.setattr(qm, "IN_FLOW_DELAY", 5.0)
    pending = asyncio.ensure_future(asyncio.to_thread(_timed_mail, port))
    await asyncio.sleep(0.3)
    gate.set()                                                  # deliveries catch up: it goes on at once
    assert 0.2 < await pending < 2.0 and queue.flow_delays == 2
    said = [e.text for e in notices.drain()]                    # once, not at every wait
    assert len(said) == 1 and "faster than it is delivered" in said[0] and "in-flow control" in said[0]
    await async_wait_for(lambda: not queue.busy, 10)
    assert len(maildir_messages(lab.state.root, "mafudge@syr.edu")) == 4
