"""IDLE wake-ups do no fsync on the event loop: claiming \\Recent is session state (RFC 3501 §2.3.2).

A user IDLEs on INBOX over a real socket while messages arrive over SMTP; every
os.fsync is recorded with the thread that called it.  Deliveries flush (on the
Syncer thread: one syncfs for all, or fsyncs); telling the idling session of a message must not fsync on the
loop, where it stalls every other session.
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from test_imap_server import client, deliver, idle_until

pytestmark = pytest.mark.world(auth_over_plaintext=True)     # imapclient logs in over plaintext


async def test_idle_wakeups_do_not_fsync_on_the_loop(lab, monkeypatch):
    await deliver(lab, 1)
    c = await asyncio.to_thread(client, lab)
    await asyncio.to_thread(c.select_folder, "INBOX")
    await asyncio.to_thread(c.idle)
    loop_thread = threading.get_ident()
    real_fsync = os.fsync
    on_loop: list[int] = []
    anywhere: list[int] = []

    def recording_fsync(fd: int) -> None:
        anywhere.append(fd)
        if threading.get_ident() == loop_thread:
            on_loop.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    flushes = lab.ctx.syncer.flushes
    for n in range(2, 22):                                  # 20 deliveries, one IDLE wake-up each
        await deliver(lab, 1, start=n)
        assert await asyncio.to_thread(idle_until, c, lambda r, n=n: r == (n, b"EXISTS"))
    monkeypatch.setattr(os, "fsync", real_fsync)
    await asyncio.to_thread(c.idle_done)
    folder = lab.ctx.store.user("mafudge@syr.edu").folder("INBOX")
    assert folder.recent == 0                               # the session did claim them
    await asyncio.to_thread(c.logout)
    assert anywhere or lab.ctx.syncer.flushes >= flushes + 20, "deliveries must flush somewhere"
    assert on_loop == [], f"{len(on_loop)} fsyncs on the event loop during 20 IDLE wake-ups"
