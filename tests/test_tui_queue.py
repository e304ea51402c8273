"""The Queue panel against a real outage: deferred mail, hold/release/requeue/flush/delete, the lab clock."""

from __future__ import annotations


from maillab.tui.forms import ConfirmScreen, FormScreen
from maillab.tui.rowlist import RowList

from test_tui_support import course_session, in_thread, running_app, table_rows, until


def row_of(table: RowList, qid: str) -> list[str] | None:
    return next((r for r in table_rows(table) if r[0] == qid), None)


async def test_deferred_mail_and_every_queue_action(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        lab = app.lab
        await lab.host_down("smtp1.syr.edu")
        # the backup MX takes the mail and keeps it: smtp1 refuses connections
        qid = await in_thread(course_session, lab.ports.smtp, "127.0.0.2")
        await pilot.press("2")
        table = app.query_one("#queue-table", RowList)
        await until(pilot, lambda: (row_of(table, qid) or [""] * 3)[2] == "deferred")
        row = row_of(table, qid)
        assert row[1] == "smtp2.syr.edu" and row[3] == "mafudge@syr.edu" and row[4] == "1"
        assert row[5] in ("in 5m00s", "in 4m59s", "in 4m58s") and "Connection refused" in row[6]
        assert "1 message queued on all hosts" in str(app.query_one("#queue-status").render())

        await pilot.press("h")
        await until(pilot, lambda: row_of(table, qid)[2] == "hold")
        await pilot.press("r")
        await until(pilot, lambda: row_of(table, qid)[4] == "2")          # released: tried again at once
        await pilot.press("R")
        await until(pilot, lambda: row_of(table, qid)[4] == "3")          # requeued: tried again at once

        # the lab clock: faster, slower, and a jump that makes the retry due
        await pilot.press("greater_than_sign")
        assert lab.clock.speed == 10
        await pilot.press("greater_than_sign", "less_than_sign", "less_than_sign")
        assert lab.clock.speed == 1
        before = lab.clock.now()
        due = next(r["next_attempt"] for e in lab.queue_listing() if e["id"] == qid
                   for r in e["recipients"])
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        await pilot.press("ctrl+a", "ctrl+k", *"2h", "enter")            # home, clear the field, type
        await until(pilot, lambda: lab.clock.now() - before > 7000)
        assert lab.clock.now() - before < 7300
        # the retry fell due, and the attempts the jump spans are counted as the schedule makes them
        counted = 3 + lab.ctx.retry.slots_until(3, due, before + 7200)
        assert counted > 4
        await until(pilot, lambda: row_of(table, qid)[4] == str(counted))
        assert "scheduled attempts skipped" in row_of(table, qid)[6]

        # smtp1 is back: flush delivers it
        await lab.host_up("smtp1.syr.edu")
        await pilot.press("x")
        await until(pilot, lambda: row_of(table, qid) is None)
        assert row_of(table, qid) is None


async def test_delete_asks_first_and_host_filter_and_pages(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        lab = app.lab
        await lab.host_down("smtp1.syr.edu")
        qids = [await in_thread(course_session, lab.ports.smtp, "127.0.0.2") for _ in range(3)]
        await pilot.press("2")
        table = app.query_one("#queue-table", RowList)
        await until(pilot, lambda: all(row_of(table, q) for q in qids))
        table.move_cursor(row=0)
        victim = table_rows(table)[0][0]
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        assert row_of(table, victim) is not None
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: row_of(table, victim) is None)
        assert all(e["id"] != victim for e in lab.queue_listing())
        status = app.query_one("#queue-status")
        await pilot.press("H")                                             # smtp1.syr.edu: nothing
        await until(pilot, lambda: "on smtp1.syr.edu" in str(status.render()))
        assert table.row_count == 0
        await pilot.press("H")                                             # smtp2.syr.edu: two
        await until(pilot, lambda: table.row_count == 2)
        await pilot.press("right_square_bracket")                         # one page only: stays
        assert "page 1/1" in str(status.render())


async def test_queue_pages_cost_only_the_page(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        lab = app.lab
        await lab.host_down("smtp1.syr.edu")
        qids = [await in_thread(course_session, lab.ports.smtp, "127.0.0.2") for _ in range(5)]
        await until(pilot, lambda: lab.queue_depth() == 5)
        total, rows = lab.queue_page(0, 2)
        assert total == 5 and [r["id"] for r in rows] == qids[:2]
        total, rows = lab.queue_page(4, 2)
        assert [r["id"] for r in rows] == qids[4:]
        assert lab.queue_page(0, 10, "smtp1.syr.edu") == (0, [])
        assert rows[0]["host"] == "smtp2.syr.edu" and rows[0]["recipients"][0]["address"] == "mafudge@syr.edu"
