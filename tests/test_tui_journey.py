"""The Journey panel: a relayed message's Received hops beside the lab's record of its queue IDs,
seen live or, for mail handled before the TUI started, read back from the maillog."""

from __future__ import annotations

import re

from textual.widgets import RichLog

from maillab.tui.rowlist import RowList

from conftest import wait_for
from test_tui_support import in_thread, richlog_text, running_app, submit, table_rows, until


async def test_a_relayed_message_shows_two_hops_and_what_the_lab_saw(tmp_path):
    async with running_app(tmp_path, size=(180, 50)) as (app, pilot):
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission)      # santa -> mafudge, via his MTA
        await until(pilot, lambda: len(app.journeys.deliveries) == 1)
        final = app.journeys.deliveries[0]
        await pilot.press("5")
        table = app.query_one("#deliveries", RowList)
        await until(pilot, lambda: table.row_count == 1)
        assert table_rows(table)[0][1:] == ["mafudge@syr.edu", final.queue_id, "smtp1.syr.edu"]
        await pilot.press("enter")
        hops = app.query_one("#hops", RichLog)
        await until(pilot, lambda: "2 hops" in richlog_text(hops))
        text = richlog_text(hops)
        first, second = text.split("\n2. ")
        assert "1. " in first and "mail.northpole.org" in first.splitlines()[1]
        assert "from smtp1.syr.edu [127.0.0.1] HELO workshop.northpole.org" in first     # PTR of 127.0.0.1
        assert "ESMTPSA · TLS" in first and "logged in (AUTH)" in first     # submitted with STARTTLS
        assert re.search(r"^\d\d:\d\d:\d\d smtp1\.syr\.edu  \+\d+s$", second.splitlines()[0])
        assert "from mail.northpole.org [127.0.0.3] HELO mail.northpole.org" in second
        assert f"ESMTPS · TLS · id {final.queue_id}" in second     # the hop between MTAs: STARTTLS (may)
        record = richlog_text(app.query_one("#record", RichLog))
        first_qid = next(q for q, r in app.journeys.records.items() if r.host == "mail.northpole.org")
        assert f"── {first_qid} at mail.northpole.org (seen live)" in record
        assert "from the maillog" not in record
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
        await until(pilot, lambda: app.query_one("#deliveries", RowList).row_count == 1)
        await app.query_one("#journey-panel").run_action("show")
        assert "no longer in the mailbox" in richlog_text(app.query_one("#hops", RichLog))


async def test_mail_relayed_by_an_earlier_serve_shows_its_record_from_the_maillog(served, tmp_path):
    """`maillab serve` relays a message and stops; a fresh TUI on the same state folder lists the
    delivery and shows each hop's maillog lines: queued, its connection, DNS, relay, status=sent."""
    serve = served(tmp_path / "state")
    submit("127.0.0.3", serve.ports.submission)                 # santa -> mafudge, via his MTA
    assert wait_for(lambda: "relay=local" in serve.output(), 15)
    assert serve.stop() == 0
    lines = serve.output().splitlines()
    relayed = next(x for x in lines if "relay=smtp1.syr.edu[127.0.0.1]" in x and "status=sent" in x)
    final = next(x for x in lines if "relay=local" in x and "status=sent" in x)
    first_qid = re.search(r"\]: ([0-9A-Z]+): to=", relayed).group(1)
    final_qid = re.search(r"\]: ([0-9A-Z]+): to=", final).group(1)
    assert f"queued as {final_qid}" in relayed

    async with running_app(tmp_path, size=(180, 50)) as (app, pilot):
        assert first_qid not in app.journeys.records                  # nothing of it was seen live
        await pilot.press("5")
        table = app.query_one("#deliveries", RowList)
        await until(pilot, lambda: table.row_count == 1)
        assert table_rows(table)[0][1:] == ["mafudge@syr.edu", final_qid, "smtp1.syr.edu"]
        await pilot.press("enter")
        hops = app.query_one("#hops", RichLog)
        await until(pilot, lambda: "2 hops" in richlog_text(hops))
        assert f"id {first_qid}" in richlog_text(hops) and f"id {final_qid}" in richlog_text(hops)
        record_log = app.query_one("#record", RichLog)
        await until(pilot, lambda: "From the maillog:" in richlog_text(record_log))
        record = richlog_text(record_log).replace("\n", "")            # long rows are wrapped
        assert "(seen live" not in record
        first, second = record.split(f"── {final_qid} at smtp1.syr.edu (from the maillog)")
        assert f"── {first_qid} at mail.northpole.org (from the maillog)" in first
        rows = re.findall(r"\d\d:\d\d:\d\d (.*?)(?=\d\d:\d\d:\d\d |   no dialogue|$)", first)
        assert [row.split(":")[0] for row in rows] == [        # in the maillog's order
            "DNS 1.0.0.127.in-addr.arpa PTR -> NOERROR, 1 answer",   # who is connecting?
            "mail.northpole.org submission", "queued at mail.northpole.org",
            "mail.northpole.org submission",                             # sasl_username= (issue 15)
            "DNS syr.edu MX -> NOERROR, 2 answers",
            "DNS smtp1.syr.edu A -> NOERROR, 1 answer", "mail.northpole.org", "mail.northpole.org"]
        assert "mail.northpole.org submission: connect from smtp1.syr.edu[127.0.0.1]" in first
        assert "queued at mail.northpole.org: from <santa@northpole.org> to mafudge@syr.edu" in first
        assert ("mail.northpole.org: sent to <mafudge@syr.edu> via smtp1.syr.edu[127.0.0.1]:" in first
                and f"(2.0.0 250 2.0.0 Ok: queued as {final_qid})" in first)
        assert "smtp1.syr.edu smtpd: connect from mail.northpole.org[127.0.0.3] (smtp1.syr.edu/smtp/" in second
        assert "DNS 3.0.0.127.in-addr.arpa PTR -> NOERROR, 1 answer" in second
        assert "smtp1.syr.edu: sent to <mafudge@syr.edu> via local (2.0.0 delivered to maildir)" in second
        assert "smtp1.syr.edu: removed from the queue" in second
        assert "no dialogue: the maillog does not keep one" in second
        assert "From the maillog: found 2 of 2 queue IDs; searched the last" in second
        assert "DNS lines name no queue ID" in second


async def test_panels_may_ask_which_panel_is_shown_while_the_app_mounts(tmp_path, monkeypatch):
    """Children mount before the app's on_mount: the panel shown must be known by then."""
    from maillab.tui.panels.journey import JourneyPanel
    seen: list[object] = []
    mounted = JourneyPanel.on_mount

    def asking(self: JourneyPanel) -> None:
        seen.append(self.app.active_panel)        # what _load_past asks when it finishes early
        mounted(self)
    monkeypatch.setattr(JourneyPanel, "on_mount", asking)
    async with running_app(tmp_path) as (app, _pilot):
        assert seen == [app.panels[0]]


async def test_a_restart_on_a_used_state_folder_loads_past_deliveries_without_error(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission, rcpt="santa@northpole.org")
        await until(pilot, lambda: len(app.journeys.deliveries) == 1)
    async with running_app(tmp_path) as (app, pilot):      # at the end: no panel error was logged
        await until(pilot, lambda: len(app.journeys.deliveries) == 1)
        assert not [n for n in app._notifications if n.severity == "error"]
        await pilot.press("5")
        await until(pilot, lambda: app.query_one("#deliveries", RowList).row_count == 1)
