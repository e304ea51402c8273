"""The Mail screen, driven as a student does the course's send-and-read exercise without leaving the TUI:
log in as santa, compose to mafudge with an attachment and a Bcc, review (envelope beside header, the
MX by DNS), send, switch identity, see it arrive by IDLE, open it (Received chain, badges), reply,
see the reply arrive at santa, find the sent copy in Sent."""

from __future__ import annotations

import email
import email.policy

from textual.widgets import Input, Static, TextArea

from maillab.mua.identity import find
from maillab.tui.mail.dialogs import ComposeScreen, IdentityScreen, ReviewScreen
from maillab.tui.mail.screen import MailScreen
from maillab.tui.mail.xray import XRay
from maillab.tui.rowlist import RowList

from conftest import maildir_messages
from test_tui_support import running_app, table_rows, until


def static_text(widget: Static) -> str:
    return str(widget.render())


async def log_in(app, pilot, address: str) -> MailScreen:
    screen = app.screen
    await pilot.press("i")
    await until(pilot, lambda: isinstance(app.screen, IdentityScreen))
    picker = app.screen
    picker.dismiss(find(app.lab.world, address))
    await until(pilot, lambda: isinstance(app.screen, MailScreen) and screen.folder == "INBOX"
                and screen.client is not None and screen.identity.address == address, 15)
    return screen


async def test_the_send_and_read_exercise_inside_the_tui(tmp_path):
    photo = tmp_path / "sled.png"
    photo.write_bytes(bytes(range(256)) * 8)
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, IdentityScreen))
        app.screen.dismiss(find(app.lab.world, "santa@northpole.org"))
        await until(pilot, lambda: isinstance(app.screen, MailScreen) and app.screen.folder == "INBOX", 15)
        mail: MailScreen = app.screen
        xray = mail.query_one(XRay)
        assert any(line.startswith("C: M0001 STARTTLS") for line in xray.lines_seen)
        assert any('LOGIN "santa@northpole.org" ***' in line for line in xray.lines_seen)
        assert not any('"maillab"' in line for line in xray.lines_seen)       # the password never shows
        assert any(line.startswith("C: ") and " SELECT \"INBOX\"" in line for line in xray.lines_seen)
        folders = [row[0] for row in table_rows(mail.query_one("#mail-folders", RowList))]
        assert {"INBOX", "Sent", "Drafts"} <= set(folders)

        # compose, with an attachment and a Bcc
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        compose = app.screen
        compose.query_one("#compose-to", Input).value = "Michael Fudge <mafudge@syr.edu>"
        compose.query_one("#compose-bcc", Input).value = "tajorgen@syr.edu"
        compose.query_one("#compose-subject", Input).value = "Wunschzettel ❄"
        compose.query_one("#compose-attach", Input).value = str(photo)
        compose.query_one("#compose-body", TextArea).text = "Ho ho ho!\n"
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), 15)
        review = app.screen
        envelope = static_text(review.query_one("#review-envelope", Static))
        header = static_text(review.query_one("#review-header", Static))
        routes = static_text(review.query_one("#review-routes", Static))
        assert "MAIL FROM:<santa@northpole.org>" in envelope
        assert "RCPT TO:<mafudge@syr.edu>" in envelope and "RCPT TO:<tajorgen@syr.edu>   ← Bcc" in envelope
        assert "To: Michael Fudge <mafudge@syr.edu>" in header and "tajorgen@syr.edu stay hidden" in header
        assert "Bcc:" not in header
        assert "syr.edu. MX 10 smtp1.syr.edu." in routes and "→ smtp1.syr.edu [127.0.0.1]" in routes
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MailScreen) and mail.status.startswith("sent to 2"), 20)
        assert any(line.startswith("C: AUTH PLAIN") for line in xray.lines_seen)
        assert any("APPEND \"Sent\"" in line for line in xray.lines_seen)

        # the Bcc recipient's copy has no Bcc header; the attachment round-trips
        copies = await until(pilot, lambda: maildir_messages(app.lab.state.root, "tajorgen@syr.edu"), 20)
        hidden = copies[0].as_bytes()
        assert b"Bcc" not in hidden.split(b"\n\n")[0]

        # switch identity: mafudge's INBOX shows it, opened with its chain and badges
        await log_in(app, pilot, "mafudge@syr.edu")
        listing = mail.query_one("#mail-list", RowList)
        await until(pilot, lambda: any("Wunschzettel" in row[3] for row in table_rows(listing)), 20)
        row = next(r for r in table_rows(listing) if "Wunschzettel" in r[3])
        assert row[0].startswith("N") and row[1] == "TLS auth spf=pass dkim=pass"
        listing.focus()
        listing.move_cursor(row=[r[3] for r in table_rows(listing)].index(row[3]))
        await pilot.press("enter")
        reader = mail.query_one("#mail-reader", Static)
        await until(pilot, lambda: "Ho ho ho!" in static_text(reader), 15)
        shown = static_text(reader)
        assert "over TLS on every hop" in shown and "sender authenticated at submission (ESMTPSA)" in shown
        assert "SPF pass, DKIM pass (said smtp1.syr.edu)" in shown
        assert "Received, hop by hop:" in shown and "→ mail.northpole.org with ESMTPSA" in shown
        assert "→ smtp1.syr.edu with ESMTPS" in shown
        assert '"sled.png"' in shown and "Subject: Wunschzettel ❄" in shown
        raw = mail.current[1]
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert [p.get_content() for p in parsed.iter_attachments()] == [photo.read_bytes()]
        await until(pilot, lambda: not any(r[0].startswith("N") for r in table_rows(listing) if "Wunsch" in r[3]))

        # reply; santa sees it arrive (IDLE) and it is in mafudge's Sent
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        reply_screen = app.screen
        assert reply_screen.query_one("#compose-to", Input).value == "Santa Claus <santa@northpole.org>"
        assert reply_screen.query_one("#compose-subject", Input).value == "Re: Wunschzettel ❄"
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, ReviewScreen), 15)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MailScreen) and mail.status.startswith("sent to 1"), 20)
        await log_in(app, pilot, "santa@northpole.org")
        await until(pilot, lambda: any(r[3] == "Re: Wunschzettel ❄" for r in table_rows(listing)), 20)
        santa_inbox = maildir_messages(app.lab.state.root, "santa@northpole.org")
        assert santa_inbox[0]["In-Reply-To"] and santa_inbox[0]["References"]
        await log_in(app, pilot, "mafudge@syr.edu")
        folders = mail.query_one("#mail-folders", RowList)
        folders.focus()
        folders.move_cursor(row=[r[0] for r in table_rows(folders)].index("Sent"))
        await pilot.press("enter")
        await until(pilot, lambda: mail.folder == "Sent" and any(r[3] == "Re: Wunschzettel ❄"
                                                                 for r in table_rows(listing)), 15)


async def test_new_mail_appears_by_idle_while_the_screen_is_open(tmp_path):
    from test_tui_support import in_thread, submit
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, IdentityScreen))
        app.screen.dismiss(find(app.lab.world, "mafudge@syr.edu"))
        await until(pilot, lambda: isinstance(app.screen, MailScreen) and app.screen.folder == "INBOX", 15)
        mail = app.screen
        await until(pilot, lambda: any(line.endswith(" IDLE") for line in mail.query_one(XRay).lines_seen))
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission)
        listing = mail.query_one("#mail-list", RowList)
        await until(pilot, lambda: listing.row_count == 1, 20)
        assert any(line.startswith("S: * 1 EXISTS") for line in mail.query_one(XRay).lines_seen)
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission, subject="second")
        await until(pilot, lambda: listing.row_count == 2, 20)
        assert table_rows(listing)[0][3] == "second"                  # on top, without a new layout
        assert any(line.endswith(f"UID SEARCH UID {max(mail.summaries)}:*")        # only what is new
                   for line in mail.query_one(XRay).lines_seen)


async def test_pop3_mode_downloads_and_deletes_on_the_server_only_when_told(tmp_path):
    from test_tui_support import in_thread, submit
    async with running_app(tmp_path) as (app, pilot):
        for subject in ("first", "second"):
            await in_thread(submit, "127.0.0.3", app.lab.ports.submission, subject=subject)
        await until(pilot, lambda: len(maildir_messages(app.lab.state.root, "mafudge@syr.edu")) == 2, 20)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, IdentityScreen))
        app.screen.dismiss(find(app.lab.world, "mafudge@syr.edu"))
        await until(pilot, lambda: isinstance(app.screen, MailScreen) and app.screen.folder == "INBOX", 15)
        mail = app.screen
        listing = mail.query_one("#mail-list", RowList)
        await until(pilot, lambda: listing.row_count == 2)
        await pilot.press("p")
        await until(pilot, lambda: mail.pop is not None and "messages on the server" in mail.status, 15)
        assert listing.row_count == 2
        xray = mail.query_one(XRay)
        assert "C: STLS" in xray.lines_seen and "C: PASS ***" in xray.lines_seen
        assert any(line.startswith("C: TOP 1 0") for line in xray.lines_seen)
        listing.focus()
        row = [r[3] for r in table_rows(listing)].index("first")
        number = listing.keys()[row]            # the server's message number (its maildrop's order)
        listing.move_cursor(row=row)
        await pilot.press("enter")
        reader = mail.query_one("#mail-reader", Static)
        await until(pilot, lambda: "Subject: first" in static_text(reader) and "Hi." in static_text(reader), 15)
        assert f"C: RETR {number}" in xray.lines_seen
        # reading deleted nothing; DELE marks, and only QUIT deletes
        assert len(maildir_messages(app.lab.state.root, "mafudge@syr.edu")) == 2
        await pilot.press("d")
        await until(pilot, lambda: f"C: DELE {number}" in xray.lines_seen)
        assert len(maildir_messages(app.lab.state.root, "mafudge@syr.edu")) == 2
        await pilot.press("s")          # flags are IMAP's
        await until(pilot, lambda: any("POP3 has no such thing" in str(n.message) for n in app._notifications))
        await pilot.press("x")
        await until(pilot, lambda: "C: QUIT" in xray.lines_seen and listing.row_count == 1, 15)
        assert [m["Subject"] for m in maildir_messages(app.lab.state.root, "mafudge@syr.edu")] == ["second"]
        await pilot.press("p")          # back to IMAP: the server kept what POP3 did not delete
        await until(pilot, lambda: mail.client is not None and mail.pop is None and listing.row_count == 1, 15)


async def test_golden_mail_screen_at_80x24_and_120x40(tmp_path):
    from test_tui_golden import check, settled_grid
    for width, height in ((80, 24), (120, 40)):
        async with running_app(tmp_path / f"{width}", size=(width, height)) as (app, pilot):
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, IdentityScreen))
            app.screen.dismiss(find(app.lab.world, "santa@northpole.org"))
            await until(pilot, lambda: isinstance(app.screen, MailScreen) and app.screen.folder == "INBOX", 15)
            mail = app.screen
            await until(pilot, lambda: any(line.endswith(" IDLE") for line in mail.query_one(XRay).lines_seen))
            check(f"mail-{width}x{height}", await settled_grid(pilot))
            await pilot.press("question_mark")
            await until(pilot, lambda: "The Mail screen" in str(app.screen.query_one("Markdown").source)
                        if app.screen is not mail else False)


def _deliver(port: int, subject: str, message_id: str, references: str = "") -> None:
    import smtplib
    import ssl
    extra = f"References: {references}\r\nIn-Reply-To: {references.split()[-1]}\r\n" if references else ""
    with smtplib.SMTP("127.0.0.3", port, timeout=10) as smtp:
        smtp.starttls(context=ssl._create_unverified_context())   # the TUI is under test, not the certificate
        smtp.login("santa@northpole.org", "maillab")
        smtp.sendmail("santa@northpole.org", ["mafudge@syr.edu"],
                      f"From: <santa@northpole.org>\r\nTo: <mafudge@syr.edu>\r\nSubject: {subject}\r\n"
                      f"Message-ID: {message_id}\r\n{extra}\r\nHi.\r\n")


async def open_as(app, pilot, address: str) -> MailScreen:
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, IdentityScreen))
    app.screen.dismiss(find(app.lab.world, address))
    await until(pilot, lambda: isinstance(app.screen, MailScreen) and app.screen.folder == "INBOX", 15)
    return app.screen


async def test_the_list_shows_threads_by_references_and_t_makes_it_flat(tmp_path):
    from test_tui_support import in_thread
    async with running_app(tmp_path) as (app, pilot):
        port = app.lab.ports.submission
        await in_thread(_deliver, port, "sleigh plans", "<plans@northpole.org>")
        await until(pilot, lambda: len(maildir_messages(app.lab.state.root, "mafudge@syr.edu")) == 1, 20)
        await in_thread(_deliver, port, "cookies", "<cookies@northpole.org>")
        await until(pilot, lambda: len(maildir_messages(app.lab.state.root, "mafudge@syr.edu")) == 2, 20)
        await in_thread(_deliver, port, "Re: sleigh plans", "<re1@northpole.org>", "<plans@northpole.org>")
        await until(pilot, lambda: len(maildir_messages(app.lab.state.root, "mafudge@syr.edu")) == 3, 20)
        await in_thread(_deliver, port, "Re: Re: sleigh plans", "<re2@northpole.org>",
                        "<plans@northpole.org> <re1@northpole.org>")
        await until(pilot, lambda: len(maildir_messages(app.lab.state.root, "mafudge@syr.edu")) == 4, 20)
        mail = await open_as(app, pilot, "mafudge@syr.edu")
        listing = mail.query_one("#mail-list", RowList)
        await until(pilot, lambda: listing.row_count == 4, 15)
        assert [r[3] for r in table_rows(listing)] == [
            "sleigh plans", "└ Re: sleigh plans", "  └ Re: Re: sleigh plans", "cookies"]
        await pilot.press("t")
        await until(pilot, lambda: [r[3] for r in table_rows(listing)][0] == "Re: Re: sleigh plans")
        assert [r[3] for r in table_rows(listing)] == [
            "Re: Re: sleigh plans", "Re: sleigh plans", "cookies", "sleigh plans"]
        assert "flat" in mail.status


async def test_a_draft_is_saved_in_drafts_with_the_draft_flag_and_format_flowed_when_asked(tmp_path):
    from textual.widgets import Checkbox
    async with running_app(tmp_path) as (app, pilot):
        mail = await open_as(app, pilot, "santa@northpole.org")
        await until(pilot, lambda: mail.client is not None)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ComposeScreen))
        compose = app.screen
        compose.query_one("#compose-to", Input).value = "mafudge@syr.edu"
        compose.query_one("#compose-subject", Input).value = "Entwurf: Route über Grönland"
        long_line = "Ho " * 40 + "ho."
        compose.query_one("#compose-body", TextArea).text = long_line + "\n"
        compose.query_one("#compose-flowed", Checkbox).value = True
        await pilot.press("ctrl+d")
        await until(pilot, lambda: isinstance(app.screen, MailScreen)
                    and any('APPEND "Drafts"' in line for line in mail.query_one(XRay).lines_seen), 15)
        assert any("(\\Draft \\Seen)" in line for line in mail.query_one(XRay).lines_seen)
        folders = mail.query_one("#mail-folders", RowList)
        await until(pilot, lambda: any(r[0] == "Drafts" and r[2] == "1" for r in table_rows(folders)), 15)
        folders.focus()
        folders.move_cursor(row=[r[0] for r in table_rows(folders)].index("Drafts"))
        await pilot.press("enter")
        listing = mail.query_one("#mail-list", RowList)
        await until(pilot, lambda: mail.folder == "Drafts" and listing.row_count == 1, 15)
        assert table_rows(listing)[0][3] == "Entwurf: Route über Grönland"
        assert "\\Draft" in next(iter(mail.summaries.values())).flags
        listing.focus()
        await pilot.press("enter")
        await until(pilot, lambda: mail.current is not None, 15)
        parsed = email.message_from_bytes(mail.current[1], policy=email.policy.default)
        assert parsed.get_content_type() == "text/plain" and parsed.get_param("format") == "flowed"
        assert max(len(line) for line in mail.current[1].split(b"\r\n")) <= 78     # soft breaks on the wire
        assert parsed["Subject"] == "Entwurf: Route über Grönland" and "Bcc" not in parsed
        assert not maildir_messages(app.lab.state.root, "mafudge@syr.edu")        # a draft is not sent
