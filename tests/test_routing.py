"""Routing by MX preference: the next MX when one is down, deferral, and a world that rejects at RCPT."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from maillab.base.events import Deferred, Delivered
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab
from maillab.lab.world import load_world
from maillab.net.ports import Ports

from conftest import async_wait_for, free_offset, maildir_messages

FIXTURES = Path(__file__).parent.parent / "fixtures"


def send(address: str, port: int, sender: str, rcpt: str, subject: str, login: bool = False):
    with smtplib.SMTP(address, port, timeout=10) as s:
        if login:
            s.starttls()                # logins only over TLS; routing is under test here
            s.login(sender, "maillab")
        return s.sendmail(sender, [rcpt], f"Subject: {subject}\r\n\r\nx\r\n".encode())


async def test_primary_down_mail_goes_to_the_next_mx_and_waits_for_it(lab):
    sub = lab.bus.subscribe()
    primary = lab.mta("mx1.luxsci.net")
    await primary.down("refuse")
    assert await asyncio.to_thread(send, "127.0.0.4", lab.ports.submission, "tim.jorgensen@gmail.com",
                                   "bob@luxsci.net", "while mx1 is down", True) == {}
    # mx.gmail.com could not reach mx1 (pref 10) and handed the message to mx2 (pref 20)
    seen: list = []

    def events(kind, host):
        seen.extend(sub.drain())
        return [e for e in seen if isinstance(e, kind) and e.host == host]

    handed = await async_wait_for(lambda: events(Delivered, "mx.gmail.com"))
    assert handed[0].relay == f"mx2.luxsci.net[127.0.0.6]:{lab.ports.smtp}"
    # mx2 is a backup: it may only pass the message on to mx1, which is down, so it defers
    deferred = await async_wait_for(lambda: events(Deferred, "mx2.luxsci.net"))
    assert deferred[0].recipient == "bob@luxsci.net" and "Connection refused" in deferred[0].detail
    assert lab.mta("mx2.luxsci.net").queue.entries
    assert maildir_messages(lab.state.root, "bob@luxsci.net") == []
    await primary.up()
    lab.mta("mx2.luxsci.net").queue.flush()
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "bob@luxsci.net"))
    received = msgs[0].get_all("Received")
    assert "by mx1.luxsci.net" in received[0] and "from mx2.luxsci.net" in received[0]
    assert "by mx2.luxsci.net" in received[1] and "from mx.gmail.com" in received[1]
    await lab.wait_idle()
    assert lab.mta("mx2.luxsci.net").queue.entries == {}


async def test_each_refused_mx_try_gets_its_own_maillog_line(lab):
    """Issue 13: the failed try at each MX is logged in Postfix's words, not only the last reason."""
    await lab.mta("mx1.luxsci.net").down("refuse")
    await lab.mta("mx2.luxsci.net").down("refuse")
    assert await asyncio.to_thread(send, "127.0.0.4", lab.ports.submission, "tim.jorgensen@gmail.com",
                                   "bob@luxsci.net", "both MXs down", True) == {}
    port = lab.ports.smtp

    def tries() -> list[str]:
        return [line for line in lab.maillog_tail()[1]
                if " mx.gmail.com maillab/smtp[" in line and "Connection refused" in line]

    lines = await async_wait_for(lambda: len(tries()) >= 2 and tries())
    assert lines, f"no two refused tries logged: {tries()}"
    assert f": connect to mx1.luxsci.net[127.0.0.5]:{port}: Connection refused" in lines[0]
    assert f": connect to mx2.luxsci.net[127.0.0.6]:{port}: Connection refused" in lines[1]
    # mx3 (the last backup) took it and cannot pass it on: its deferral keeps both
    # reasons, in the queue record too, not only the last MX's
    both = (f"connect to mx1.luxsci.net[127.0.0.5]:{port}: Connection refused; "
            f"connect to mx2.luxsci.net[127.0.0.6]:{port}: Connection refused")
    [entry] = await async_wait_for(lambda: lab.mta("mx3.luxsci.net").queue.listing())
    assert entry["last_result"] == f"4.4.1 {both}"


async def test_a_deferral_lists_every_mx_reason_a_421_greeting_too(lab):
    await lab.mta("mx1.luxsci.net").down("421")
    for name in ("mx2.luxsci.net", "mx3.luxsci.net"):
        await lab.mta(name).down("refuse")
    assert await asyncio.to_thread(send, "127.0.0.4", lab.ports.submission, "tim.jorgensen@gmail.com",
                                   "bob@luxsci.net", "all MXs down", True) == {}
    [entry] = await async_wait_for(lambda: [e for e in lab.mta("mx.gmail.com").queue.listing()
                                            if e["last_result"]])
    reasons = entry["last_result"].split("; ")
    assert len(reasons) == 3, reasons
    assert reasons[0].startswith(f"4.4.1 host mx1.luxsci.net[127.0.0.5]:{lab.ports.smtp} said: 421")
    assert reasons[1].startswith("connect to mx2.luxsci.net[") and reasons[2].startswith("connect to mx3.luxsci.net[")


async def test_a_deferred_message_survives_a_restart_and_is_replayed(tmp_path):
    state, offset = StateDir(tmp_path / "state"), free_offset()
    first = Lab(world=load_world(), state=state, ports=Ports(offset))
    await first.start()
    await first.mta("mail.northpole.org").down("refuse")
    assert await asyncio.to_thread(send, "127.0.0.1", offset + 2587, "mafudge@syr.edu",
                                   "santa@northpole.org", "replay me", True) == {}
    await async_wait_for(lambda: len(first.mta("smtp1.syr.edu").queue.scheduler))   # deferred, waiting for a retry
    await first.stop()
    second = Lab(world=load_world(), state=state, ports=Ports(offset))
    await second.start()
    try:
        # still deferred, with its attempt remembered, until its retry time or a flush
        [entry] = second.queue_listing()
        assert entry["queue"] == "deferred" and entry["recipients"][0]["attempts"] == 1
        assert "Connection refused" in entry["last_result"]
        assert second.mta("smtp1.syr.edu").queue.flush() == 1
        msgs = await async_wait_for(lambda: maildir_messages(state.root, "santa@northpole.org"))
        assert msgs[0]["Subject"] == "replay me"
    finally:
        await second.stop()


async def test_world_setting_rejects_unknown_mailboxes_at_rcpt(tmp_path):
    world = load_world(FIXTURES / "worlds" / "reject-unknown")
    the_lab = Lab(world=world, state=StateDir(tmp_path / "state"), ports=Ports(free_offset()))
    await the_lab.start()

    def rcpts():
        with smtplib.SMTP("127.0.0.1", the_lab.ports.smtp, timeout=10) as s:
            s.ehlo("x.example")
            s.mail("santa@northpole.org")
            return s.rcpt("nobody@syr.edu"), s.rcpt("postmaster@syr.edu")

    try:
        unknown, alias = await asyncio.to_thread(rcpts)
    finally:
        await the_lab.stop()
    assert unknown[0] == 550 and unknown[1].startswith(b"5.1.1 <nobody@syr.edu>: Recipient address rejected")
    assert alias[0] == 250
