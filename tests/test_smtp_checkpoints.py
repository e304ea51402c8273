"""The receive path's checkpoints (smtp/checkpoints.py): the order of checks and how verdicts
combine, then a check registered on a running lab and its verdict at each checkpoint over a
real SMTP session."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from maillab.base.events import CheckVerdict, Notice
from maillab.smtp.checkpoints import (ACCEPT, STAGES, Check, Checkpoints, Facts, Verdict, quarantine, reject,
                                      tag)

from conftest import async_wait_for, maildir_messages
from test_smtp_server import Typist


# ---- the list, without a lab ----------------------------------------------------------------

async def test_the_first_reject_decides_and_later_checks_are_not_asked():
    asked: list[str] = []

    def check(name: str, verdict: Verdict) -> Check:
        def run(f: Facts) -> Verdict:
            asked.append(name)
            return verdict
        return Check(name, frozenset({"rcpt"}), run)

    async def slow_tag(f: Facts) -> Verdict:
        asked.append("async")
        return tag("X-Two: 2", reason="two")

    points = Checkpoints([check("one", tag("X-One: 1", reason="one")), Check("async", frozenset({"rcpt"}), slow_tag),
                          check("no", reject("554 5.7.1 no")), check("never", ACCEPT)])
    decision = await points.ask(Facts("rcpt", "127.0.0.9"))
    assert decision.verdict.reply == "554 5.7.1 no" and asked == ["one", "async", "no"]
    assert [name for name, _ in decision.said] == ["one", "async", "no"]
    points.remove("no")
    decision = await points.ask(Facts("rcpt", "127.0.0.9"))
    assert decision.verdict == tag("X-One: 1", "X-Two: 2", reason="one; two")
    assert (await points.ask(Facts("mail", "127.0.0.9"))).verdict == ACCEPT      # none runs at mail


def test_registering_in_order_and_bad_checks():
    points = Checkpoints([Check("a", frozenset({"mail"}), lambda f: ACCEPT), Check("c", frozenset({"mail"}),
                                                                                  lambda f: ACCEPT)])
    points.register(Check("b", frozenset({"mail"}), lambda f: ACCEPT), before="c")
    assert points.names == ["a", "b", "c"]
    with pytest.raises(ValueError):
        points.register(Check("a", frozenset({"mail"}), lambda f: ACCEPT))
    with pytest.raises(ValueError):
        Check("x", frozenset({"banner"}), lambda f: ACCEPT)
    with pytest.raises(ValueError):
        Verdict("reject", "250 fine")


def test_todays_policy_is_the_first_checks(lab):
    assert lab.mta("smtp1.syr.edu").checkpoints.names == ["address", "chaos", "sender_login_match", "greylist",
                                                          "relay", "in_flow", "dkim_sign", "sender_auth"]


# ---- over a real session ---------------------------------------------------------------------

class Probe:
    """A check at every stage: records the facts it is shown, answers `verdicts[stage]` (accept otherwise)."""

    def __init__(self, **verdicts: Verdict) -> None:
        self.verdicts = verdicts
        self.seen: dict[str, Facts] = {}

    def __call__(self, f: Facts) -> Verdict:
        self.seen[f.stage] = f
        return self.verdicts.get(f.stage, ACCEPT)


def register(lab, probe: Probe, before: str | None = None) -> None:
    lab.mta("smtp1.syr.edu").checkpoints.register(Check("probe", frozenset(STAGES), probe), before=before)


def send(port: int) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("northpole.org")
        s.mail("santa@northpole.org")
        s.rcpt("mafudge@syr.edu")
        return s.data(b"Subject: probed\r\n\r\nhi\r\n")


async def test_a_check_sees_what_each_checkpoint_knows(lab):
    probe = Probe()
    register(lab, probe)
    code, _ = await asyncio.to_thread(send, lab.ports.smtp)
    assert code == 250
    seen = probe.seen
    assert list(seen) == ["connect", "helo", "mail", "rcpt", "data"]
    assert (seen["connect"].client_ip, seen["connect"].client_name) == ("127.0.0.1", "smtp1.syr.edu")
    assert seen["helo"].helo == "northpole.org"
    assert seen["mail"].sender == "santa@northpole.org" and seen["mail"].recipients == ()
    assert seen["rcpt"].recipient == "mafudge@syr.edu"
    assert seen["data"].recipients == ("mafudge@syr.edu",) and seen["data"].head.startswith(b"Subject: probed")


@pytest.mark.parametrize("stage, code", [("connect", 554), ("helo", 550), ("mail", 553), ("rcpt", 550),
                                         ("data", 554)])
async def test_a_reject_at_each_checkpoint_is_the_reply_a_maillog_line_and_an_event(lab, stage, code):
    sub = lab.bus.subscribe(kinds=(Notice,))
    verdicts = lab.bus.subscribe(kinds=(CheckVerdict,))
    register(lab, Probe(**{stage: reject(f"{code} 5.7.1 probe says no", "the probe's reason")}), before="address")

    def session() -> int:
        t = Typist("127.0.0.1", lab.ports.smtp)
        replies = [t.banner]
        for line in ("EHLO northpole.org", "MAIL FROM:<santa@northpole.org>", "RCPT TO:<mafudge@syr.edu>", "DATA"):
            if replies[-1] and replies[-1][-1][:1] in "45" or not replies[-1]:
                break
            replies.append(t.say(line, b"\r\n"))
        if replies[-1] and replies[-1][-1].startswith("354"):
            replies.append(t.say(b"Subject: x\r\n\r\nhi\r\n.", b"\r\n"))
        t.close()
        return int(replies[-1][-1][:3])

    assert await asyncio.to_thread(session) == code
    text = await async_wait_for(lambda: [e.text for e in sub.drain() if "check probe" in e.text])
    assert text[0].startswith(f"check probe: reject at {stage}: the probe's reason; client=smtp1.syr.edu[127.0.0.1]")
    [said] = [e for e in verdicts.drain() if e.check == "probe"]         # what a Blocked view reads
    assert (said.host, said.stage, said.action, said.reason, said.reply, said.client) == (
        "smtp1.syr.edu", stage, "reject", "the probe's reason", f"{code} 5.7.1 probe says no",
        "smtp1.syr.edu[127.0.0.1]")
    assert said.session.startswith("smtp1.syr.edu/smtp/")
    await lab.wait_idle()
    assert maildir_messages(lab.state.root, "mafudge@syr.edu") == []


async def test_tags_become_headers_of_the_message(lab):
    register(lab, Probe(helo=tag("X-Helo-Check: looked at", reason="helo seen"),
                        data=tag("X-Spam-Flag: NO", "X-Spam-Score: 0.1", reason="scored")))
    assert (await asyncio.to_thread(send, lab.ports.smtp))[0] == 250
    msg = (await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu")))[0]
    assert (msg["X-Helo-Check"], msg["X-Spam-Flag"], msg["X-Spam-Score"]) == ("looked at", "NO", "0.1")


async def test_quarantine_accepts_and_holds_until_released(lab):
    register(lab, Probe(data=quarantine("looks odd")))
    code, text = await asyncio.to_thread(send, lab.ports.smtp)
    assert code == 250
    qid = text.decode().rsplit(" ", 1)[1]
    queue = lab.mta("smtp1.syr.edu").queue
    entry = queue.entries[qid]
    assert entry.held and entry.extra["quarantine"] == "looks odd"
    await lab.wait_idle()
    assert maildir_messages(lab.state.root, "mafudge@syr.edu") == []
    await queue.release(qid)
    assert await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"))
