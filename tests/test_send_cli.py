"""`maillab send` as a user runs it: against the running lab (found by its state folder) and against
a bare aiosmtpd sink; the transcript, the delivered message, and every error with its exit status."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import os
import socket
import sys
from pathlib import Path

import pytest

from conftest import async_wait_for, maildir_messages
from test_smtp_client import Recorder, aiosmtpd_peer


async def send(lab_state: Path | None, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run `maillab send ARGS` (with --state, if given) while the test's lab keeps running."""
    state = ["--state", str(lab_state)] if lab_state is not None else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "maillab", "send", *args, *state, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SANTA = ("--from", "Santa Claus <santa@northpole.org>")


async def test_santa_sends_over_starttls_with_auth_cc_bcc_and_an_attachment(lab, tmp_path):
    photo = tmp_path / "Schlitten – Foto.bin"
    photo.write_bytes(bytes(range(256)) * 40)
    code, out, err = await send(lab.state.root, *SANTA, "--to", "mafudge@syr.edu", "--cc", "tajorgen@syr.edu",
                                "--bcc", "relstad@syr.edu", "--auth", "--subject", "Grüße vom Nordpol ❄",
                                "--body", "Ho ho ho!\n", "--attach", str(photo), "--header", "X-Course: IST 769")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("=== Trying 127.0.0.3:") and f":{lab.ports.submission}..." in lines[0]
    assert "<-  220 2.0.0 Ready to start TLS" in lines
    tls = lines.index("<-  220 2.0.0 Ready to start TLS")
    assert any(line.startswith(" ~> EHLO ") for line in lines[tls:])          # EHLO again, under TLS
    assert " ~> AUTH PLAIN ***" in lines                                     # the secret is never printed
    assert base64.b64encode(b"\0santa@northpole.org\0maillab").decode() not in out
    assert "<~  235 2.7.0 Authentication successful" in lines
    assert not any(line.startswith(" -> MAIL") for line in lines)              # nothing after TLS in the clear
    assert lines[-1].startswith("=== sent to 3 recipients, queued as ")
    for user in ("mafudge@syr.edu", "tajorgen@syr.edu", "relstad@syr.edu"):
        msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, user), 15)
        raw = msgs[0].as_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Subject"] == "Grüße vom Nordpol ❄"
        assert parsed["From"].addresses[0].display_name == "Santa Claus"
        # Bcc: in the envelope only (Received's "for <rcpt>" and Delivered-To name the copy's own recipient)
        assert parsed["Bcc"] is None
        own = ("received", "delivered-to") if user == "relstad@syr.edu" else ()
        assert [k for k, v in parsed.items() if k.lower() not in own and "relstad" in str(v)] == []
        assert parsed["X-Course"] == "IST 769"
        attached = [p for p in parsed.iter_attachments()]
        assert [p.get_filename() for p in attached] == ["Schlitten – Foto.bin"]
        assert attached[0].get_content() == photo.read_bytes()
        assert "with ESMTPSA" in parsed.get_all("Received")[-1]


async def test_tls_on_connect_goes_to_the_smtps_port_and_is_tls_from_the_first_line(lab):
    code, out, err = await send(lab.state.root, *SANTA, "--to", "santa@northpole.org", "--auth",
                                "--tls-on-connect", "--body", "x")
    assert code == 0, err
    lines = out.splitlines()
    assert f":{lab.ports.smtps}..." in lines[0]
    assert lines[1].startswith("=== (TLS 1.3 ") and lines[1].endswith(" established, Verified)")
    assert lines[2].startswith("<~  220 mail.northpole.org")
    assert not any(line.startswith((" ->", "<- ")) for line in lines)


async def test_body_from_stdin_and_quiet(lab):
    code, out, err = await send(lab.state.root, *SANTA, "--to", "santa@northpole.org", "--auth", "--quiet",
                                stdin="From the pipe\n".encode())
    assert (code, out, err) == (0, "", "")
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "santa@northpole.org"), 15)
    assert msgs[0].get_payload().replace("\r\n", "\n") == "From the pipe\n"


async def test_wrong_password_exits_5_with_the_servers_reply(lab):
    code, out, err = await send(lab.state.root, *SANTA, "--to", "mafudge@syr.edu",
                                "--auth", "santa@northpole.org:not-the-password", "--body", "x")
    assert code == 5
    assert err == "maillab: authentication failed at AUTH: 535 5.7.8 Error: authentication failed\n"


async def test_no_auth_on_submission_exits_5_authentication_required(lab):
    code, out, err = await send(lab.state.root, *SANTA, "--to", "mafudge@syr.edu", "--body", "x")
    assert code == 5
    assert err == "maillab: authentication required at MAIL FROM: 530 5.7.0 Authentication required\n"


async def test_relay_through_the_mx_port_without_auth_exits_6(lab):
    code, out, err = await send(lab.state.root, "--from", "mafudge@syr.edu", "--to", "bob@luxsci.net",
                                "--server", f"smtp1.syr.edu:{lab.ports.smtp}", "--body", "x")
    assert code == 6
    assert err == ("maillab: relay denied at RCPT TO for <bob@luxsci.net>: "
                   "554 5.7.1 <bob@luxsci.net>: Relay access denied\n")
    assert "<~  250 2.1.0 Ok" in out       # STARTTLS offered by the MX: taken (may), verified as smtp1.syr.edu


@pytest.mark.world(message_size_limit=4000)
async def test_too_big_exits_7_and_the_message_is_not_sent(lab):
    code, out, err = await send(lab.state.root, *SANTA, "--to", "mafudge@syr.edu", "--auth", "--body", "y" * 8000)
    assert code == 7
    assert err.startswith("maillab: message too big at MAIL FROM: 552 5.3.4 Message size ")
    assert not any(line.startswith(" ~> DATA") for line in out.splitlines())


@pytest.mark.world(reject_unknown_recipients=True)
async def test_an_unknown_recipient_exits_8_and_the_others_still_get_it(lab):
    code, out, err = await send(lab.state.root, *SANTA, "--to", "nobody@northpole.org", "--to",
                                "santa@northpole.org", "--auth", "--body", "x")
    assert code == 8
    assert err.startswith("maillab: refused at RCPT TO for <nobody@northpole.org>: 550 5.1.1 ")
    assert await async_wait_for(lambda: maildir_messages(lab.state.root, "santa@northpole.org"), 15)


async def test_a_temporary_refusal_exits_9(lab):
    await asyncio.to_thread(_chaos, lab.state.root)
    code, out, err = await send(lab.state.root, *SANTA, "--to", "santa@northpole.org", "--auth", "--body", "x")
    assert code == 9
    assert err.startswith("maillab: deferred at RCPT TO for <santa@northpole.org>: 451 ")


def _chaos(state: Path) -> None:
    from maillab.lab.control import call, socket_path
    call(socket_path(state), "hosts.chaos", host="mail.northpole.org", stage="RCPT", probability=1.0,
         code=451, seed=0, off=False)


async def test_nothing_listening_exits_3(lab):
    port = free_port()
    code, out, err = await send(lab.state.root, *SANTA, "--to", "x@y.test", "--server", f"127.0.0.1:{port}",
                                "--body", "x")
    assert code == 3
    assert err == f"maillab: connection failed: connect to 127.0.0.1:{port}: Connection refused\n"


async def test_tls_required_and_stripped_exits_4(lab):
    await asyncio.to_thread(_strip, lab.state.root)
    code, out, err = await send(lab.state.root, *SANTA, "--to", "mafudge@syr.edu", "--auth", "--tls", "--body", "x")
    assert code == 4
    assert err == "maillab: TLS failed at STARTTLS: 421 4.7.4 TLS is required, but was not offered by host\n"


def _strip(state: Path) -> None:
    from maillab.lab.control import call, socket_path
    call(socket_path(state), "hosts.strip", host="mail.northpole.org", on=True)


async def test_a_certificate_the_ca_does_not_sign_exits_4(lab, tmp_path):
    other = tmp_path / "other-state"
    from maillab.lab.ca import LabCA
    ca = LabCA(other / "tls").ensure()
    code, out, err = await send(lab.state.root, *SANTA, "--to", "mafudge@syr.edu", "--auth", "--body", "x",
                                "--ca", str(ca))
    assert code == 4
    assert err.startswith("maillab: not sent: lost connection after STARTTLS (TLS handshake: Server certificate "
                          "not verified (self-signed certificate in certificate chain))")


async def test_against_a_bare_aiosmtpd_sink_the_envelope_and_raw_octets_arrive(tmp_path):
    handler = Recorder()
    raw = b"From: a@b.test\r\nTo: c@d.test\r\nSubject: prepared\r\n\r\nline one\r\n.leading dot\r\n"
    (tmp_path / "m.eml").write_bytes(raw)
    async with aiosmtpd_peer(handler) as port:
        code, out, err = await send(tmp_path / "no-lab", "--from", "a@b.test", "--to", "c@d.test",
                                    "--bcc", "e@f.test", "--server", f"127.0.0.1:{port}",
                                    "--raw", str(tmp_path / "m.eml"))
        assert code == 0, err
        assert handler.received[0]["sender"] == "a@b.test"
        assert handler.received[0]["rcpts"] == ["c@d.test", "e@f.test"]
        assert handler.received[0]["content"] == raw
        assert "<-  250 2.0.0 Ok: queued as 4XyZ12" in out.splitlines()
        assert any(line.startswith(" -> MAIL FROM:<a@b.test>") for line in out.splitlines())  # no STARTTLS there
        code, out, err = await send(tmp_path / "no-lab", "--from", "a@b.test", "--to", "nobody@d.test",
                                    "--server", f"127.0.0.1:{port}", "--no-tls", "--body", "x")
        assert code == 8 and err.startswith("maillab: refused at RCPT TO for <nobody@d.test>: 550 5.1.1")


async def test_usage_errors_are_one_line_and_exit_1(tmp_path):
    none = tmp_path / "no-lab"
    assert await send(none, "--from", "santa@northpole.org", "--to", "x@y.test") == (
        1, "", f"maillab: no lab is running on {none}: start one (maillab serve), or give --server HOST:PORT\n")
    assert await send(none, "--from", "not an address", "--to", "x@y.test") == (
        1, "", "maillab: --from 'not an address': not a mail address (like santa@northpole.org)\n")
    assert await send(none, "--from", "a@b.test") == (1, "", "maillab: no recipient: give --to, --cc or --bcc\n")
    code, _, err = await send(none, "--from", "a@b.test", "--to", "c@d.test", "--server", "127.0.0.1:25",
                              "--header", "NoColon")
    assert (code, err) == (1, "maillab: --header 'NoColon': give it as 'Name: value'\n")
    code, _, err = await send(none, "--from", "a@b.test", "--to", "c@d.test", "--server", "127.0.0.1:25",
                              "--attach", str(tmp_path / "missing.pdf"))
    assert (code, err) == (1, f"maillab: --attach {tmp_path / 'missing.pdf'}: No such file or directory\n")
    code, _, err = await send(none, "--from", "a@b.test", "--to", "c@d.test", "--server", "nowhere")
    assert (code, err) == (1, "maillab: --server 'nowhere': give it as HOST:PORT, like 127.0.0.1:2587\n")
