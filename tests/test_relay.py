"""Relaying between hosts of the lab: submission with AUTH, MX routing, Received hops, bounces."""

from __future__ import annotations

import asyncio
import smtplib
import ssl

import pytest

from maillab.base.events import Bounced, Delivered, DnsQuery

from conftest import async_wait_for, maildir_messages


def submit(lab, address: str, login: str, password: str, sender: str, rcpts: list[str],
           body: bytes) -> dict:
    """Submission as a mail client does it: STARTTLS (verified against the lab CA), then AUTH."""
    with smtplib.SMTP(address, lab.ports.submission, timeout=10) as s:
        s.starttls(context=ssl.create_default_context(cafile=lab.state.tls_dir / "ca.pem"))
        s.login(login, password)
        return s.sendmail(sender, rcpts, body)


async def test_submission_with_auth_relays_over_two_hops_with_two_received_headers(lab):
    sub = lab.bus.subscribe()
    body = b"From: santa@northpole.org\r\nTo: mafudge@syr.edu\r\nSubject: naughty list\r\n\r\nfyi.\r\n"
    refused = await asyncio.to_thread(submit, lab, "127.0.0.3", "santa@northpole.org",
                                      "maillab", "santa@northpole.org", ["mafudge@syr.edu"], body)
    assert refused == {}
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"))
    assert len(msgs) == 1
    received = msgs[0].get_all("Received")
    assert len(received) == 2
    # newest first: smtp1.syr.edu took it from mail.northpole.org, which took it from the MUA
    assert received[0].startswith("from mail.northpole.org (mail.northpole.org [127.0.0.3])")
    assert "by smtp1.syr.edu (maillab) with ESMTPS id" in received[0]     # the hop went over STARTTLS
    assert "by mail.northpole.org (maillab) with ESMTPSA id" in received[1]
    events = sub.drain()
    # the relay looked up syr.edu's MX in the lab DNS, from northpole's own address
    assert any(isinstance(e, DnsQuery) and e.name == "syr.edu" and e.rdtype == "MX"
               and e.client.startswith("127.0.0.3:") for e in events)
    hop = [e for e in events if isinstance(e, Delivered) and e.host == "mail.northpole.org"]
    assert hop and hop[0].relay == f"smtp1.syr.edu[127.0.0.1]:{lab.ports.smtp}"


async def test_bare_local_part_logs_in_on_the_domains_own_host(lab):
    refused = await asyncio.to_thread(submit, lab, "127.0.0.1", "tajorgen", "maillab",
                                      "tajorgen@syr.edu", ["bob@luxsci.net"], b"Subject: hi bob\r\n\r\nhi\r\n")
    assert refused == {}
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "bob@luxsci.net"))
    assert msgs[0]["Subject"] == "hi bob"


async def test_relay_without_auth_is_denied_on_every_port(lab):
    def try_relay(address: str, port: int):
        with smtplib.SMTP(address, port, timeout=10) as s:
            s.ehlo("spammer.example")
            s.mail("promo@cheap-pills.biz")
            return s.rcpt("victim@gmail.com")

    for address in ("127.0.0.1", "127.0.0.2", "127.0.0.66"):
        code, text = await asyncio.to_thread(try_relay, address, lab.ports.smtp)
        assert code == 554 and text.startswith(b"5.7.1 <victim@gmail.com>: Relay access denied")

    def submission_without_auth():
        with smtplib.SMTP("127.0.0.1", lab.ports.submission, timeout=10) as s:
            s.ehlo("mua.example")
            return s.mail("mafudge@syr.edu")

    code, text = await asyncio.to_thread(submission_without_auth)
    assert code == 530 and text.startswith(b"5.7.0")


async def test_wrong_password_and_foreign_user_are_refused(lab):
    with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
        await asyncio.to_thread(submit, lab, "127.0.0.1", "mafudge@syr.edu", "nope",
                                "mafudge@syr.edu", ["bob@luxsci.net"], b"x")
    assert wrong.value.smtp_code == 535
    # santa's mailbox lives on mail.northpole.org, not on smtp1.syr.edu
    with pytest.raises(smtplib.SMTPAuthenticationError):
        await asyncio.to_thread(submit, lab, "127.0.0.1", "santa@northpole.org", "maillab",
                                "santa@northpole.org", ["bob@luxsci.net"], b"x")


async def test_unknown_mailbox_is_accepted_then_bounced_with_a_dsn(lab):
    sub = lab.bus.subscribe()
    body = b"From: santa@northpole.org\r\nSubject: Letter to nobody\r\nMessage-ID: <l1@northpole.org>\r\n\r\nho\r\n"
    refused = await asyncio.to_thread(submit, lab, "127.0.0.3", "santa", "maillab",
                                      "santa@northpole.org", ["nobody@syr.edu"], body)
    assert refused == {}    # as the course teaches: the MTA accepts, the MDA bounces
    bounces = await async_wait_for(lambda: maildir_messages(lab.state.root, "santa@northpole.org"))
    assert len(bounces) == 1
    dsn = bounces[0]
    assert dsn["Return-Path"] == "<>"
    assert dsn["From"].startswith("MAILER-DAEMON@smtp1.syr.edu")
    assert dsn["Subject"] == "Undeliverable: Letter to nobody"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = dsn.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                    "text/rfc822-headers"]
    status = parts[1].as_string()
    assert "Final-Recipient: rfc822; nobody@syr.edu" in status
    assert "Action: failed" in status and "Status: 5.1.1" in status
    assert "Message-ID: <l1@northpole.org>" in parts[2].as_string()
    bounced = [e for e in sub.drain() if isinstance(e, Bounced)]
    assert bounced[0].recipient == "nobody@syr.edu" and bounced[0].notice_id


async def test_a_bounce_is_never_bounced(lab):
    def send_null_sender():
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as s:
            return s.sendmail("<>", ["ghost@syr.edu"], b"Subject: a bounce for a ghost\r\n\r\nx\r\n")

    sub = lab.bus.subscribe()
    assert await asyncio.to_thread(send_null_sender) == {}
    bounced = await async_wait_for(lambda: [e for e in sub.drain() if isinstance(e, Bounced)])
    assert bounced[0].recipient == "ghost@syr.edu" and bounced[0].notice_id == ""
    await lab.wait_idle()
    assert lab.mta("smtp1.syr.edu").queue.entries == {}


async def test_aliases_reach_their_target(lab):
    def send():
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as s:
            return s.sendmail("santa@northpole.org", ["postmaster@syr.edu", "abuse@syr.edu"],
                              b"Subject: for the postmaster\r\n\r\nx\r\n")

    assert await asyncio.to_thread(send) == {}
    msgs = await async_wait_for(lambda: len(maildir_messages(lab.state.root, "mafudge@syr.edu")) == 2
                                and maildir_messages(lab.state.root, "mafudge@syr.edu"))
    assert sorted(m["Delivered-To"] for m in msgs) == ["mafudge@syr.edu", "mafudge@syr.edu"]


async def test_backup_mx_passes_mail_on_to_the_primary(lab):
    def send():
        with smtplib.SMTP("127.0.0.2", lab.ports.smtp, timeout=10) as s:
            return s.sendmail("santa@northpole.org", ["relstad@syr.edu"], b"Subject: via backup\r\n\r\nx\r\n")

    assert await asyncio.to_thread(send) == {}
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "relstad@syr.edu"))
    received = msgs[0].get_all("Received")
    assert "by smtp1.syr.edu" in received[0] and "from smtp2.syr.edu (smtp2.syr.edu [127.0.0.2])" in received[0]
    assert "by smtp2.syr.edu" in received[1]


async def test_relay_to_a_domain_outside_the_lab_bounces(lab):
    sub = lab.bus.subscribe()
    refused = await asyncio.to_thread(submit, lab, "127.0.0.1", "mafudge", "maillab",
                                      "mafudge@syr.edu", ["someone@example.com"], b"Subject: out\r\n\r\nx\r\n")
    assert refused == {}
    bounced = await async_wait_for(lambda: [e for e in sub.drain() if isinstance(e, Bounced)])
    assert bounced[0].dsn == "5.1.2" and "example.com" in bounced[0].detail
    dsn = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"))
    assert dsn[0]["Subject"] == "Undeliverable: out"
