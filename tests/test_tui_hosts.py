"""The Hosts panel: outages in each mode and chaos, set from the panel, seen on the wire."""

from __future__ import annotations

import dataclasses
import smtplib
import socket

from textual.widgets import Button, Input, RichLog, Select

from maillab.lab.world import load_world
from maillab.tui.forms import FormScreen
from maillab.tui.panels.hosts import smtp_rules
from maillab.tui.rowlist import RowList

from test_tui_support import in_thread, richlog_text, running_app, screen_text, table_rows, until


def banner(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=5) as s:
        return s.makefile("rb").readline().decode()


def rcpt_reply(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=5) as s:
        f = s.makefile("rb")
        f.readline()
        for line in (b"HELO northpole.org", b"MAIL FROM:<santa@northpole.org>"):
            s.sendall(line + b"\r\n")
            f.readline()
        s.sendall(b"RCPT TO:<mafudge@syr.edu>\r\n")
        return f.readline().decode()


def state_of(table: RowList, host: str) -> str:
    return next(r[2] for r in table_rows(table) if r[0] == host)


async def test_down_in_a_chosen_mode_then_up(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        port = app.lab.ports.smtp
        await pilot.press("3")
        table = app.query_one("#hosts-table", RowList)
        await until(pilot, lambda: table.row_count == len(app.lab.world.hosts))
        assert table_rows(table)[0][:3] == ["smtp1.syr.edu", "127.0.0.1", "up"]
        assert "submission:" in table_rows(table)[0][4] and table_rows(table)[0][5] == "syr.edu"
        table.move_cursor(row=0)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#field-mode", Select).value = "421"
        app.screen.query_one("#ok", Button).press()
        await until(pilot, lambda: state_of(table, "smtp1.syr.edu") == "down (421)")
        assert (await in_thread(banner, "127.0.0.1", port)).startswith("421 4.3.2")
        await pilot.press("u")
        await until(pilot, lambda: state_of(table, "smtp1.syr.edu") == "up")
        assert (await in_thread(banner, "127.0.0.1", port)).startswith("220 smtp1.syr.edu")
        # refuse: nothing listens
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#ok", Button).press()          # the default mode: refuse
        await until(pilot, lambda: state_of(table, "smtp1.syr.edu") == "down (refuse)")
        try:
            await in_thread(banner, "127.0.0.1", port)
            raise AssertionError("smtp1 should refuse connections")
        except ConnectionRefusedError:
            pass
        await pilot.press("u")
        await until(pilot, lambda: state_of(table, "smtp1.syr.edu") == "up")


async def test_chaos_from_the_panel(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("3")
        table = app.query_one("#hosts-table", RowList)
        await until(pilot, lambda: table.row_count > 0)
        table.move_cursor(row=0)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#field-probability", Input).value = "1"
        app.screen.query_one("#field-code", Input).value = "550"
        app.screen.query_one("#ok", Button).press()
        await until(pilot, lambda: table_rows(table)[0][7] == "100% 550 at RCPT (seed 0)")
        assert (await in_thread(rcpt_reply, "127.0.0.1", app.lab.ports.smtp)).startswith(
            "550 5.3.0 chaos: simulated failure at RCPT")
        await pilot.press("C")
        await until(pilot, lambda: table_rows(table)[0][7] == "-")
        assert (await in_thread(rcpt_reply, "127.0.0.1", app.lab.ports.smtp)).startswith("250")
        # a bad value is refused with a message, nothing changes
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#field-probability", Input).value = "often"
        app.screen.query_one("#ok", Button).press()
        await pilot.pause(0.2)
        assert app.lab.mtas["smtp1.syr.edu"].chaos is None
        assert await until(pilot, lambda: "probability must be" in screen_text(app))    # a toast says why


async def test_the_smtp_receive_settings_are_shown(tmp_path):
    """The world's line-ending strictness, sender_login_match and auth_over_plaintext, as the
    servers apply them."""
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("3")
        text = " ".join(screen_text(app).split())
        assert "SMTP line endings: lenient (bare LF taken as typed in nc, the end of data strict)" in text
        assert "sender_login_match: off (a login may send as anyone)" in text
        assert "auth_over_plaintext: off (logins only after TLS)" in text
    strict = dataclasses.replace(load_world(), smtp_line_endings="pedantic", sender_login_match=True,
                                 auth_over_plaintext=True)
    rules = smtp_rules(strict)
    assert "pedantic (a bare LF refused with 550 5.5.2)" in rules and "sender_login_match: on (MAIL FROM must" in rules
    assert "auth_over_plaintext: on (passwords may cross the wire in the clear)" in rules


def ehlo_keywords(address: str, port: int, starttls: bool = False) -> list[str]:
    """The EHLO keywords of a new session (then, with `starttls`, the STARTTLS reply's code)."""
    with smtplib.SMTP(address, port, timeout=5) as s:
        s.ehlo("northpole.org")
        keywords = [line.split()[0].upper() for line in s.ehlo_resp.decode().splitlines()[1:]]
        return keywords + ([str(s.docmd("STARTTLS")[0])] if starttls else [])


async def test_strip_starttls_from_the_panel(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        port = app.lab.ports.smtp
        await pilot.press("3")
        table = app.query_one("#hosts-table", RowList)
        await until(pilot, lambda: table.row_count > 0)
        assert "starttls" in screen_text(app) and table_rows(table)[0][3] == "offered"
        table.move_cursor(row=0)
        await pilot.press("s")
        await until(pilot, lambda: table_rows(table)[0][3] == "stripped")
        assert "STARTTLS" in await in_thread(ehlo_keywords, "127.0.0.2", port)
        keywords = await in_thread(ehlo_keywords, "127.0.0.1", port, starttls=True)
        assert "STARTTLS" not in keywords and keywords[-1] == "502"
        await pilot.press("1", "e")             # the session, explained: why MTA-STS and DANE exist
        transcript = app.query_one("#transcript", RichLog)
        await until(pilot, lambda: "S: 502 5.5.1 Error: command not implemented" in richlog_text(transcript))
        text = " ".join(richlog_text(transcript).split())
        assert "(STARTTLS stripped on this host: EHLO does not offer it" in text
        assert "MTA-STS (RFC 8461) and DANE (RFC 7672)" in text
        await pilot.press("3")
        await pilot.press("s")
        await until(pilot, lambda: table_rows(table)[0][3] == "offered")
        assert "STARTTLS" in await in_thread(ehlo_keywords, "127.0.0.1", port)
