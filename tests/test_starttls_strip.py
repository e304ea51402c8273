"""STARTTLS stripping (`maillab hosts strip HOST`): the host stops offering STARTTLS, live, as a
man in the middle who cuts it from EHLO makes it look; `unstrip` offers it again.  A hop to it
under smtp_tls_security_level `may` goes in plaintext, under `encrypt` it waits."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess
import sys

import pytest

from maillab.base.events import MxTried

from conftest import async_wait_for, maildir_messages, wait_for


def cli(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maillab", *args, "--state", str(lab.state)],
                          capture_output=True, text=True, timeout=60)


def ehlo_and_starttls(address: str, port: int) -> tuple[list[str], tuple[int, bytes]]:
    """The EHLO keywords of a new session, and the reply to STARTTLS (without going on into TLS
    when it is a 220: the session is dropped)."""
    s = smtplib.SMTP(address, port, timeout=10)
    try:
        s.ehlo("northpole.org")
        keywords = [line.split()[0].upper() for line in s.ehlo_resp.decode().splitlines()[1:]]
        return keywords, s.docmd("STARTTLS")
    finally:
        s.close()


def test_strip_and_unstrip_against_a_running_lab(served):
    lab = served()
    keywords, reply = ehlo_and_starttls("127.0.0.1", lab.ports.smtp)
    assert "STARTTLS" in keywords and reply[0] == 220
    open_before = smtplib.SMTP("127.0.0.1", lab.ports.submission, timeout=10)    # opened before the strip
    r = cli(lab, "hosts", "strip", "smtp1.syr.edu")
    assert r.returncode == 0 and r.stdout.strip() == "smtp1.syr.edu: STARTTLS stripped"
    row = next(line for line in cli(lab, "hosts").stdout.splitlines() if line.startswith("smtp1.syr.edu"))
    assert "STARTTLS stripped" in row
    for port in (lab.ports.smtp, lab.ports.submission):
        keywords, reply = ehlo_and_starttls("127.0.0.1", port)
        assert "STARTTLS" not in keywords and "SIZE" in keywords
        assert reply == (502, b"5.5.1 Error: command not implemented")
    open_before.ehlo("northpole.org")
    assert open_before.has_extn("starttls")         # a session keeps what it began with
    open_before.close()
    assert "STARTTLS" in ehlo_and_starttls("127.0.0.2", lab.ports.smtp)[0]      # other hosts untouched
    assert wait_for(lambda: "smtp1.syr.edu maillab/smtpd" in lab.output() and
                    "STARTTLS stripped: the EHLO reply no longer offers it" in lab.output())
    assert cli(lab, "hosts", "unstrip", "smtp1.syr.edu").stdout.strip() == "smtp1.syr.edu: STARTTLS offered"
    keywords, reply = ehlo_and_starttls("127.0.0.1", lab.ports.smtp)
    assert "STARTTLS" in keywords and reply[0] == 220
    assert wait_for(lambda: "STARTTLS offered again in the EHLO reply" in lab.output())


def test_strip_needs_a_known_host(served):
    lab = served()
    r = cli(lab, "hosts", "strip", "nowhere.example")
    assert r.returncode != 0 and r.stderr.strip().endswith("no host nowhere.example in this world (try: maillab hosts)")
    r = cli(lab, "hosts", "strip")
    assert r.returncode != 0 and "hosts strip needs a host name" in r.stderr


def submit_from_santa(lab) -> None:
    with smtplib.SMTP("127.0.0.3", lab.ports.submission, timeout=10) as s:
        s.starttls(context=ssl.create_default_context(cafile=lab.state.tls_dir / "ca.pem"))
        s.login("santa@northpole.org", "maillab")
        s.sendmail("santa@northpole.org", ["mafudge@syr.edu"], b"Subject: list\r\n\r\nchecked twice\r\n")


def hop_tries(sub):
    """A function giving mail.northpole.org's tries so far (each call drains `sub` into them)."""
    seen: list = []

    def tries() -> list[MxTried]:
        seen.extend(sub.drain())
        return [e for e in seen if isinstance(e, MxTried) and e.host == "mail.northpole.org"]
    return tries


async def test_a_may_hop_to_a_stripped_host_goes_in_plaintext(lab):
    lab.host_strip("smtp1.syr.edu")
    tries = hop_tries(lab.bus.subscribe())
    await asyncio.to_thread(submit_from_santa, lab)
    [msg] = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"))
    assert "by smtp1.syr.edu (maillab) with ESMTP id" in msg.get_all("Received")[0]     # not ESMTPS
    [tried] = await async_wait_for(tries)
    assert tried.result == "delivered" and tried.tls == ""


@pytest.mark.world(smtp_tls_security_level="encrypt")
async def test_an_encrypt_hop_to_a_stripped_host_defers_until_unstripped(lab):
    lab.host_strip("smtp1.syr.edu")
    tries = hop_tries(lab.bus.subscribe())
    await asyncio.to_thread(submit_from_santa, lab)
    # the try at smtp1 (the backup MX smtp2.syr.edu, not stripped, may take the mail next)
    [tried] = await async_wait_for(lambda: [t for t in tries() if t.mx == "smtp1.syr.edu"])
    assert tried.result == "deferred" and "TLS is required, but was not offered by host" in tried.reason
    assert maildir_messages(lab.state.root, "mafudge@syr.edu") == []
    lab.host_strip("smtp1.syr.edu", on=False)
    lab.queue_flush()
    [msg] = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"))
    assert "by smtp1.syr.edu (maillab) with ESMTPS id" in msg.get_all("Received")[0]
