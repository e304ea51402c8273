"""Floods: thousands of sessions and a queue of thousands keep the TUI bounded and responsive."""

from __future__ import annotations

import time
from unittest import mock

from textual.widgets import TabbedContent

from maillab.base.events import SessionClosed, SessionLine, SessionOpened
from maillab.base.fsutil import finish
from maillab.queue.records import Entry, Recipient
from maillab.queue.spool import Spool, new_queue_id
from maillab.tui.panels.dialogues import TABLE_ROWS
from maillab.tui.panels.queue import PAGE
from maillab.tui.rowlist import RowList

from test_tui_support import running_app, table_rows, until


async def test_thousands_of_sessions_stay_bounded(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        bus, clock = app.lab.bus, app.lab.clock
        for burst in range(6):
            for i in range(burst * 500, (burst + 1) * 500):
                sid = f"smtp1.syr.edu/smtp/flood{i}"
                bus.publish(SessionOpened(clock.now(), sid, "smtp", "smtp1.syr.edu", f"127.0.0.9:{i}"))
                for line in ("220 smtp1.syr.edu ESMTP maillab", "HELO flood", "250 smtp1.syr.edu", "QUIT",
                             "221 2.0.0 Bye"):
                    bus.publish(SessionLine(clock.now(), sid, "smtp1.syr.edu",
                                            "client" if line[0].isalpha() else "server", line))
                bus.publish(SessionClosed(clock.now(), sid, "smtp1.syr.edu", "closed"))
            await pilot.pause(0.1)
        table = app.query_one("#sessions", RowList)
        await until(pilot, lambda: app.sessions.newest().id.endswith("flood2999") and
                    str(table.get_row_at(table.row_count - 1)[4]).startswith("127.0.0.9:2999"))
        assert len(app.sessions.sessions) <= app.sessions.max_sessions
        assert table.row_count <= TABLE_ROWS
        assert app.sessions.total_opened == 3000
        started = time.monotonic()
        await pilot.press("8")                              # and it still answers keys
        await until(pilot, lambda: app.query_one(TabbedContent).active == "monitor")
        assert time.monotonic() - started < 3
        assert app.monitor.series["connections"].peak > 100 or app.monitor.dropped


async def test_a_queue_of_thousands_is_paged(tmp_path):
    state = tmp_path / "state"
    spool = Spool(state / "spool" / "smtp2.syr.edu")
    now = time.time()
    with mock.patch("os.fsync"):                           # the lab's own spool format, written fast
        for i in range(3000):
            entry = Entry(new_queue_id(now - 3000 + i), "santa@northpole.org", now - 600, 100, "")
            rcpt = Recipient("mafudge@syr.edu", attempts=1, next_attempt=now + 3600, last_attempt=now - 300,
                             last_result="4.4.1 connect to 127.0.0.1:2525: Connection refused")
            entry.recipients = {rcpt.address: rcpt}
            finish(spool.accept(entry, b"Subject: queued\r\n\r\nwaiting\r\n"))
            spool.record(entry, [rcpt])
    spool.close()
    async with running_app(tmp_path) as (app, pilot):
        assert app.lab.queue_depth() == 3000
        await pilot.press("2")
        table = app.query_one("#queue-table", RowList)
        status = app.query_one("#queue-status")
        await until(pilot, lambda: table.row_count == PAGE)
        assert "3000 messages queued on all hosts · page 1/30" in str(status.render())
        first = table_rows(table)[0][0]
        started = time.monotonic()
        app.query_one("#queue-panel").reload()
        assert time.monotonic() - started < 0.5             # a page costs a page, not the queue
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "page 2/30" in str(status.render()))
        assert table.row_count == PAGE and first not in {r[0] for r in table_rows(table)}
        assert all(r[2] == "deferred" and r[5].startswith("in ") for r in table_rows(table))
