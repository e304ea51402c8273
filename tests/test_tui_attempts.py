"""Issue 13 in the TUI: the failed try at the preferred MX, in the Queue detail and in the Journey."""

from __future__ import annotations

from textual.widgets import RichLog

from maillab.tui.rowlist import RowList

from test_tui_support import in_thread, richlog_text, running_app, submit, table_rows, until


async def _smtp1_down_and_mail_from_gmail(app) -> None:
    await app.lab.host_down("smtp1.syr.edu")
    await in_thread(submit, "127.0.0.4", app.lab.ports.submission, user="tim.jorgensen@gmail.com")


async def test_queue_detail_shows_each_try_at_each_mx(tmp_path):
    async with running_app(tmp_path, size=(160, 50)) as (app, pilot):
        lab = app.lab
        await _smtp1_down_and_mail_from_gmail(app)
        await pilot.press("2")
        table = app.query_one("#queue-table", RowList)
        # smtp2, the backup MX, took it from gmail and cannot pass it on to smtp1
        await until(pilot, lambda: [r for r in table_rows(table) if r[1] == "smtp2.syr.edu" and r[2] == "deferred"])
        detail = app.query_one("#queue-detail", RichLog)
        assert not detail.display
        await pilot.press("enter")
        refused = f"✗ smtp1.syr.edu[127.0.0.1]:{lab.ports.smtp} refused: Connection refused"
        await until(pilot, lambda: refused in richlog_text(detail))
        assert detail.display and "at smtp2.syr.edu (deferred)" in richlog_text(detail)
        lab.queue_flush()                     # a second try: a second line
        await until(pilot, lambda: richlog_text(detail).count(refused) == 2)
        await pilot.press("enter")            # closes it
        await until(pilot, lambda: not detail.display)


async def test_journey_shows_the_failed_try_before_the_one_that_took_it(tmp_path):
    async with running_app(tmp_path, size=(200, 60)) as (app, pilot):
        lab = app.lab
        await _smtp1_down_and_mail_from_gmail(app)
        await until(pilot, lambda: lab.mta("smtp2.syr.edu").queue.entries)
        await lab.host_up("smtp1.syr.edu")
        lab.queue_flush()
        await until(pilot, lambda: len(app.journeys.deliveries) == 1)
        await pilot.press("5")
        await until(pilot, lambda: app.query_one("#deliveries", RowList).row_count == 1)
        await pilot.press("enter")
        record = app.query_one("#record", RichLog)
        port = lab.ports.smtp
        taken = f"mx.gmail.com: ✓ smtp2.syr.edu[127.0.0.2]:{port} delivered: 250"
        await until(pilot, lambda: taken in richlog_text(record))
        text = richlog_text(record)
        failed = f"mx.gmail.com: ✗ smtp1.syr.edu[127.0.0.1]:{port} refused: Connection refused"
        assert failed in text and text.index(failed) < text.index(taken)
        # smtp2's own hop: its refused try, then smtp1 took it once up
        assert f"smtp2.syr.edu: ✗ smtp1.syr.edu[127.0.0.1]:{port} refused: Connection refused" in text
        assert f"smtp2.syr.edu: ✓ smtp1.syr.edu[127.0.0.1]:{port} delivered: 250" in text
        assert "smtp: connect to" not in text          # the try's maillog line is not shown twice
