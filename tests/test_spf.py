"""SPF at the lab's receiving MTAs (RFC 7208), every look-up through the lab DNS: the course's
telnet spoof fails SPF at smtp1.syr.edu, santa's own mail relayed by mail.northpole.org passes."""

from __future__ import annotations

import asyncio
import smtplib
import ssl

import dns.resolver
import pytest
import spf as pyspf

from maillab.auth import spf as lab_spf
from maillab.base.events import DnsQuery, Notice

from conftest import async_wait_for, maildir_messages
from test_tui_support import course_session


def _spf_fields(message) -> tuple[str, str]:
    return message["Received-SPF"] or "", " ".join((message["Authentication-Results"] or "").split())


@pytest.fixture
def no_real_dns(monkeypatch):
    """Any look-up through dnspython's own resolver (the machine's resolv.conf) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a query left for the real DNS: {args[1:3]}")
    monkeypatch.setattr(dns.resolver.Resolver, "resolve", refuse)


async def test_the_course_spoof_from_127_0_0_1_fails_spf_and_is_still_delivered_with_the_result(lab, no_real_dns):
    dns_seen = lab.bus.subscribe(kinds=(DnsQuery,))
    log = lab.ctx.bus.subscribe(kinds=(Notice,))
    await asyncio.to_thread(course_session, lab.ports.smtp)
    inbox = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"), 20)
    received_spf, results = _spf_fields(inbox[0])
    assert received_spf.startswith("Fail (") and "client-ip=127.0.0.1" in received_spf
    assert 'envelope-from="santa@northpole.org"' in received_spf and "mechanism=-all" in received_spf
    assert results == "smtp1.syr.edu; spf=fail (-all matched) smtp.mailfrom=northpole.org; dkim=none (no signature)"
    # pyspf's look-ups went to the lab DNS, from smtp1.syr.edu's address: the DNS panel shows them
    queries = [(e.name, e.rdtype) for e in dns_seen.drain() if e.client.startswith("127.0.0.1:")]
    assert ("northpole.org", "TXT") in queries and ("northpole.org", "MX") in queries
    assert ("mail.northpole.org", "A") in queries
    said = [e.text for e in log.drain()]
    assert any("check sender_auth: tag at mail: spf=fail mailfrom=northpole.org client-ip=127.0.0.1 mechanism=-all" in t
               for t in said)


async def test_santas_mail_relayed_by_mail_northpole_org_passes_spf_at_syr_edu(lab, no_real_dns):
    def submit() -> None:
        with smtplib.SMTP("127.0.0.3", lab.ports.submission, timeout=10) as smtp:
            smtp.starttls(context=ssl._create_unverified_context())
            smtp.login("santa@northpole.org", "maillab")
            smtp.sendmail("santa@northpole.org", ["mafudge@syr.edu"],
                          "From: <santa@northpole.org>\r\nTo: <mafudge@syr.edu>\r\nSubject: list\r\n\r\nHi.\r\n")
    await asyncio.to_thread(submit)
    inbox = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"), 20)
    received_spf, results = _spf_fields(inbox[0])
    assert received_spf.startswith("Pass (") and "client-ip=127.0.0.3" in received_spf
    assert results.startswith("smtp1.syr.edu; spf=pass (mx matched) smtp.mailfrom=northpole.org; dkim=pass")
    # the submission host checked nothing: its sender had logged in
    assert len(inbox[0].get_all("Received-SPF")) == 1


async def test_a_null_sender_is_checked_by_its_helo_name(lab, no_real_dns):
    bounce = await lab_spf.check(lab.ctx.resolver, "127.0.0.1", ip="127.0.0.3", sender="",
                                 helo="northpole.org", receiver="smtp1.syr.edu")
    assert (bounce.result, bounce.identity, bounce.domain) == ("pass", "helo", "northpole.org")
    unpublished = await lab_spf.check(lab.ctx.resolver, "127.0.0.1", ip="127.0.0.4", sender="",
                                      helo="mx.gmail.com", receiver="smtp1.syr.edu")
    assert (unpublished.result, unpublished.identity) == ("none", "helo")     # no SPF record at that name
    spoof = await lab_spf.check(lab.ctx.resolver, "127.0.0.1", ip="127.0.0.66", sender="boss@luxsci.net",
                                helo="cheap-pills.biz", receiver="smtp1.syr.edu")
    assert spoof.result == "fail" and spoof.mechanism == "-all"
    assert [(l.name, l.rdtype) for l in spoof.lookups] == [("luxsci.net", "TXT")]


def test_without_a_lab_resolver_a_lookup_is_a_temperror_never_the_real_dns(no_real_dns):
    with pytest.raises(pyspf.TempError, match="never asks the real DNS"):
        pyspf.DNSLookup("northpole.org", "TXT", True, 1)
