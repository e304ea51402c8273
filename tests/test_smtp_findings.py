"""The SMTP findings of issue 15, each over a real socket against a running lab (smtplib or a raw
socket): every one of these failed on the aiosmtpd-based server."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import smtplib
import socket

import pytest

from maillab.base.events import Notice
from maillab.lab import directory
from maillab.lab.maillog import format_event

from conftest import async_wait_for, maildir_messages
from test_smtp_server import Typist

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

NORTHPOLE = "127.0.0.3"          # northpole.org's host: its submission port takes santa's login


def talk(port: int, script: bytes, address: str = "127.0.0.1") -> bytes:
    """Send `script`, shut the write side (a FIN, as `nc -N` does), read everything until the server closes."""
    with socket.create_connection((address, port), timeout=10) as sock:
        sock.sendall(script)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def notices(sub) -> list[str]:
    return [format_event(e) or "" for e in sub.drain() if isinstance(e, Notice)]


def set_world(lab, **settings) -> None:
    lab.ctx.world = dataclasses.replace(lab.ctx.world, **settings)


# ---- half-close: everything read before the EOF is answered -----------------------------

async def test_commands_then_a_fin_get_every_reply(lab):
    out = await asyncio.to_thread(talk, lab.ports.smtp, b"EHLO x\r\nQUIT\r\n")
    lines = out.decode().splitlines()
    assert lines[0].startswith("220 ") and lines[1].startswith("250-smtp1.syr.edu Hello x")
    assert lines[-1] == "221 2.0.0 Bye"


async def test_a_pipelined_transaction_sent_with_a_fin_is_answered_and_delivered(lab):
    script = (b"EHLO pipe.example\r\nMAIL FROM:<santa@northpole.org>\r\nRCPT TO:<mafudge@syr.edu>\r\nDATA\r\n"
              b"Subject: fin\r\n\r\nsent with a FIN\r\n.\r\nQUIT\r\n")
    out = (await asyncio.to_thread(talk, lab.ports.smtp, script)).decode().splitlines()
    finals = [x[:3] for x in out if x[3:4] == " "]
    assert finals == ["220", "250", "250", "250", "354", "250", "221"]
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"))
    assert msgs[0]["Subject"] == "fin"


# ---- refusals and failed AUTH in the maillog (Postfix's words) ----------------------------

async def test_a_relay_refusal_is_a_noqueue_reject_line(lab):
    sub = lab.bus.subscribe(kinds=(Notice,))

    def relay():
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as s:
            s.ehlo("spammer.example")
            s.mail("evil@spammer.example")
            return s.rcpt("victim@gmail.com")

    assert (await asyncio.to_thread(relay))[0] == 554
    lines = await async_wait_for(lambda: [x for x in notices(sub) if "NOQUEUE" in x])
    assert "maillab/smtpd[" in lines[0]
    assert lines[0].endswith("NOQUEUE: reject: RCPT from smtp1.syr.edu[127.0.0.1]: 554 5.7.1 <victim@gmail.com>: "
                             "Relay access denied; from=<evil@spammer.example> to=<victim@gmail.com> "
                             "proto=ESMTP helo=<spammer.example>")


async def test_530_552_and_a_failed_auth_are_logged(lab):
    lab.ctx.auth_guard.base_delay = 0.01
    sub = lab.bus.subscribe(kinds=(Notice,))

    def refused():
        with smtplib.SMTP(NORTHPOLE, lab.ports.submission, timeout=10) as s:
            s.ehlo("laptop.example")
            no_auth = s.mail("santa@northpole.org")
            s.rset()
            try:
                s.login("santa@northpole.org", "wrong")
            except smtplib.SMTPAuthenticationError as e:
                failed = e.smtp_code
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as s:
            s.ehlo("big.example")
            too_big = s.mail("santa@northpole.org", ["SIZE=999999999"])
        return no_auth[0], failed, too_big[0]

    assert await asyncio.to_thread(refused) == (530, 535, 552)
    seen: list[str] = []

    def logged() -> bool:
        seen.extend(notices(sub))
        return sum("NOQUEUE" in x for x in seen) >= 2 and any("SASL PLAIN authentication failed" in x for x in seen)
    await async_wait_for(logged, what=lambda: f"the refusals in {seen}")
    text = "\n".join(seen)
    assert "NOQUEUE: reject: MAIL from " in text and ": 530 5.7.0 Authentication required; " in text
    assert ": 552 5.3.4 Message size exceeds fixed limit; from=<santa@northpole.org> proto=ESMTP helo=<big.example>" \
        in text
    assert "warning: smtp1.syr.edu[127.0.0.1]: SASL PLAIN authentication failed" in text   # (the source address)


# ---- AUTH: equal cost for unknown users, clean errors for bad UTF-8 -----------------------

async def test_a_failed_auth_costs_a_password_hash_for_an_unknown_user_too(lab, monkeypatch):
    lab.ctx.auth_guard.base_delay = 0.01
    hashed: list[str] = []
    real = directory.check_password
    monkeypatch.setattr(directory, "check_password", lambda pw, stored: hashed.append(pw) or real(pw, stored))

    def login(user: str) -> int:
        with smtplib.SMTP(NORTHPOLE, lab.ports.submission, timeout=10) as s:
            s.ehlo("x")
            plain = base64.b64encode(f"\0{user}\0not-the-password".encode()).decode()
            return s.docmd("AUTH", f"PLAIN {plain}")[0]

    assert await asyncio.to_thread(login, "santa@northpole.org") == 535
    assert hashed == ["not-the-password"]
    assert await asyncio.to_thread(login, "nobody-here@northpole.org") == 535
    assert hashed == ["not-the-password"] * 2          # the unknown user was hashed as well


async def test_a_password_that_is_not_utf8_is_a_clean_501(lab):
    def bad():
        t = Typist(NORTHPOLE, lab.ports.submission)
        t.say("EHLO x")
        reply = t.say(b"AUTH PLAIN " + base64.b64encode(b"\x00santa@northpole.org\x00\xff\xfe"), b"\r\n")
        after = t.say("NOOP")
        t.close()
        return reply, after

    reply, after = await asyncio.to_thread(bad)
    assert reply[0].startswith("501 5.5.2") and "Error" not in reply[0][:3]
    assert after == ["250 2.0.0 OK"]


# ---- what a hand-typed message gets -------------------------------------------------------

async def test_a_hand_typed_message_gets_date_and_message_id(lab):
    def typed():
        t = Typist("127.0.0.1", lab.ports.smtp)
        t.say("helo northpole.org")
        t.say("mail from: santa@northpole.org")
        t.say("rcpt to: mafudge@syr.edu")
        t.say("data")
        t.send(b"Subject: no date\n\nhi\n")
        dot = t.say(".")
        t.close()
        return dot[0].rsplit(" ", 1)[1]

    qid = await asyncio.to_thread(typed)
    msg = (await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu")))[0]
    assert msg["Date"]
    assert msg["Message-ID"].endswith(f".{qid}@smtp1.syr.edu>")


async def test_a_message_with_its_own_date_and_id_keeps_them(lab):
    def send():
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as s:
            s.sendmail("santa@northpole.org", ["mafudge@syr.edu"],
                       b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <own@northpole.org>\r\n\r\nhi\r\n")

    await asyncio.to_thread(send)
    msg = (await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu")))[0]
    assert msg.get_all("Message-ID") == ["<own@northpole.org>"] and len(msg.get_all("Date")) == 1


async def test_the_login_of_an_authenticated_sender_is_in_received_and_the_maillog(lab):
    sub = lab.bus.subscribe(kinds=(Notice,))

    def submit():
        with smtplib.SMTP(NORTHPOLE, lab.ports.submission, timeout=10) as s:
            s.login("santa@northpole.org", "maillab")
            s.sendmail("santa@northpole.org", ["santa@northpole.org"], b"Subject: signed\r\n\r\nhi\r\n")

    await asyncio.to_thread(submit)
    msg = (await async_wait_for(lambda: maildir_messages(lab.state.root, "santa@northpole.org")))[0]
    assert "(Authenticated sender: santa@northpole.org)" in msg["Received"]
    assert "with ESMTPA id" in msg["Received"]
    lines = await async_wait_for(lambda: [x for x in notices(sub) if "sasl_username=" in x])
    assert "sasl_method=PLAIN, sasl_username=santa@northpole.org" in lines[0]


@pytest.mark.parametrize("match", [False, True])
async def test_sender_login_match_refuses_a_forged_sender_only_when_on(lab, match):
    set_world(lab, sender_login_match=match)

    def forge():
        with smtplib.SMTP(NORTHPOLE, lab.ports.submission, timeout=10) as s:
            s.login("santa@northpole.org", "maillab")
            forged = s.mail("president@whitehouse.gov")
            s.rset()
            own = s.mail("santa@northpole.org")
            return forged, own[0]

    (code, text), own = await asyncio.to_thread(forge)
    assert own == 250
    if match:
        assert (code, text) == (553, b"5.7.1 <president@whitehouse.gov>: Sender address rejected: "
                                     b"not owned by user santa@northpole.org")
    else:
        assert code == 250                          # the spoofing lesson still works by default


# ---- smuggling, addresses, NUL --------------------------------------------------------------

async def test_one_data_with_a_smuggled_end_stays_one_message(lab):
    script = (b"EHLO relay.example\r\nMAIL FROM:<santa@northpole.org>\r\nRCPT TO:<mafudge@syr.edu>\r\nDATA\r\n"
              b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<relstad@syr.edu>\r\nDATA\r\n"
              b"Subject: smuggled\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
    out = (await asyncio.to_thread(talk, lab.ports.smtp, script)).decode().splitlines()
    assert [x[:3] for x in out if x[3:4] == " "] == ["220", "250", "250", "250", "354", "250", "221"]
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"))
    assert len(msgs) == 1 and b"Subject: smuggled" in msgs[0].as_bytes()
    await lab.wait_idle()
    assert maildir_messages(lab.state.root, "relstad@syr.edu") == []


@pytest.mark.parametrize("setting", ["strict", "pedantic"])
async def test_the_line_ending_setting_comes_from_the_world(lab, setting):
    set_world(lab, smtp_line_endings=setting)

    def typed():
        t = Typist("127.0.0.1", lab.ports.smtp)
        return t.say("helo northpole.org")

    reply = await asyncio.to_thread(typed)
    if setting == "pedantic":
        assert reply[0].startswith("550 5.5.2 Error: bare <LF> received")
    else:
        assert reply[0].startswith("250 ")


async def test_addresses_postmaster_unterminated_and_utf8(lab):
    def probe():
        t = Typist("127.0.0.1", lab.ports.smtp)
        t.say("EHLO probe.example")
        out = {"mail": t.say("MAIL FROM:<santa@northpole.org>"), "postmaster": t.say("RCPT TO:<postmaster>")}
        for path in ("<x@", "<a@[", "<mafudge@syr.edu"):
            out[path] = t.say(f"RCPT TO:{path}")
        t.say("RSET")
        out["utf8"] = t.say("MAIL FROM:<jürgen@northpole.org>".encode())
        t.close()
        return out

    out = await asyncio.to_thread(probe)
    assert out["postmaster"] == ["250 2.1.5 Ok"]
    for path in ("<x@", "<a@[", "<mafudge@syr.edu"):
        assert out[path][0].startswith("501 5.1."), out[path]
        assert "Error" not in out[path][0] and "missing '>'" in out[path][0]
    assert out["utf8"][0].startswith("553 5.6.7")


async def test_a_nul_in_a_body_is_refused(lab):
    def send():
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as s:
            try:
                s.sendmail("santa@northpole.org", ["mafudge@syr.edu"], b"Subject: nul\r\n\r\na\x00b\r\n")
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error
        return 250, b""

    code, text = await asyncio.to_thread(send)
    assert code == 554 and text.startswith(b"5.6.0")
    await lab.wait_idle()
    assert maildir_messages(lab.state.root, "mafudge@syr.edu") == []
