"""Outbound TLS between MTAs (smtp/outbound_tls.py): Postfix's smtp_tls_security_level.

Through the lab: the default `may` relays over STARTTLS, verified against the lab CA
(Received `with ESMTPS` and the cipher, the maillog's "Verified TLS connection established
to …", the hop's MxTried), and `none` stays in plaintext.  Against a peer of our own
making (aiosmtpd, STARTTLS with a certificate of the lab CA or a stranger's): what each
level does when the certificate names another host, is self-signed, or TLS is not offered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import ssl
from pathlib import Path

import pytest

from maillab.base.clock import Clock
from maillab.base.events import EventBus, MxTried, Notice, SessionLine
from maillab.lab.ca import LabCA
from maillab.net.tls import server_context
from maillab.smtp.client import relay_hop
from maillab.smtp.outbound_tls import OutboundTls

from conftest import async_wait_for, maildir_messages
from test_smtp_client import MESSAGE, Recorder, aiosmtpd_peer, self_signed

SANTA, FUDGE = "santa@northpole.org", "mafudge@syr.edu"


def submit_from_santa(lab) -> None:
    with smtplib.SMTP("127.0.0.3", lab.ports.submission, timeout=10) as s:
        s.starttls(context=ssl.create_default_context(cafile=lab.state.tls_dir / "ca.pem"))
        s.login(SANTA, "maillab")
        s.sendmail(SANTA, [FUDGE], b"From: santa@northpole.org\r\nSubject: list\r\n\r\nchecked twice\r\n")


def hop_sessions(events: list, host: str) -> list[str]:
    """The client lines of `host`'s outbound sessions."""
    return [e.text for e in events if isinstance(e, SessionLine) and e.host == host and "/smtp-out/" in e.session
            and e.direction == "client"]


async def test_the_default_world_relays_over_verified_starttls(lab):
    sub = lab.bus.subscribe()
    await asyncio.to_thread(submit_from_santa, lab)
    [msg] = await async_wait_for(lambda: maildir_messages(lab.state.root, FUDGE))
    top = msg.get_all("Received")[0]
    assert "by smtp1.syr.edu (maillab) with ESMTPS id" in top
    assert "(using TLSv1." in top and " with cipher " in top and " bits))" in top
    events = sub.drain()
    assert "STARTTLS" in hop_sessions(events, "mail.northpole.org")
    logged = [e.text for e in events if isinstance(e, Notice) and e.host == "mail.northpole.org"]
    assert any(t.startswith(f"Verified TLS connection established to smtp1.syr.edu[127.0.0.1]:{lab.ports.smtp}: "
                            "TLSv1.") for t in logged), logged
    [tried] = [e for e in events if isinstance(e, MxTried) and e.host == "mail.northpole.org"]
    assert tried.result == "delivered" and tried.tls.startswith("Verified TLS, TLSv1.")


@pytest.mark.world(smtp_tls_security_level="none")
async def test_level_none_relays_in_plaintext(lab):
    sub = lab.bus.subscribe()
    await asyncio.to_thread(submit_from_santa, lab)
    [msg] = await async_wait_for(lambda: maildir_messages(lab.state.root, FUDGE))
    assert "by smtp1.syr.edu (maillab) with ESMTP id" in msg.get_all("Received")[0]
    events = sub.drain()
    assert "STARTTLS" not in hop_sessions(events, "mail.northpole.org")
    [tried] = [e for e in events if isinstance(e, MxTried) and e.host == "mail.northpole.org"]
    assert tried.result == "delivered" and tried.tls == ""


async def test_a_domain_level_overrides_the_worlds(lab):
    """syr.edu asks for `encrypt` (smtp_tls_policy_maps); the world says `none` for the rest."""
    world = lab.ctx.world
    domains = dict(world.domains)
    domains["syr.edu"] = dataclasses.replace(domains["syr.edu"], smtp_tls_security_level="encrypt")
    assert dataclasses.replace(world, domains=domains, smtp_tls_security_level="none").tls_level_for("SYR.EDU") \
        == "encrypt"
    assert dataclasses.replace(world, smtp_tls_security_level="none").tls_level_for("gmail.com") == "none"


# --- against a peer of our own ------------------------------------------------------------

def lab_ca_peer(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, OutboundTls]:
    """A server context with a lab-CA certificate for `name`, and the MTAs' client side."""
    ca = LabCA(tmp_path / "tls")
    files = ca.host_files(name, "127.0.0.1")
    return server_context(files.cert, files.key), OutboundTls(ca.ensure())


async def relay_to_peer(port: int, mx: str, tls: OutboundTls, level: str) -> tuple[list, list]:
    bus = EventBus()
    sub = bus.subscribe()

    async def addresses(name: str) -> list[str]:
        return ["127.0.0.1"]

    walk = await relay_hop([mx], addresses, port=port, helo="smtp1.syr.edu", source_ip=None,
                           sender=FUDGE, recipients=["bob@luxsci.net"], message=MESSAGE, bus=bus, clock=Clock(),
                           host="smtp1.syr.edu", queue_id="Q1", timeout=5.0, tls=tls, level=level)  # type: ignore[arg-type]
    events = sub.drain()
    return walk.tries, [e.text for e in events if isinstance(e, Notice)] + \
        [e.text for e in events if isinstance(e, SessionLine) and e.direction == "note"]


@pytest.mark.parametrize("level", ["may", "encrypt", "verify"])
async def test_a_certificate_naming_the_mx_is_verified(tmp_path, level):
    server, tls = lab_ca_peer(tmp_path, "mx1.luxsci.net")
    async with aiosmtpd_peer(Recorder(), tls_context=server, require_starttls=True) as port:
        [tried], said = await relay_to_peer(port, "mx1.luxsci.net", tls, level)
    assert tried.result == "delivered" and tried.tls.startswith("Verified TLS, TLSv1.")
    assert any(t.startswith(f"Verified TLS connection established to mx1.luxsci.net[127.0.0.1]:{port}: ")
               for t in said)


async def test_a_lab_certificate_for_another_name_is_trusted_under_may_and_refused_under_verify(tmp_path):
    server, tls = lab_ca_peer(tmp_path, "mx.gmail.com")
    async with aiosmtpd_peer(Recorder(), tls_context=server, require_starttls=True) as port:
        [may], _ = await relay_to_peer(port, "mx1.luxsci.net", tls, "may")
        [verify], said = await relay_to_peer(port, "mx1.luxsci.net", tls, "verify")
    assert may.result == "delivered" and may.tls.startswith("Trusted TLS, ")
    assert verify.result == "deferred" and "Server certificate not verified" in verify.reason
    assert not any("connection established" in t for t in said)


async def test_a_self_signed_certificate_is_untrusted_but_encrypted_under_encrypt(tmp_path):
    server, _ = self_signed(tmp_path)
    tls = OutboundTls(LabCA(tmp_path / "tls").ensure())
    async with aiosmtpd_peer(Recorder(), tls_context=server, require_starttls=True) as port:
        [tried], said = await relay_to_peer(port, "localhost", tls, "encrypt")
    assert tried.result == "delivered" and tried.tls.startswith("Untrusted TLS, ")
    assert any(t.startswith("Untrusted TLS connection established to localhost[127.0.0.1]") for t in said)


async def test_no_starttls_offered_may_sends_in_plaintext_encrypt_waits(tmp_path):
    """What a STARTTLS-stripping man in the middle achieves: `may` falls back to plaintext,
    `encrypt` (and `verify`) defer with Postfix's words, the mail kept for a retry."""
    tls = OutboundTls(LabCA(tmp_path / "tls").ensure())
    async with aiosmtpd_peer(Recorder()) as port:                 # no TLS at all
        [may], said = await relay_to_peer(port, "mx1.luxsci.net", tls, "may")
        [encrypt], _ = await relay_to_peer(port, "mx1.luxsci.net", tls, "encrypt")
    assert may.result == "delivered" and may.tls == ""
    assert any("STARTTLS not offered: going on in plaintext" in t for t in said)
    assert encrypt.result == "deferred" and "TLS is required, but was not offered by host" in encrypt.reason
