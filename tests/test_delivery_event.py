"""A local delivery's event says where the copy went (issue 15 item 5), and the Journey reads it there.

Mail goes in over SMTP to smtp1.syr.edu, to an alias (postmaster@syr.edu is mafudge's); the
Delivered event names the account, the mailbox, the UID and the file, and `Lab.delivered_message`
finds the header by that UID even after a flag change renamed the file, without listing the
Maildir (the listing is made to fail).  A delivery known only from the maillog (no UID) is
still found by a bounded look at the newest files.
"""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from maillab.base.events import Delivered
from maillab.lab import supervisor as lab_module

from conftest import async_wait_for


def _send(port: int, rcpt: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("santa@northpole.org", [rcpt], f"Subject: {subject}\r\n\r\nHo ho ho.\r\n".encode())


async def _delivered(lab, rcpt: str, subject: str) -> Delivered:
    """Send a message to smtp1.syr.edu; its local delivery's event."""
    sub = lab.bus.subscribe(kinds=(Delivered,))
    await asyncio.to_thread(_send, lab.ports.smtp, rcpt, subject)
    seen: list[Delivered] = []
    [d] = await async_wait_for(lambda: seen.extend(sub.drain()) or [e for e in seen if e.relay == "local"],
                               what="the local delivery's event")
    return d


async def test_the_delivered_event_names_mailbox_uid_and_file(lab, monkeypatch):
    d = await _delivered(lab, "postmaster@syr.edu", "where did it go")
    assert (d.recipient, d.account, d.mailbox) == ("postmaster@syr.edu", "mafudge@syr.edu", "INBOX")
    folder = lab.ctx.store.user("mafudge@syr.edu").folder("INBOX")
    assert d.uid is not None and folder.get(d.uid) is not None
    assert Path(d.path).is_file() and Path(d.path).read_bytes().count(b"where did it go") == 1

    folder.store([d.uid], {"\\Seen"}, "add")                    # the file is renamed: cur/...:2,S
    assert not Path(d.path).exists()

    def no_listing(folder):
        raise AssertionError("the Maildir was listed")
    monkeypatch.setattr(lab_module, "_maildir_files", no_listing)
    header = await asyncio.to_thread(lab.delivered_message, d)
    assert header is not None and f" id {d.queue_id}".encode() in header and b"where did it go" in header


async def test_a_delivery_known_only_from_the_maillog_is_found_by_its_queue_id(lab):
    d = await _delivered(lab, "mafudge@syr.edu", "from the log")
    bare = Delivered(d.time, d.host, d.queue_id, d.recipient, d.relay, d.delay, d.dsn, d.detail)  # as maillog_read makes it
    header = await asyncio.to_thread(lab.delivered_message, bare)
    assert header is not None and b"from the log" in header


async def test_an_expunged_copy_is_gone(lab):
    d = await _delivered(lab, "mafudge@syr.edu", "soon gone")
    folder = lab.ctx.store.user("mafudge@syr.edu").folder("INBOX")
    folder.store([d.uid], {"\\Deleted"}, "add")
    folder.expunge()
    assert await asyncio.to_thread(lab.delivered_message, d) is None
