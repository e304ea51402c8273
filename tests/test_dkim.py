"""DKIM (RFC 6376, RFC 8463) in the lab: santa's mail is signed at mail.northpole.org with both keys,
their records served by the lab DNS, and verified at smtp1.syr.edu; a change on the way breaks it."""

from __future__ import annotations

import asyncio
import smtplib
import ssl

import dns.resolver
import pytest

from maillab.auth import dkim as lab_dkim

from conftest import async_wait_for, maildir_messages


def _results(message) -> str:
    return " ".join((message["Authentication-Results"] or "").split())


@pytest.fixture
def no_real_dns(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a query left for the real DNS: {args[1:3]}")
    monkeypatch.setattr(dns.resolver.Resolver, "resolve", refuse)


async def test_submitted_mail_is_signed_with_rsa_and_ed25519_and_verifies_at_the_receiver(lab, no_real_dns):
    def submit() -> None:
        with smtplib.SMTP("127.0.0.3", lab.ports.submission, timeout=10) as smtp:
            smtp.starttls(context=ssl._create_unverified_context())
            smtp.login("santa@northpole.org", "maillab")
            smtp.sendmail("santa@northpole.org", ["mafudge@syr.edu"],
                          "From: Santa <santa@northpole.org>\r\nTo: <mafudge@syr.edu>\r\nSubject: list\r\n\r\nHi.\r\n")
    await asyncio.to_thread(submit)
    inbox = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"), 20)
    signatures = [" ".join(s.split()) for s in inbox[0].get_all("DKIM-Signature")]
    assert len(signatures) == 2
    assert all("d=northpole.org;" in s and "c=relaxed/relaxed;" in s for s in signatures)
    assert "a=rsa-sha256;" in signatures[0] and "s=lab;" in signatures[0]
    assert "a=ed25519-sha256;" in signatures[1] and "s=lab-ed25519;" in signatures[1]
    assert all("h=from:to:subject;" in s.replace(" ", "") for s in signatures)   # what a reader sees, signed
    assert ("dkim=pass header.d=northpole.org header.s=lab header.a=rsa-sha256; "
            "dkim=pass header.d=northpole.org header.s=lab-ed25519 header.a=ed25519-sha256") in _results(inbox[0])
    # the public keys are what the lab DNS serves, from the keys in the state folder (0600)
    record = await lab.ctx.resolver.records("lab-ed25519._domainkey.northpole.org", "TXT")
    assert b"".join(record[0].strings).startswith(b"v=DKIM1; k=ed25519; p=")
    key_file = lab.state.dkim_dir / "northpole.org" / "lab.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def _relay(port: int, message: bytes) -> None:
    """Hand `message` to smtp1.syr.edu as mail.northpole.org would (from its address: SPF passes)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.3", 0)) as smtp:
        smtp.ehlo("mail.northpole.org")
        smtp.sendmail("santa@northpole.org", ["mafudge@syr.edu"], message)


async def test_a_relay_that_changes_a_signed_header_or_the_body_breaks_the_signature(lab, no_real_dns):
    original = b"From: <santa@northpole.org>\r\nTo: <mafudge@syr.edu>\r\nSubject: list\r\n\r\nHi.\r\n"
    fields = await lab_dkim.sign(lab.ctx.dkim_keys["northpole.org"], original)
    signed = "\r\n".join(fields).encode() + b"\r\n" + original
    await asyncio.to_thread(_relay, lab.ports.smtp, signed)
    await asyncio.to_thread(_relay, lab.ports.smtp, signed.replace(b"Subject: list", b"Subject: [EXT] list"))
    await asyncio.to_thread(_relay, lab.ports.smtp, signed.replace(b"Hi.", b"Hi, click here."))
    inbox = await async_wait_for(lambda: len(maildir_messages(lab.state.root, "mafudge@syr.edu")) == 3
                                 and maildir_messages(lab.state.root, "mafudge@syr.edu"), 20)
    by_subject = {(m["Subject"], "click" in m.get_payload()): _results(m) for m in inbox}
    untouched, subject, body = (by_subject[("list", False)], by_subject[("[EXT] list", False)],
                                by_subject[("list", True)])
    assert "spf=pass" in untouched and untouched.count("dkim=pass") == 2
    assert subject.count("dkim=fail") == 2 and "spf=pass" in subject
    assert body.count("dkim=fail (body hash mismatch") == 2


async def test_a_signature_whose_key_is_not_published_is_a_permerror(lab, no_real_dns):
    original = b"From: <x@northpole.org>\r\nSubject: s\r\n\r\nHi.\r\n"
    fields = await lab_dkim.sign(lab.ctx.dkim_keys["northpole.org"], original)
    forged = "\r\n".join(fields).encode().replace(b"d=northpole.org", b"d=nowhere.lab") + b"\r\n" + original
    results = await lab_dkim.verify(lab.ctx.resolver, "127.0.0.1", forged)
    assert [r.result for r in results] == ["permerror", "permerror"]
    assert all("nowhere.lab" in r.reason for r in results)


async def test_a_message_without_from_is_delivered_unsigned_and_the_maillog_says_why(lab, no_real_dns):
    from maillab.base.events import Notice
    log = lab.ctx.bus.subscribe(kinds=(Notice,))

    def submit() -> None:
        with smtplib.SMTP("127.0.0.3", lab.ports.submission, timeout=10) as smtp:
            smtp.starttls(context=ssl._create_unverified_context())
            smtp.login("santa@northpole.org", "maillab")
            smtp.sendmail("santa@northpole.org", ["mafudge@syr.edu"], "Subject: no author\r\n\r\nHi.\r\n")
    await asyncio.to_thread(submit)
    inbox = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"), 20)
    assert inbox[0]["DKIM-Signature"] is None and "dkim=none" in _results(inbox[0])
    assert any("check dkim_sign: tag at data: not signed: no From header field" in e.text for e in log.drain())
