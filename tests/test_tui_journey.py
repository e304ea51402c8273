"""The Journey panel: a relayed message's Received hops beside the lab's record of its queue IDs."""

from __future__ import annotations

import re

from textual.widgets import DataTable, RichLog

from test_tui_support import in_thread, richlog_text, running_app, submit, table_rows, until


async def test_a_relayed_message_shows_two_hops_and_what_the_lab_saw(tmp_path):
    async with running_app(tmp_path, size=(180, 50)) as (app, pilot):
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission)      # santa -> mafudge, via his MTA
        await until(pilot, lambda: len(app.journeys.deliveries) == 1)
        final = app.journeys.deliveries[0]
        await pilot.press("5")
        table = app.query_one("#deliveries", DataTable)
        await until(pilot, lambda: table.row_count == 1)
        assert table_rows(table)[0][1:] == ["mafudge@syr.edu", final.queue_id, "smtp1.syr.edu"]
        await pilot.press("enter")
        hops = app.query_one("#hops", RichLog)
        await until(pilot, lambda: "2 hops" in richlog_text(hops))
        text = richlog_text(hops)
        first, second = text.split("\n2. ")
        assert "1. " in first and "mail.northpole.org" in first.splitlines()[1]
        assert "from smtp1.syr.edu [127.0.0.1] HELO workshop.northpole.org" in first     # PTR of 127.0.0.1
        assert "ESMTPA · no TLS" in first and "logged in (AUTH)" in first
        assert re.search(r"^\d\d:\d\d:\d\d smtp1\.syr\.edu  \+\d+s$", second.splitlines()[0])
        assert "from mail.northpole.org [127.0.0.3] HELO mail.northpole.org" in second
        assert f"ESMTP · no TLS: readable on the wire · id {final.queue_id}" in second
        record = richlog_text(app.query_one("#record", RichLog))
        first_qid = next(q for q, r in app.journeys.records.items() if r.host == "mail.northpole.org")
        assert f"── {first_qid} at mail.northpole.org" in record
        assert "DNS syr.edu MX -> NOERROR, 2 answers" in record
        assert "sent to <mafudge@syr.edu> via" in record and "smtp1.syr.edu[127.0.0.1]" in record
        assert f"── {final.queue_id} at smtp1.syr.edu" in record
        assert "sent to <mafudge@syr.edu> via local" in record
        assert "received in session mail.northpole.org/submission/" in record    # the dialogues of each hop
        assert "received in session smtp1.syr.edu/smtp/" in record and "/smtp-out/" not in record
        assert "C: MAIL FROM:<santa@northpole.org> SIZE=" in record
        assert f"S: 250 2.0.0 Ok: queued as {final.queue_id}" in record


async def test_a_message_no_longer_in_the_mailbox(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission, rcpt="santa@northpole.org")
        await until(pilot, lambda: len(app.journeys.deliveries) == 1)
        for path in (tmp_path / "state" / "mail" / "northpole.org" / "santa" / "new").iterdir():
            path.unlink()                                                     # a POP3 client took it
        await pilot.press("5")
        await until(pilot, lambda: app.query_one("#deliveries", DataTable).row_count == 1)
        await app.query_one("#journey-panel").run_action("show")
        assert "no longer in the mailbox" in richlog_text(app.query_one("#hops", RichLog))
