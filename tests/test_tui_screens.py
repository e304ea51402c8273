"""Snapshot-style tests of the main screens: Textual's own SVG screenshots, checked by their text.

Pixel-exact SVG comparisons break with every Textual release and every clock
second, so these save the SVG (to the test's folder, and to
$MAILLAB_SCREENSHOTS if set: `MAILLAB_SCREENSHOTS=docs pytest
tests/test_tui_screens.py` refreshes the README's screenshot) and assert on
what a user reads there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from textual.widgets import RichLog

from maillab.tui.app import MailLabApp
from maillab.tui.forms import HelpScreen
from maillab.tui.rowlist import RowList

from test_tui_support import (course_session, in_thread, richlog_text, running_app, screen_text, submit,
                              table_rows, until)


def snapshot(app: MailLabApp, tmp_path: Path, name: str) -> str:
    text = screen_text(app, tmp_path / f"{name}.svg")
    folder = os.environ.get("MAILLAB_SCREENSHOTS")
    if folder:
        (Path(folder) / f"{name}.svg").write_text((tmp_path / f"{name}.svg").read_text(), encoding="utf-8")
    assert (tmp_path / f"{name}.svg").read_text().startswith("<svg")
    return text


async def test_screenshot_dialogues_explained(tmp_path):
    async with running_app(tmp_path, size=(110, 34)) as (app, pilot):
        await pilot.press("e")
        await in_thread(course_session, app.lab.ports.smtp)
        await until(pilot, lambda: "221" in richlog_text(app.query_one("#transcript", RichLog)))
        await pilot.pause(0.3)
        text = snapshot(app, tmp_path, "screenshot")
        for expected in ("maillab · world default", "lab clock", "1 Dialogues", "8 Monitor",
                         "smtp1.syr.edu [127.0.0.1]", "S: 250 2.0.0 Ok: queued as",
                         "↳ 250: requested action okay, completed (RFC 5321 §4.2.2)", "C: QUIT",
                         "f Follow", "e Explain", "q Quit", "? Help"):
            assert expected in text, expected


async def test_screenshot_queue_with_a_deferred_message(tmp_path):
    async with running_app(tmp_path, size=(140, 24)) as (app, pilot):
        await app.lab.host_down("smtp1.syr.edu")
        qid = await in_thread(course_session, app.lab.ports.smtp, "127.0.0.2")
        await pilot.press("2")
        table = app.query_one("#queue-table", RowList)
        await until(pilot, lambda: any(r[0] == qid and r[2] == "deferred" for r in table_rows(table)))
        text = snapshot(app, tmp_path, "queue")
        row = next(line for line in text.splitlines() if qid in line).split()
        assert row[:5] == [qid, "smtp2.syr.edu", "deferred", "mafudge@syr.edu", "1"]
        assert "1 message queued on all hosts" in text and "Connection refused" in text
        assert "x Flush" in text and "> Faster" in text


async def test_screenshot_journey(tmp_path):
    async with running_app(tmp_path, size=(160, 40)) as (app, pilot):
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission)
        await until(pilot, lambda: app.journeys.deliveries)
        await pilot.press("5")
        await until(pilot, lambda: app.query_one("#deliveries", RowList).row_count)
        await pilot.press("enter")
        await until(pilot, lambda: "2 hops" in richlog_text(app.query_one("#hops", RichLog)))
        text = snapshot(app, tmp_path, "journey")
        for expected in ("Received headers of", "1. ", "2. ", "from mail.northpole.org [127.0.0.3]",
                         "What the lab saw", "DNS syr.edu MX -> NOERROR"):
            assert expected in text, expected


async def test_screenshot_help_and_presenter(tmp_path):
    async with running_app(tmp_path, size=(100, 30)) as (app, pilot):
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause(0.3)
        text = snapshot(app, tmp_path, "help")
        assert "maillab — the lab you can watch" in text and "Ctrl+P" in text
        await pilot.press("escape", "p")
        await in_thread(course_session, app.lab.ports.smtp)
        await until(pilot, lambda: "221" in richlog_text(app.query_one("#transcript", RichLog)))
        await pilot.pause(0.3)
        text = snapshot(app, tmp_path, "presenter")
        assert "PRESENTER MODE" in text                   # in the header: no toast over the transcript
        assert "CLIENT › QUIT" in text and "SERVER ‹ 221" in text and "↳ 221:" in text
        assert "started" not in text                      # no session table in presenter mode


async def test_dialog_texts_wrap_instead_of_being_cut_at_80x24():
    from textual.app import App

    from maillab.tui.forms import ConfirmScreen, Field, FormScreen

    question = ("Remove the message 4F2A1B from the deferred queue of smtp1.syr.edu for good? "
                "It will not be retried and no bounce is sent to the sender santa@northpole.org")
    label = ("Recipient address (a mailbox of the lab, e.g. mafudge@syr.edu; an outside address "
             "is relayed through the MX that DNS names for its domain)")
    for screen, text in ((ConfirmScreen(question), question),
                         (FormScreen("Send a test message", [Field("to", label)]), label)):
        app = App()
        async with app.run_test(size=(80, 24)) as pilot:
            app.push_screen(screen)
            await pilot.pause()
            shown = " ".join(re.sub("[\u2580-\u259f]", " ", screen_text(app)).split())   # no borders
            assert " ".join(text.split()) in shown          # every word, none cut off at the edge
