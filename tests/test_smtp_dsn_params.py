"""DSN parameters given at MAIL and RCPT (RFC 3461) are honoured by the lab's notices: NOTIFY
(NEVER, SUCCESS, FAILURE, DELAY), RET (HDRS, FULL), ENVID and ORCPT; UTF-8 addresses in RFC 6533
form.  The rule and the report without a lab, then over real sessions (smtplib)."""

from __future__ import annotations

import asyncio
import email
import smtplib

import pytest

from maillab.mta.dsn import DsnRecipient, build_dsn, wants_notice

from conftest import async_wait_for, maildir_messages

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

SANTA = "santa@northpole.org"


@pytest.mark.parametrize("notify, action, wanted", [
    ((), "failed", True), ((), "delayed", True), ((), "delivered", False),
    (("NEVER",), "failed", False), (("NEVER",), "delayed", False),
    (("SUCCESS",), "delivered", True), (("SUCCESS",), "failed", False), (("SUCCESS",), "relayed", True),
    (("FAILURE", "DELAY"), "delayed", True), (("FAILURE",), "delayed", False),
])
def test_notify_decides_which_notices_a_recipient_gets(notify, action, wanted):
    assert wants_notice(notify, action) is wanted


def _report(**options) -> email.message.Message:
    original = b"Subject: hi\r\nFrom: santa@northpole.org\r\n\r\nthe body\r\n"
    raw = build_dsn(reporting_host="smtp1.syr.edu", original_sender=SANTA, original=original, queue_id="Q1",
                    arrival=0.0, now=60.0, **options)
    return email.message_from_bytes(raw)


def test_ret_envid_orcpt_and_utf8_addresses_in_the_report():
    full = _report(recipients=[DsnRecipient("bob@luxsci.net", "5.1.1", "smtp; 550 no", orcpt="rfc822;Bob@Luxsci.net")],
                   ret="FULL", envid="QQ314159")
    parts = full.get_payload()
    assert parts[2].get_content_type() == "message/rfc822"
    assert b"the body" in parts[2].as_bytes()
    status = parts[1].as_string()
    assert "Original-Envelope-Id: QQ314159" in status and "Original-Recipient: rfc822; Bob@Luxsci.net" in status
    hdrs = _report(recipients=[DsnRecipient("bob@luxsci.net", "5.1.1", "no")], ret="HDRS")
    assert hdrs.get_payload()[2].get_content_type() == "text/rfc822-headers"
    utf8 = _report(recipients=[DsnRecipient("jürgen@例え.jp", "5.1.1", "no")])
    assert utf8.get_payload()[1].get_content_type() == "message/global-delivery-status"     # RFC 6533 §6.2
    assert "Final-Recipient: utf-8; jürgen@例え.jp" in utf8.get_payload()[1].as_bytes().decode()


# ---- over real sessions --------------------------------------------------------------------

def send(port: int, rcpt: str, mail_options=(), rcpt_options=()) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("northpole.org")
        assert s.mail(SANTA, list(mail_options))[0] == 250
        assert s.rcpt(rcpt, list(rcpt_options))[0] == 250
        assert s.data(b"Subject: asked\r\nFrom: santa@northpole.org\r\n\r\nthe body\r\n")[0] == 250


def notices_to_santa(lab) -> list[email.message.Message]:
    return [m for m in maildir_messages(lab.state.root, SANTA) if m["From"].startswith("MAILER-DAEMON")]


async def test_without_notify_a_failure_is_reported_and_with_never_it_is_not(lab):
    await asyncio.to_thread(send, lab.ports.smtp, "nobody@syr.edu", rcpt_options=["NOTIFY=NEVER"])
    await lab.wait_idle()
    assert notices_to_santa(lab) == []
    await asyncio.to_thread(send, lab.ports.smtp, "nobody@syr.edu")
    found = await async_wait_for(lambda: notices_to_santa(lab))
    assert found[0]["Subject"].startswith("Undeliverable")


async def test_success_full_envid_and_orcpt_come_back_in_the_notices(lab):
    await asyncio.to_thread(send, lab.ports.smtp, "mafudge@syr.edu", ["RET=FULL", "ENVID=QQ314159"],
                            ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Mafudge@Syr.edu"])
    found = await async_wait_for(lambda: notices_to_santa(lab))
    report = found[0]
    assert report["Subject"].startswith("Delivered")
    status = report.get_payload()[1].as_string()
    assert "Action: delivered" in status and "Original-Envelope-Id: QQ314159" in status
    assert "Original-Recipient: rfc822; Mafudge@Syr.edu" in status
    assert report.get_payload()[2].get_content_type() == "message/rfc822"        # RET=FULL
    await asyncio.to_thread(send, lab.ports.smtp, "nobody@syr.edu", ["RET=HDRS"], ["NOTIFY=SUCCESS"])
    await lab.wait_idle()
    assert len(notices_to_santa(lab)) == 1                   # its failure was not asked for


def submit(port: int, rcpt: str, mail_options=(), rcpt_options=()) -> None:
    """Santa at his own MTA (mail.northpole.org, 127.0.0.3), logged in, as a mail client sends."""
    with smtplib.SMTP("127.0.0.3", port, timeout=10) as s:
        s.login(SANTA, "maillab")
        assert s.mail(SANTA, list(mail_options))[0] == 250
        assert s.rcpt(rcpt, list(rcpt_options))[0] == 250
        assert s.data(b"Subject: asked along\r\nFrom: santa@northpole.org\r\n\r\nthe body\r\n")[0] == 250


async def test_a_relayed_request_goes_along_and_the_last_host_reports(lab):
    """RFC 3461 §5.2.2: mail.northpole.org relays to mx1.luxsci.net, which offers DSN, so the
    NOTIFY, ORCPT, RET and ENVID go along and the host that delivers reports "delivered";
    no "relayed" notice comes from the first hop."""
    await asyncio.to_thread(submit, lab.ports.submission, "bob@luxsci.net", ["RET=HDRS", "ENVID=ALONG1"],
                            ["NOTIFY=SUCCESS", "ORCPT=rfc822;Bob@LuxSci.net"])
    found = await async_wait_for(lambda: notices_to_santa(lab))
    await lab.wait_idle()
    assert len(notices_to_santa(lab)) == 1, [m["Subject"] for m in notices_to_santa(lab)]
    report = found[0]
    status = report.get_payload()[1].as_string()
    assert "Action: delivered" in status and "Reporting-MTA: dns; mx" in status      # luxsci's MX, not northpole
    assert "Original-Envelope-Id: ALONG1" in status and "Original-Recipient: rfc822; Bob@LuxSci.net" in status
    assert report.get_payload()[2].get_content_type() == "text/rfc822-headers"        # RET=HDRS came along
