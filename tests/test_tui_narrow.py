"""Issue 13: at 120x40 and at 80x24 every panel's table shows its key columns whole.

A table wider than its panel gives up first the columns it may do without,
then cuts its long free-text column (the Queue's reason, cause first) with an
ellipsis; it never cuts the queue ID, host, state or recipient off the edge.
Checked on the screen as a user reads it (Textual's own screenshot).
"""

from __future__ import annotations

import pytest

from maillab.tui.rowlist import RowList, fit

from test_tui_support import course_session, in_thread, running_app, screen_text, submit, table_rows, until


def row_with(text: str, needle: str) -> str:
    return next((line for line in text.splitlines() if needle in line), "")


def test_fit_gives_up_in_the_order_given():
    widths = [12, 13, 8, 15, 8, 12, 60, 19]
    order = [(7, 0), (6, 24), (4, 0), (5, 0), (6, 10)]
    assert fit(widths, 200, order) == widths                          # room enough: nothing given up
    assert fit(widths, 120, order) == [12, 13, 8, 15, 8, 12, 39, 0]   # the sender goes, the reason is cut
    assert fit(widths, 80, order) == [12, 13, 8, 15, 0, 0, 23, 0]     # then the counts go
    assert fit(widths, 40, order)[:4] == widths[:4]                   # key columns are never cut


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_every_panel_shows_its_key_columns(tmp_path, size):
    async with running_app(tmp_path, size=size) as (app, pilot):
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission)
        await until(pilot, lambda: app.journeys.deliveries)
        await app.lab.host_down("smtp1.syr.edu")
        qid = await in_thread(course_session, app.lab.ports.smtp, "127.0.0.2")

        await pilot.press("2")
        table = app.query_one("#queue-table", RowList)
        await until(pilot, lambda: any(r[0] == qid and r[2] == "deferred" for r in table_rows(table)))
        await pilot.pause(0.2)
        row = row_with(screen_text(app), qid)
        for cell in (qid, "smtp2.syr.edu", "deferred", "mafudge@syr.edu", "4.4.1 Connection refu"):
            assert cell in row, (cell, row)
        if size[0] >= 120:
            assert "4.4.1 Connection refused (smtp1.syr.ed" in row
        assert len(row.rstrip()) <= size[0]

        await pilot.press("1")
        await pilot.pause(0.2)
        row = next((line for line in screen_text(app).splitlines() if " smtp " in line and "smtp2.syr.edu" in line), "")
        for cell in ("smtp2.syr.edu", "closed", "smtp1.syr.edu [127.0.0.1]"):     # host, state, peer
            assert cell in row, (cell, row)

        await pilot.press("3")
        await pilot.pause(0.2)
        row = row_with(screen_text(app), "smtp1.syr.edu ")
        for cell in ("127.0.0.1", "down"):
            assert cell in row, (cell, row)

        await pilot.press("4")
        await pilot.pause(0.2)
        row = row_with(screen_text(app), " MX ")
        assert "syr.edu" in row and "smtp1.syr.edu" in row, row

        await pilot.press("5")
        await until(pilot, lambda: app.query_one("#deliveries", RowList).row_count)
        await pilot.pause(0.2)
        delivery = app.journeys.deliveries[-1]
        row = row_with(screen_text(app), delivery.queue_id)
        assert delivery.recipient in row, row

        await pilot.press("6")
        await pilot.pause(0.2)
        mailboxes = app.query_one("#mailboxes-table", RowList)
        await until(pilot, lambda: any(r[0] == "mafudge@syr.edu" and r[3] == "1" for r in table_rows(mailboxes)))
        await pilot.pause(0.2)
        row = next((line for line in screen_text(app).splitlines() if line.startswith(" mafudge@syr.edu ")), "")
        assert "smtp1.syr.edu" in row and "1" in row.split(), row         # its host and its message
