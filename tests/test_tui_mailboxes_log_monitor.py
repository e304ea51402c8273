"""The Mailboxes, Log and Monitor panels, fed by real mail."""

from __future__ import annotations

import re

from textual.widgets import Input, Log, Static

from maillab.base.events import Notice
from maillab.tui.panels.monitor import MonitorPanel
from maillab.tui.rowlist import RowList

from test_tui_support import course_session, in_thread, log_text, running_app, table_rows, until


def mailbox_row(table: RowList, address: str) -> list[str]:
    return next(r for r in table_rows(table) if r[0] == address)


async def test_mailboxes_count_messages_and_sizes(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("6")
        table = app.query_one("#mailboxes-table", RowList)
        await until(pilot, lambda: table.row_count == 8)
        assert mailbox_row(table, "mafudge@syr.edu")[:4] == ["mafudge@syr.edu", "Michael Fudge", "smtp1.syr.edu", "0"]
        assert not (tmp_path / "state" / "mail" / "gmail.com").exists()      # looking creates nothing...
        for _ in range(2):
            await in_thread(course_session, app.lab.ports.smtp)
        await in_thread(course_session, app.lab.ports.smtp, rcpt="postmaster@syr.edu")   # an alias of mafudge
        await until(pilot, lambda: mailbox_row(table, "mafudge@syr.edu")[3] == "3")
        row = mailbox_row(table, "mafudge@syr.edu")
        assert row[4] == "3" and row[5].endswith((" B", " KB")) and row[6] == "5"  # INBOX + Sent, Drafts, Trash, Junk (Date:, Message-ID: added: ~1.1 KB)
        assert "8 accounts, 3 messages" in str(app.query_one("#mailboxes-hint").render())
        inbox = tmp_path / "state" / "mail" / "syr.edu" / "mafudge"
        assert len(list((inbox / "new").iterdir())) == 3                   # ...and moves nothing to cur/


async def test_the_maillog_panel_filters(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        first = await in_thread(course_session, app.lab.ports.smtp)
        second = await in_thread(course_session, app.lab.ports.smtp, rcpt="tajorgen@syr.edu")
        await pilot.press("7")
        log = app.query_one("#maillog", Log)
        await until(pilot, lambda: f"{second}: removed" in log_text(log))
        assert "daemon started -- world default" in log_text(log)
        assert f"{first}: to=<mafudge@syr.edu>, relay=local" in log_text(log)
        await pilot.press("slash", *first.lower(), "enter")
        await until(pilot, lambda: second not in log_text(log))
        lines = log_text(log).splitlines()
        assert lines and all(first in line for line in lines)
        assert app.focused is log                       # Enter returns to the log
        await pilot.press("slash")
        app.query_one("#log-filter", Input).value = "status=sent  TAJORGEN"
        await pilot.press("escape")
        await until(pilot, lambda: first not in log_text(log))
        assert [line for line in log_text(log).splitlines()] == [
            line for line in log_text(log).splitlines() if "status=sent" in line and "tajorgen" in line]
        assert len(log_text(log).splitlines()) == 1
        # new lines are filtered too
        third = await in_thread(course_session, app.lab.ports.smtp, rcpt="tajorgen@syr.edu")
        await until(pilot, lambda: third in log_text(log))
        assert len(log_text(log).splitlines()) == 2


async def test_the_monitor_shows_traffic_as_sparklines(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("8")
        await in_thread(course_session, app.lab.ports.smtp)
        await in_thread(course_session, app.lab.ports.smtp, rcpt="nobody@syr.edu")       # bounced by the MDA
        await until(pilot, lambda: app.monitor.series["failed"].peak >= 1 and app.monitor.series["in"].peak >= 2, 15)
        assert app.monitor.series["connections"].peak >= 1
        assert app.monitor.series["out"].peak >= 1
        await until(pilot, lambda: app.monitor.series["disk"].latest > 0, 15)
        view = app.query_one("#metrics-view", Static)

        def line_of(label: str) -> str:
            return next(line for line in str(view.render()).splitlines() if line.startswith(f" {label}:"))

        await until(pilot, lambda: set(line_of("messages in")[40:]) - {"▁"})     # a bar above the floor
        assert "peak" in line_of("messages in")[:40]
        assert set(line_of("delivery failures")[40:]) <= set("▁▂▃▄▅▆▇█")
        assert "temporary failures: will be retried" in str(view.render())


async def test_the_monitor_never_shows_a_peak_below_the_current_value(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("8")
        panel = app.query_one(MonitorPanel)
        app.monitor.tick(0, 400_000, 0)             # 0.4 MB on disk: was shown "(peak 0)"
        app.monitor.tick(0, 400_000, 123_456)       # a flood held back: the peak was cut off
        panel.tick()
        lines = [line for line in str(app.query_one("#metrics-view", Static).render()).splitlines()
                 if "(peak" in line]
        assert len(lines) == len(app.monitor.series)
        for line in lines:
            value, peak = re.search(r": ([\d.]+)\S* \(peak ([\d.]+)\)", line[:MonitorPanel.LABEL]).groups()
            assert float(value) <= float(peak), line
        disk = next(line for line in lines if line.startswith(" spool + Maildirs:"))
        assert "0.4MB (peak 0.4)" in disk
        assert "(peak 123456)" in next(line for line in lines if "123456/s" in line)


async def test_a_burst_of_log_lines_is_summarised_not_drawn(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("7")
        log = app.query_one("#maillog", Log)
        for i in range(1000):
            app.lab.bus.publish(Notice(app.lab.clock.now(), "smtp1.syr.edu", "test", f"burst line {i}"))
        await until(pilot, lambda: "burst line 999" in log_text(log))
        text = log_text(log)
        assert "more lines in this burst; the maillog file has them all" in text
        assert "burst line 699" not in text and "burst line 700" in text
