"""Real SMTP clients against a running lab (issue 15: "the interop tests pass with swaks, smtplib,
aiosmtplib, msmtp and Postfix's smtp-source"): aiosmtplib, msmtp and smtp-source here; swaks is
in test_swaks.py, smtplib throughout the SMTP tests.

Each client is driven as a user drives it and the test checks what that user would: the reply
codes the client reports, its exit status, the message in the recipient's Maildir with its
headers, and the maillog line.  smtp1.syr.edu (127.0.0.1) takes mail for syr.edu on the MX port
and its users' submissions (AUTH, password "maillab") on the submission port; mail to another
domain is relayed over SMTP to that domain's MX.  `require_tool` skips a test whose tool is
missing, except under CI=true (.ci/run installs msmtp and postfix, for smtp-source).

aiosmtplib (5.1) never pipelines: it waits for each reply even when PIPELINING is offered, and its
protocol object says that replies to commands written without waiting are lost (tried: the second
reply of a group never reaches it).  So aiosmtplib's tests keep one session in step across
transactions, and the pipelined transaction is msmtp's, which groups MAIL, RCPT and DATA as RFC
2920 allows (smtp-source does not pipeline; swaks --pipeline is in test_swaks.py).  A client that
logs in first says STARTTLS, verifying the lab CA (the lab takes logins only over TLS); on the MX
port they speak plaintext, as a sending MTA may.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from conftest import async_wait_for, maildir_messages
from netutil import require_tool

pytestmark = pytest.mark.interop

LOCAL = "127.0.0.1"              # smtp1.syr.edu: the MX of syr.edu and its submission host
PASSWORD = "maillab"
WAIT = 60.0                      # generous: the box is shared, and a relay hop is two SMTP sessions


def lab_ca(lab) -> Path:
    return lab.state.tls_dir / "ca.pem"


def inbox(lab, address: str):
    return maildir_messages(lab.state.root, address)


def raw_messages(lab, address: str) -> list[bytes]:
    local, domain = address.split("@")
    root = lab.state.root / "mail" / domain / local
    return [p.read_bytes() for sub in ("new", "cur") if (root / sub).exists() for p in sorted((root / sub).iterdir())]


def maillog(lab, needle: str) -> list[str]:
    return [line for line in lab.maillog_tail()[1] if needle in line]


async def delivered(lab, address: str, count: int = 1):
    """The `count` messages in `address`'s INBOX, once they are all there."""
    return await async_wait_for(lambda: (m := inbox(lab, address)) and len(m) >= count and m, timeout=WAIT,
                                what=lambda: f"{count} message(s) in {address}'s Maildir "
                                             f"(there are {len(inbox(lab, address))})")


async def logged(lab, pattern: str) -> re.Match:
    """The first maillog line that matches `pattern`, once it is written."""
    def find():
        return next((m for line in lab.maillog_tail()[1] if (m := re.search(pattern, line))), None)
    return await async_wait_for(find, timeout=WAIT, what=lambda: f"a maillog line matching {pattern!r}; the "
                                f"last lines:\n" + "\n".join(lab.maillog_tail()[1][-15:]))


def letter(sender: str, to: str, subject: str, body: str = "Hello from the interop tests.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    return msg


def queue_id(reply: str) -> str:
    """The queue ID in the reply to DATA ("2.0.0 Ok: queued as 5BJ2KQ8ZC3LM")."""
    m = re.fullmatch(r"2\.0\.0 Ok: queued as ([0-9A-Z]+)", reply.strip())
    assert m, f"the reply to DATA names no queue ID: {reply!r}"
    return m.group(1)


def run(argv: list[str], stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)


def output(done: subprocess.CompletedProcess[bytes]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout.decode(errors='replace')}\n" \
           f"stderr:\n{done.stderr.decode(errors='replace')}"


# ---- aiosmtplib --------------------------------------------------------------------------------

async def test_aiosmtplib_delivers_to_a_local_user_on_the_mx_port(lab):
    errors, reply = await aiosmtplib.send(
        letter("Santa Claus <santa@northpole.org>", "Michael Fudge <mafudge@syr.edu>", "aiosmtplib to the MX"),
        hostname=LOCAL, port=lab.ports.smtp, start_tls=False, local_hostname="laptop.example", timeout=30)
    assert errors == {}
    qid = queue_id(reply)
    msg = (await delivered(lab, "mafudge@syr.edu"))[0]
    assert msg["Subject"] == "aiosmtplib to the MX"
    assert msg["Return-Path"] == "<santa@northpole.org>"
    assert msg["Received"].startswith("from laptop.example (smtp1.syr.edu [127.0.0.1])")
    assert f"by smtp1.syr.edu (maillab) with ESMTP id {qid}" in msg["Received"]
    assert msg.get_payload() == "Hello from the interop tests.\n"
    line = await logged(lab, rf"{qid}: to=<mafudge@syr.edu>, relay=local, .* status=sent")
    assert " smtp1.syr.edu maillab/local[" in line.string


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_aiosmtplib_authenticates_on_submission_and_the_mail_is_relayed(lab, mechanism):
    tls = ssl.create_default_context(cafile=lab_ca(lab))
    async with aiosmtplib.SMTP(hostname=LOCAL, port=lab.ports.submission, start_tls=True, tls_context=tls,
                               local_hostname="laptop.example", timeout=30) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("auth")
        assert {"plain", "login"} <= set(smtp.server_auth_methods)
        login = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        response = await login("mafudge@syr.edu", PASSWORD)
        assert (response.code, response.message) == (235, "2.7.0 Authentication successful")
        errors, reply = await smtp.send_message(
            letter("Michael Fudge <mafudge@syr.edu>", "Bob <bob@luxsci.net>", f"AUTH {mechanism} via aiosmtplib"))
    assert errors == {}
    qid = queue_id(reply)
    msg = (await delivered(lab, "bob@luxsci.net"))[0]
    assert msg["Subject"] == f"AUTH {mechanism} via aiosmtplib"
    hop_to_luxsci, submitted = msg.get_all("Received")[:2]
    assert hop_to_luxsci.startswith("from smtp1.syr.edu (smtp1.syr.edu [127.0.0.1])")
    assert "by mx1.luxsci.net (maillab) with ESMTP" in hop_to_luxsci
    assert "(Authenticated sender: mafudge@syr.edu)" in submitted
    assert f"by smtp1.syr.edu (maillab) with ESMTPSA id {qid}" in submitted
    await logged(lab, rf"sasl_method={mechanism}, sasl_username=mafudge@syr.edu")
    await logged(lab, rf"{qid}: to=<bob@luxsci.net>, relay=mx1\.luxsci\.net\[127\.0\.0\.5\]:{lab.ports.smtp}, "
                      rf".* status=sent")


async def test_aiosmtplib_keeps_one_session_in_step_across_messages_and_a_refused_recipient(lab):
    """aiosmtplib does not pipeline (it waits for each reply, and its protocol drops the replies to
    commands written without waiting): what it does is several transactions on one connection.
    A refused recipient among accepted ones: sendmail reports it, the others get the message, and
    the next transaction on the same connection goes through."""
    async with aiosmtplib.SMTP(hostname=LOCAL, port=lab.ports.smtp, start_tls=False,
                               local_hostname="laptop.example", timeout=30) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("pipelining")          # offered; aiosmtplib 5 does not use it
        first = letter("santa@northpole.org", "mafudge@syr.edu, victim@gmail.com, tajorgen@syr.edu", "first")
        errors, reply = await smtp.send_message(first)
        assert {r: (e.code, e.message) for r, e in errors.items()} == {
            "victim@gmail.com": (554, "5.7.1 <victim@gmail.com>: Relay access denied")}
        first_id = queue_id(reply)
        errors, reply = await smtp.send_message(letter("santa@northpole.org", "relstad@syr.edu", "second"))
        assert errors == {}
        second_id = queue_id(reply)
    for user in ("mafudge@syr.edu", "tajorgen@syr.edu"):
        msg = (await delivered(lab, user))[0]
        assert msg["Subject"] == "first" and f"with ESMTP id {first_id}" in msg["Received"]
    msg = (await delivered(lab, "relstad@syr.edu"))[0]
    assert msg["Subject"] == "second" and f"with ESMTP id {second_id}" in msg["Received"]
    await logged(lab, r"NOQUEUE: reject: RCPT from smtp1\.syr\.edu\[127\.0\.0\.1\]: 554 5\.7\.1 <victim@gmail\.com>: "
                      r"Relay access denied; from=<santa@northpole\.org> to=<victim@gmail\.com> proto=ESMTP "
                      r"helo=<laptop\.example>")
    assert len(maillog(lab, "connect from smtp1.syr.edu[127.0.0.1]")) == 1      # one session for both


async def test_aiosmtplib_8bit_utf8_body_with_body_8bitmime_arrives_byte_for_byte(lab):
    text = "Grüße aus Köln, ½ € — ☃ 雪\r\n"
    raw = ("From: santa@northpole.org\r\nTo: mafudge@syr.edu\r\nSubject: eight bits\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text).encode()
    async with aiosmtplib.SMTP(hostname=LOCAL, port=lab.ports.smtp, start_tls=False, timeout=30) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("8bitmime")
        errors, reply = await smtp.sendmail("santa@northpole.org", ["mafudge@syr.edu"], raw,
                                            mail_options=["BODY=8BITMIME"])
    assert errors == {}
    queue_id(reply)
    msg = (await delivered(lab, "mafudge@syr.edu"))[0]
    assert msg["Subject"] == "eight bits"
    assert msg.get_payload(decode=True) == text.replace("\r\n", "\n").encode()   # the Maildir stores LF lines
    assert msg.get_content_charset() == "utf-8"


async def test_aiosmtplib_smtputf8_sender_is_delivered_and_refused_without_smtputf8(lab):
    sender = "nöel@northpole.org"
    async with aiosmtplib.SMTP(hostname=LOCAL, port=lab.ports.smtp, start_tls=False, timeout=30) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("smtputf8")
        # RFC 6531 §3.5: a UTF-8 address in a transaction that did not ask for SMTPUTF8
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await smtp.mail(sender, encoding="utf-8")
        assert refused.value.code == 553
        assert refused.value.message.startswith("5.6.7 ")
        await smtp.rset()
        # send_message sees the non-ASCII address and adds SMTPUTF8 itself
        errors, reply = await smtp.send_message(letter(f"Noël <{sender}>", "mafudge@syr.edu", "Joyeux Noël"))
    assert errors == {}
    qid = queue_id(reply)
    await delivered(lab, "mafudge@syr.edu")
    [raw] = raw_messages(lab, "mafudge@syr.edu")           # UTF-8 headers, as RFC 6532 allows: read the bytes
    assert f"Return-Path: <{sender}>\n".encode() in raw
    assert f"From: Noël <{sender}>\n".encode() in raw
    assert "Subject: Joyeux Noël\n".encode() in raw
    assert f"by smtp1.syr.edu (maillab) with UTF8SMTP id {qid}\n".encode() in raw     # RFC 6531 §4.3


async def test_aiosmtplib_relay_without_auth_raises_554_5_7_1(lab):
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await aiosmtplib.send(letter("promo@cheap-pills.biz", "victim@gmail.com", "buy now"),
                              hostname=LOCAL, port=lab.ports.smtp, start_tls=False,
                              local_hostname="spammer.example", timeout=30)
    [error] = refused.value.recipients
    assert (error.code, error.message, error.recipient) == (
        554, "5.7.1 <victim@gmail.com>: Relay access denied", "victim@gmail.com")
    await logged(lab, r"NOQUEUE: reject: RCPT from smtp1\.syr\.edu\[127\.0\.0\.1\]: 554 5\.7\.1 <victim@gmail\.com>: "
                      r"Relay access denied; from=<promo@cheap-pills\.biz> to=<victim@gmail\.com> proto=ESMTP "
                      r"helo=<spammer\.example>")


# ---- msmtp -------------------------------------------------------------------------------------

def msmtp_config(tmp_path: Path, port: int, login: str | None = None, auth: str = "on",
                 ca: Path | None = None) -> Path:
    """An msmtp configuration as a user writes it (~/.msmtprc): the lab host, plaintext or, with
    the lab CA `ca`, STARTTLS verified against it, and a login when `auth` is on (a mechanism
    name picks that mechanism)."""
    tls = ["tls on", "tls_starttls on", f"tls_trust_file {ca}"] if ca else ["tls off"]
    lines = ["defaults", *tls, "domain laptop.example", "", "account lab", f"host {LOCAL}", f"port {port}"]
    if login:
        lines += [f"from {login}", f"auth {auth}", f"user {login}", f"password {PASSWORD}"]
    else:
        lines += ["from santa@northpole.org", "auth off"]
    lines += ["", "account default : lab"]
    conf = tmp_path / f"msmtprc-{port}-{auth}"
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)                       # msmtp refuses a password file others can read
    return conf


def msmtp(conf: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run([require_tool("msmtp"), "-C", str(conf), *args], stdin=stdin)


async def test_msmtp_sends_to_a_local_user_on_the_mx_port(lab, tmp_path):
    conf = msmtp_config(tmp_path, lab.ports.smtp)
    message = b"From: Santa Claus <santa@northpole.org>\nTo: Michael Fudge <mafudge@syr.edu>\n" \
              b"Subject: msmtp to the MX\n\nHo ho ho.\n"
    done = await asyncio.to_thread(msmtp, conf, "-t", stdin=message)
    assert done.returncode == 0, output(done)
    msg = (await delivered(lab, "mafudge@syr.edu"))[0]
    assert msg["Subject"] == "msmtp to the MX"
    assert msg["Return-Path"] == "<santa@northpole.org>"
    assert msg["Received"].startswith("from laptop.example (smtp1.syr.edu [127.0.0.1])")
    assert "by smtp1.syr.edu (maillab) with ESMTP id " in msg["Received"]
    assert msg.get_payload() == "Ho ho ho.\n"
    await logged(lab, r": to=<mafudge@syr.edu>, relay=local, .* status=sent")


@pytest.mark.parametrize("mechanism", ["plain", "login"])
async def test_msmtp_authenticates_on_submission_and_the_mail_is_relayed(lab, tmp_path, mechanism):
    conf = msmtp_config(tmp_path, lab.ports.submission, login="mafudge@syr.edu", auth=mechanism, ca=lab_ca(lab))
    message = f"From: Michael Fudge <mafudge@syr.edu>\nTo: Bob <bob@luxsci.net>\nSubject: msmtp AUTH {mechanism}\n" \
              f"\nHello Bob.\n".encode()
    done = await asyncio.to_thread(msmtp, conf, "-t", stdin=message)
    assert done.returncode == 0, output(done)
    msg = (await delivered(lab, "bob@luxsci.net"))[0]
    assert msg["Subject"] == f"msmtp AUTH {mechanism}"
    hop_to_luxsci, submitted = msg.get_all("Received")[:2]
    assert "by mx1.luxsci.net (maillab) with ESMTP" in hop_to_luxsci
    assert "(Authenticated sender: mafudge@syr.edu)" in submitted and "with ESMTPSA id" in submitted
    await logged(lab, rf"sasl_method={mechanism.upper()}, sasl_username=mafudge@syr.edu")


async def test_msmtp_pipelines_a_transaction_to_local_and_remote_recipients(lab, tmp_path):
    """msmtp groups MAIL, the RCPTs and DATA in one write when PIPELINING is offered (RFC 2920);
    its --debug transcript shows the commands all sent before the first reply is read."""
    conf = msmtp_config(tmp_path, lab.ports.submission, login="mafudge@syr.edu", auth="plain", ca=lab_ca(lab))
    message = b"From: mafudge@syr.edu\nTo: bob@luxsci.net, tajorgen@syr.edu, relstad@syr.edu\n" \
              b"Subject: one group\n\nto three\n"
    done = await asyncio.to_thread(msmtp, conf, "-t", "--debug", stdin=message)
    assert done.returncode == 0, output(done)
    dialogue = [line for line in done.stdout.decode().splitlines() if line[:4] in ("--> ", "<-- ")]
    at = dialogue.index("--> MAIL FROM:<mafudge@syr.edu>")
    assert dialogue[at:at + 10] == [
        "--> MAIL FROM:<mafudge@syr.edu>", "--> RCPT TO:<bob@luxsci.net>", "--> RCPT TO:<tajorgen@syr.edu>",
        "--> RCPT TO:<relstad@syr.edu>", "--> DATA",
        "<-- 250 2.1.0 Ok", "<-- 250 2.1.5 Ok", "<-- 250 2.1.5 Ok", "<-- 250 2.1.5 Ok",
        "<-- 354 End data with <CR><LF>.<CR><LF>"], dialogue
    qid = queue_id(next(x for x in dialogue if "queued as" in x)[len("<-- 250 "):])
    for user in ("bob@luxsci.net", "tajorgen@syr.edu", "relstad@syr.edu"):
        msg = (await delivered(lab, user))[0]
        assert msg["Subject"] == "one group"
        assert f"with ESMTPSA id {qid}" in "".join(msg.get_all("Received"))


async def test_msmtp_wrong_password_exits_nonzero_with_the_535(lab, tmp_path):
    conf = msmtp_config(tmp_path, lab.ports.submission, login="mafudge@syr.edu", auth="plain", ca=lab_ca(lab))
    conf.write_text(conf.read_text().replace(f"password {PASSWORD}", "password not-the-password"))
    lab.ctx.auth_guard.base_delay = 0.01     # the failure penalty is not what this test is about
    done = await asyncio.to_thread(msmtp, conf, "-t", stdin=b"To: bob@luxsci.net\nSubject: no\n\nno\n")
    assert done.returncode != 0, output(done)
    assert b"535 5.7.8" in done.stderr, output(done)
    assert inbox(lab, "bob@luxsci.net") == []


async def test_msmtp_serverinfo_lists_the_submission_extensions(lab, tmp_path):
    conf = msmtp_config(tmp_path, lab.ports.submission, login="mafudge@syr.edu", auth="plain", ca=lab_ca(lab))
    done = await asyncio.to_thread(msmtp, conf, "--serverinfo", "--debug")
    assert done.returncode == 0, output(done)
    text = done.stdout.decode()
    # msmtp's summary, for the extensions msmtp knows by name ...
    assert "smtp1.syr.edu ESMTP maillab" in text
    assert "SIZE 10485760:" in text and "Maximum message size is 10485760 bytes" in text
    for name in ("PIPELINING:", "DSN:", "AUTH:"):
        assert f"\n    {name}\n" in text, text
    assert re.search(r"Supported authentication methods:\s+PLAIN SCRAM-SHA-256 LOGIN\s", text), text
    # ... and, in its debug transcript, every line of the EHLO reply it read
    ehlo = re.findall(r"^<-- 250[- ](\S+)", text, re.M)
    assert ehlo[0] == "smtp1.syr.edu"
    for keyword in ("PIPELINING", "SIZE", "AUTH", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"):
        assert keyword in ehlo, ehlo


# ---- Postfix's smtp-source ---------------------------------------------------------------------

def smtp_source_payload(length: int) -> bytes:
    """The body smtp-source sends for `-l length` (smtp-source.c): `length` bytes of X, every
    80-byte line starting with a digit and ending in CRLF, then the CRLF before the final dot."""
    data = bytearray(b"X" * length)
    for i in range(80, length, 80):
        data[i - 80] = ord("0123456789"[(i // 80) % 10])
        data[i - 2:i] = b"\r\n"
    return bytes(data) + b"\r\n"


SMTP_SOURCE = "/usr/sbin/smtp-source"      # Debian's place, not on an ordinary user's PATH


def smtp_source(port: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    tool = SMTP_SOURCE if os.access(SMTP_SOURCE, os.X_OK) else require_tool("smtp-source")
    return run([tool, *args, "-M", "laptop.example", "-f", "santa@northpole.org",
                "-t", "mafudge@syr.edu", f"{LOCAL}:{port}"])


def check_smtp_source_mail(msgs, count: int, length: int) -> None:
    assert len(msgs) == count
    assert len({m["Message-Id"] for m in msgs}) == count          # `count` distinct messages, none twice
    payload = smtp_source_payload(length)
    for m in msgs:
        assert m["Return-Path"] == "<santa@northpole.org>"
        assert m["To"] == "<mafudge@syr.edu>"
        assert m["Received"].startswith("from laptop.example (smtp1.syr.edu [127.0.0.1])")
        assert "with SMTP id" in m["Received"]                      # smtp-source says HELO, not EHLO
        assert m.get_payload().encode().replace(b"\n", b"\r\n") == payload


async def test_smtp_source_50_messages_over_5_parallel_sessions_all_arrive(lab):
    done = await asyncio.to_thread(smtp_source, lab.ports.smtp, "-s", "5", "-m", "50", "-l", "2048")
    assert done.returncode == 0, output(done)
    msgs = await delivered(lab, "mafudge@syr.edu", 50)
    check_smtp_source_mail(msgs, 50, 2048)
    await async_wait_for(lambda: len(maillog(lab, "to=<mafudge@syr.edu>, relay=local")) >= 50, timeout=WAIT,
                         what="50 local deliveries to mafudge in the maillog")
    assert len(maillog(lab, "connect from smtp1.syr.edu[127.0.0.1]")) == 50     # without -d: a session each


async def test_smtp_source_one_connection_for_every_message_with_a_counter(lab):
    """-d: the next message over the same connection (smtp-source 3.7 has no pipelining flag: it
    says HELO and writes one command at a time); -c: the counter it prints as each DATA completes."""
    done = await asyncio.to_thread(smtp_source, lab.ports.smtp, "-d", "-c", "-m", "20", "-l", "300")
    assert done.returncode == 0, output(done)
    assert done.stdout.replace(b"\r", b" ").split() == [str(n).encode() for n in range(1, 21)], output(done)
    msgs = await delivered(lab, "mafudge@syr.edu", 20)
    check_smtp_source_mail(msgs, 20, 300)
    assert len({m["Received"].split(" id ")[1].split()[0] for m in msgs}) == 20    # a queue ID per message
    connects = maillog(lab, "smtpd[")
    assert sum("connect from smtp1.syr.edu[127.0.0.1]" in x for x in connects) == 1, connects
