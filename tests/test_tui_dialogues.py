"""The Dialogues panel against real sessions: live lines, a message's lines as typed (bounded),
explain mode, AUTH decoded, follow and pick."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import smtplib
import socket

from textual.widgets import RichLog

from maillab.lab.world import load_world
from maillab.smtp.transcript import HEAD_LINES, TAIL_LINES
from maillab.tui.rowlist import RowList

from test_tui_support import course_session, in_thread, richlog_text, running_app, submit, until


class Typist:
    """A student at a raw socket: one line at a time, reading each reply."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.file.readline()

    def say(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        reply = self.file.readline().decode()
        while reply[3:4] == "-":
            reply = self.file.readline().decode()
        return reply

    def close(self) -> None:
        self.sock.close()


async def test_a_telnet_session_appears_line_by_line(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        transcript = app.query_one("#transcript", RichLog)
        typist = await in_thread(Typist, "127.0.0.1", app.lab.ports.smtp)
        try:
            await until(pilot, lambda: "S: 220 smtp1.syr.edu ESMTP maillab" in richlog_text(transcript))
            for line, reply in (("HELO northpole.org", "250 smtp1.syr.edu"),
                                ("MAIL FROM: <santa@northpole.org>", "250 2.1.0 Ok"),
                                ("RCPT TO: <mafudge@syr.edu>", "250 2.1.5 Ok")):
                assert f"C: {line}" not in richlog_text(transcript)
                assert (await in_thread(typist.say, line)).startswith(reply)
                await until(pilot, lambda: f"S: {reply}" in richlog_text(transcript))
                assert f"C: {line}" in richlog_text(transcript)
            table = app.query_one("#sessions", RowList)
            assert str(table.get_row_at(0)[3]) == "open"
            assert "session closed" not in richlog_text(transcript)
            await in_thread(typist.say, "QUIT")
            await until(pilot, lambda: str(table.get_row_at(0)[3]) == "closed")
            # the transcript, drawn while it was open, says so too, last (it said "open" before)
            await until(pilot, lambda: richlog_text(transcript).rstrip().endswith("— session closed"))
            assert ", open" not in richlog_text(transcript)
        finally:
            typist.close()


async def test_explain_annotates_codes_and_commands(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await in_thread(course_session, app.lab.ports.smtp, rcpt="nobody@syr.edu")
        transcript = app.query_one("#transcript", RichLog)
        await until(pilot, lambda: "221" in richlog_text(transcript))
        assert "↳" not in richlog_text(transcript)
        await pilot.press("e")
        text = richlog_text(transcript)
        assert "↳ 354: start mail input" in text and "RFC 5321 §4.1.1.4" in text
        assert "↳ 2.1.5: success, destination address valid (RFC 3463 §3.2)" in text
        assert "↳ RCPT: one envelope recipient" in text
        assert "e explain ON" in str(app.query_one("#dialogues-hint").render())
        await pilot.press("e")
        assert "↳" not in richlog_text(transcript)


async def test_auth_plain_and_login_are_decoded_with_a_cleartext_warning(tmp_path):
    world = dataclasses.replace(load_world(), auth_over_plaintext=True)     # the eavesdropping lesson's
    async with running_app(tmp_path, world=world) as (app, pilot):
        await pilot.press("e")
        transcript = app.query_one("#transcript", RichLog)
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission,     # smtplib: AUTH PLAIN
                        rcpt="santa@northpole.org", tls=False)             # local: no relay session
        await until(pilot, lambda: "235" in richlog_text(transcript) and "221" in richlog_text(transcript))
        text = richlog_text(transcript)
        assert "user 'santa@northpole.org', password 'maillab'" in text
        assert "⚠ the password crossed the wire in the clear" in text

        typist = await in_thread(Typist, "127.0.0.3", app.lab.ports.submission)
        try:
            await in_thread(typist.say, "EHLO workshop.northpole.org")
            await in_thread(typist.say, "AUTH LOGIN")
            await in_thread(typist.say, base64.b64encode(b"santa@northpole.org").decode())
            assert (await in_thread(typist.say, base64.b64encode(b"maillab").decode())).startswith("235")
            await until(pilot, lambda: "base64 of the password: 'maillab'" in richlog_text(transcript))
            text = richlog_text(transcript)
            assert "the challenge decodes to 'Username:'" in text
            assert "base64 of the user name: 'santa@northpole.org'" in text
        finally:
            typist.close()


async def test_follow_mode_and_picking_a_session(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        transcript = app.query_one("#transcript", RichLog)
        table = app.query_one("#sessions", RowList)
        first = await in_thread(course_session, app.lab.ports.smtp)
        await until(pilot, lambda: first in richlog_text(transcript))
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission)     # relayed: three sessions more
        assert await until(pilot, lambda: len(app.journeys.deliveries) == 2 and table.row_count == 4)
        newest = app.sessions.newest()
        await until(pilot, lambda: richlog_text(transcript).startswith(newest.id))   # follow: the newest one
        assert first not in richlog_text(transcript)
        # Enter on the first row shows that session and ends follow mode
        table.move_cursor(0)
        await pilot.press("enter")
        await until(pilot, lambda: first in richlog_text(transcript))
        assert app.query_one("#dialogues-panel").follow is False
        third = await in_thread(course_session, app.lab.ports.smtp)
        await until(pilot, lambda: table.row_count >= 3)
        await pilot.pause(0.2)
        assert third not in richlog_text(transcript) and first in richlog_text(transcript)
        await pilot.press("f")
        await until(pilot, lambda: third in richlog_text(transcript))
        await pilot.press("c")
        assert table.row_count == 0 and "No session selected" in richlog_text(transcript)


async def test_an_idle_dialogues_panel_repaints_nothing(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await in_thread(course_session, app.lab.ports.smtp)
        table = app.query_one("#sessions", RowList)
        await until(pilot, lambda: table.row_count >= 1)
        await pilot.pause()
        refreshes, pumps = [], asyncio.Event()
        table.refresh = lambda *a, **k: refreshes.append(a)          # type: ignore[method-assign]
        panel_flush = app._shown_panel().flush
        flushed = []

        def counting_flush() -> None:
            panel_flush()
            flushed.append(1)
            if len(flushed) >= 30:
                pumps.set()
        app._shown_panel().flush = counting_flush                    # type: ignore[method-assign]
        await asyncio.wait_for(pumps.wait(), 30)                     # two seconds of 15 Hz frames, no events
        assert refreshes == []


async def test_a_message_typed_in_telnet_shows_line_by_line_as_typed(tmp_path):
    """Bare LF, as `nc` sends: each header and body line appears as it is typed, before the dot."""
    async with running_app(tmp_path) as (app, pilot):
        transcript = app.query_one("#transcript", RichLog)
        typist = await in_thread(Typist, "127.0.0.1", app.lab.ports.smtp)
        try:
            for line in ("HELO northpole.org", "MAIL FROM:<santa@northpole.org>", "RCPT TO:<mafudge@syr.edu>"):
                await in_thread(typist.say, line)
            typist.sock.sendall(b"DATA\n")
            assert (await in_thread(typist.file.readline)).startswith(b"354 ")
            typed = ["From: Santa <santa@northpole.org>", "Subject: You are on the naughty list", "",
                     "Dear Mark,", "  indented, as typed", "..a line that starts with a dot", "Santa"]
            for line in typed:
                typist.sock.sendall(line.encode() + b"\n")
                await until(pilot, lambda: richlog_text(transcript).rstrip().endswith(f"C: {line}".rstrip()))
            assert "message body" not in richlog_text(transcript)
            typist.sock.sendall(b".\n")
            assert (await in_thread(typist.file.readline)).startswith(b"250 2.0.0 Ok: queued as")
            await until(pilot, lambda: "S: 250 2.0.0 Ok: queued as" in richlog_text(transcript))
            lines = [x.split(" ", 1)[1] for x in richlog_text(transcript).splitlines() if " " in x]
            start = lines.index(next(x for x in lines if x.startswith("S: 354")))
            assert lines[start + 1:start + 1 + len(typed) + 2] == [
                *(f"C: {t}" for t in typed), f"   (message body: {len(typed)} lines, "
                f"{sum(len(t) + 1 for t in typed)} bytes)", "C: ."]   # as received: bare LFs
            await pilot.press("e")                                   # explained as a message
            text = richlog_text(transcript)
            assert "↳ Subject: the topic (RFC 5322 §3.6.5)" in text
            assert "↳ a blank line: the header section ends here" in text
            assert "↳ a doubled dot" in text
        finally:
            typist.close()


def big_message(octets: int) -> tuple[bytes, int]:
    """A message of about `octets` octets with numbered lines, and its number of lines."""
    head = b"From: <santa@northpole.org>\r\nTo: <mafudge@syr.edu>\r\nSubject: the big list\r\n\r\n"
    count = (octets - len(head)) // 29          # each "child ...\r\n" line: 29 octets
    return head + b"".join(b"child %021d\r\n" % i for i in range(count)), count + 4


def send_big(port: int, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.sendmail("santa@northpole.org", ["mafudge@syr.edu"], message)


async def test_a_10_mb_message_shows_a_bounded_number_of_its_lines(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        transcript = app.query_one("#transcript", RichLog)
        message, count = big_message(10_000_000)
        await in_thread(send_big, app.lab.ports.smtp, message)
        await until(pilot, lambda: "S: 221" in richlog_text(transcript), 30)
        lines = [x.split(" ", 1)[1] for x in richlog_text(transcript).splitlines() if " " in x]
        start = lines.index(next(x for x in lines if x.startswith("S: 354")))
        end = lines.index("C: .", start)
        shown = lines[start + 1:end]
        assert len(shown) == HEAD_LINES + 1 + TAIL_LINES + 1, shown
        assert shown[:4] == ["C: From: <santa@northpole.org>", "C: To: <mafudge@syr.edu>",
                             "C: Subject: the big list", "C: "]
        assert shown[4:HEAD_LINES] == [f"C: child {i:021d}" for i in range(HEAD_LINES - 4)]
        hidden = count - HEAD_LINES - TAIL_LINES
        assert shown[HEAD_LINES] == f"   … {hidden} lines ({hidden * 29} octets) not shown …"
        assert shown[HEAD_LINES + 1:-1] == [f"C: child {i:021d}" for i in range(count - 4 - TAIL_LINES, count - 4)]
        assert shown[-1] == f"   (message body: {count} lines, {len(message)} bytes)"
