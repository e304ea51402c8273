"""The eavesdropper's view (Dialogues, `w`): beside the transcript, what the loopback wire showed
of a session, with real clients against the real lab."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import socket
import ssl

from textual.widgets import RichLog

from test_tui_support import in_thread, richlog_text, running_app, until

LESSON = "Anyone on this wire reads the password: use STARTTLS (RFC 3207) or a TLS port (RFC 8314)"


def plaintext_auth(port: int) -> str:
    """AUTH PLAIN before TLS, by hand: the default world refuses it (530), but the password went."""
    token = base64.b64encode(b"\0mafudge@syr.edu\0maillab").decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO northpole.org\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(f"AUTH PLAIN {token}\r\n".encode())
        reply = f.readline().decode()
        s.sendall(b"QUIT\r\n")
        f.readline()
    return reply


def imap_login_in_the_clear(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b'a LOGIN mafudge@syr.edu "maillab"\r\n')
        reply = f.readline().decode()
        s.sendall(b"b LOGOUT\r\n")
        f.readline()
        f.readline()
    return reply


def starttls_login(port: int, ca: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("northpole.org")
        smtp.starttls(context=ssl.create_default_context(cafile=ca))
        smtp.ehlo("northpole.org")
        smtp.login("mafudge@syr.edu", "maillab")
        smtp.sendmail("mafudge@syr.edu", ["tajorgen@syr.edu"], b"Subject: sealed\r\n\r\nunder TLS\r\n")


def imaps_login(port: int, ca: str) -> None:
    with imaplib.IMAP4_SSL("localhost", port, ssl_context=ssl.create_default_context(cafile=ca)) as imap:
        imap.login("mafudge@syr.edu", "maillab")
        imap.logout()


async def wire_of_the_newest(app, pilot, until_text: str) -> tuple[str, str]:
    """The Dialogues panel in wire mode, following the newest session: (wire, transcript) text,
    once the wire view says `until_text`."""
    await pilot.press("1")
    wire = app.query_one("#wire", RichLog)
    if not wire.display:
        await pilot.press("w")
    await until(pilot, lambda: wire.display and until_text in richlog_text(wire))
    return richlog_text(wire), richlog_text(app.query_one("#transcript", RichLog))


async def test_a_password_sent_before_tls_is_read_off_the_wire(tmp_path):
    async with running_app(tmp_path, size=(240, 40)) as (app, pilot):
        reply = await in_thread(plaintext_auth, app.lab.ports.submission)
        assert reply.startswith("530 5.7.0 Must issue a STARTTLS command first")
        wire, transcript = await wire_of_the_newest(app, pilot, "no TLS: every octet")
        assert "What an eavesdropper on the wire reads" in wire
        assert "C: AUTH PLAIN AG1hZnVkZ2VAc3lyLmVkdQBtYWlsbGFi" in wire
        assert "⚠ password of 'mafudge@syr.edu': 'maillab' (decoded from base64)" in wire
        assert LESSON in wire
        assert "S: 530 5.7.0 Must issue a STARTTLS command first" in wire
        assert "S: 530 5.7.0" in transcript            # the endpoints' view, beside it
        # IMAP: the transcript hides LOGIN's password, the wire does not
        await in_thread(imap_login_in_the_clear, app.lab.ports.imap)
        wire, transcript = await wire_of_the_newest(app, pilot, "b LOGOUT")
        await until(pilot, lambda: "⚠ password" in richlog_text(app.query_one("#wire", RichLog)))
        wire = richlog_text(app.query_one("#wire", RichLog))
        assert "⚠ password of 'mafudge@syr.edu': 'maillab' (as typed)" in wire and LESSON in wire
        assert "maillab\"" not in richlog_text(app.query_one("#transcript", RichLog))


async def test_a_starttls_session_shows_its_plaintext_then_one_line_for_tls(tmp_path):
    async with running_app(tmp_path, size=(240, 40)) as (app, pilot):
        ca = str(app.lab.state.tls_dir / "ca.pem")
        await in_thread(starttls_login, app.lab.ports.submission, ca)
        wire, transcript = await wire_of_the_newest(app, pilot, "bytes client → server")
        lines = wire.splitlines()
        ready = next(i for i, line in enumerate(lines) if "S: 220 2.0.0 Ready to start TLS" in line)
        assert any(line.startswith("C: STARTTLS") for line in lines[:ready])
        tls = lines[ready + 1]
        assert tls.startswith("🔒 TLS 1.3, ") and tls.endswith("— ciphertext, nothing readable")
        client, server = (int(tls.split(", ")[1].split()[0]), int(tls.split(", ")[2].split()[0]))
        assert client > len("AUTH PLAIN \r\n") and server > 0     # EHLO, AUTH, the message, QUIT; replies
        assert "'maillab'" not in wire and "⚠" not in wire and LESSON not in wire
        assert "under TLS" not in wire and "AUTH" not in wire
        assert "C: AUTH PLAIN" in transcript        # the endpoints saw it all


async def test_tls_on_connect_shows_nothing_readable(tmp_path):
    async with running_app(tmp_path, size=(240, 40)) as (app, pilot):
        ca = str(app.lab.state.tls_dir / "ca.pem")
        await in_thread(imaps_login, app.lab.ports.imaps, ca)
        wire, _ = await wire_of_the_newest(app, pilot, "bytes client → server")
        body = [line for line in wire.splitlines() if line.strip()][1:]
        assert len(body) == 1 and body[0].startswith("🔒 TLS 1.3 from the first byte: ")
        assert body[0].endswith("— nothing readable") and "⚠" not in wire
