"""The TUI's shell: the lab on the app's loop, header, tabs, help, palette, themes, presenter mode,
error containment, and a clean quit with the spool kept.  Real servers on loopback, driven by Pilot."""

from __future__ import annotations

from textual.command import CommandList, CommandPalette
from textual.widgets import Header, RichLog, TabbedContent

from maillab.base.events import SessionOpened
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab
from maillab.lab.world import load_world
from maillab.net.ports import Ports
from maillab.tui.app import MailLabApp
from maillab.tui.forms import HelpScreen
from maillab.tui.panels import PANELS
from maillab.tui.rowlist import RowList

from conftest import free_offset
from test_tui_support import course_session, in_thread, richlog_text, running_app, screen_text, until


async def test_the_lab_runs_inside_the_app_and_a_typed_session_appears(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        assert app.title == "maillab · world default"
        assert "lab clock" in app.sub_title and "×1" in app.sub_title
        qid = await in_thread(course_session, app.lab.ports.smtp)
        transcript = app.query_one("#transcript", RichLog)
        await until(pilot, lambda: "221" in richlog_text(transcript))
        text = richlog_text(transcript)
        assert "C: HELO northpole.org" in text and "S: 250 2.1.5 Ok" in text
        assert f"queued as {qid}" in text
        rows = app.query_one("#sessions", RowList)
        assert rows.row_count == 1 and "smtp1.syr.edu" in str(rows.get_row_at(0))


async def test_number_keys_switch_panels_and_give_them_the_keyboard(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        tabs = app.query_one(TabbedContent)
        for n, panel in enumerate(PANELS, 1):
            await pilot.press(str(n))
            await until(pilot, lambda: tabs.active == panel.TITLE.lower())
            assert tabs.active == panel.TITLE.lower()
            assert app.focused is not None and app.active_panel in app.focused.ancestors_with_self


async def test_help_screen_explains_every_panel(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        markdown = app.screen.markdown
        for panel in PANELS:
            assert f"· {panel.TITLE}" in markdown
        assert f"telnet 127.0.0.1 {app.lab.ports.smtp}" in markdown
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_every_action_is_in_the_command_palette(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for panel in PANELS:
            assert f"Show {panel.TITLE}" in titles
            for title, _help, _action in panel.COMMANDS:
                assert title in titles
        assert {"Clock: faster", "Clock: slower", "Clock: jump ahead", "Toggle dark / light theme",
                "Presenter mode", "Help"} <= titles
        # and one really runs from the palette: it switches panel and acts there
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Clock: faster")

        def highlighted() -> str:
            results = app.screen.query_one(CommandList)
            at = results.highlighted
            return "" if at is None else str(results.get_option_at_index(at).prompt)
        await until(pilot, lambda: "Clock: faster" in highlighted())     # the search has found it
        await pilot.press("enter")
        await until(pilot, lambda: app.lab.clock.speed == 10)
        assert app.lab.clock.speed == 10


async def test_theme_toggle_and_presenter_mode(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        assert app.current_theme.dark
        await pilot.press("t")
        assert not app.current_theme.dark
        await pilot.press("t")
        assert app.current_theme.dark
        await pilot.press("p")              # on the panel shown (test_tui_presenter: on every panel)
        assert app.query_one(TabbedContent).active == "dialogues"
        panel = app.query_one("#dialogues-panel")
        assert panel.has_class("-presenter") and not app.query_one("#sessions").display
        await in_thread(course_session, app.lab.ports.smtp)
        transcript = app.query_one("#transcript", RichLog)
        await until(pilot, lambda: "221" in richlog_text(transcript))
        text = richlog_text(transcript)
        assert "CLIENT › HELO northpole.org" in text
        assert "354: start mail input" in text          # presenter mode explains every line
        await pilot.press("p")
        assert not panel.has_class("-presenter") and app.query_one("#sessions").display


async def test_maillab_presenter_starts_in_presenter_mode(tmp_path):
    async with running_app(tmp_path, size=(100, 30), presenter=True) as (app, pilot):
        assert app.query_one("#dialogues-panel").has_class("-presenter")
        assert app.query_one(Header).tall and not app.query_one("#sessions").display


async def test_a_crashing_panel_shows_its_error_and_the_lab_keeps_running(tmp_path):
    async with running_app(tmp_path, allow_errors=True) as (app, pilot):
        queue = app.query_one("#queue-panel")

        def broken() -> None:
            raise RuntimeError("simulated bug in the queue panel")
        queue.tick = broken                       # type: ignore[method-assign]
        await pilot.press("2")
        banner = queue.query_one(".panel-error")
        await until(pilot, lambda: banner.has_class("-shown"))
        assert "simulated bug" in str(banner.render())
        assert "simulated bug" in (app.lab.state.log_dir / "tui-errors.log").read_text()
        # the lab and the other panels go on
        qid = await in_thread(course_session, app.lab.ports.smtp)
        assert qid
        await pilot.press("1")
        transcript = app.query_one("#transcript", RichLog)
        await until(pilot, lambda: qid in richlog_text(transcript))
        assert app.is_running and app.lab_running


async def test_usable_at_80x24(tmp_path):
    async with running_app(tmp_path, size=(80, 24)) as (app, pilot):
        await in_thread(course_session, app.lab.ports.smtp)
        await until(pilot, lambda: "221 2.0.0 Bye" in screen_text(app))
        text = screen_text(app)
        lines = text.splitlines()
        assert app.size == (80, 24) and max(len(x) for x in lines) <= 80
        assert "maillab · world default" in lines[0]
        for title in ("Dialogues", "Queue", "Hosts", "DNS", "Journey", "Mailboxes", "Log", "Monitor"):
            assert title in lines[1]
        assert "221 2.0.0 Bye" in text
        assert "Quit" in lines[-1] and "Help" in lines[-1]


async def test_quitting_stops_the_servers_and_keeps_the_spool(tmp_path):
    offset = free_offset()
    lab = Lab(world=load_world(), state=StateDir(tmp_path / "state"), ports=Ports(offset), smtp_timeout=5)
    app = MailLabApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.lab_running)
        await lab.host_down("smtp1.syr.edu")          # mail for syr.edu now waits at the backup MX
        qid = await in_thread(course_session, lab.ports.smtp, "127.0.0.2")
        await until(pilot, lambda: any(e["id"] == qid and e["queue"] == "deferred" for e in lab.queue_listing()))
        await pilot.press("q")
    assert not app.lab_running and not lab.state.in_use()
    spooled = [p for p in (tmp_path / "state" / "spool" / "smtp2.syr.edu").rglob("*") if qid in p.name]
    assert spooled, "the deferred message must stay in the spool"
    again = Lab(world=load_world(), state=StateDir(tmp_path / "state"), ports=Ports(offset))
    await again.start()
    try:
        assert any(e["id"] == qid for e in again.queue_listing())
    finally:
        await again.stop()


async def test_a_timer_that_fires_as_the_app_closes_draws_nothing(tmp_path):
    """Textual stops running the app before it takes the screens down; the event pump or the
    clock tick may still fire in between (1 in 3 restarts under load), and a panel drawing
    then finds its widgets gone: no panel error may come of it."""
    async with running_app(tmp_path) as (app, pilot):
        pass
    # an event still queued for the app when it closed (its subscription ends at unmount)
    app._sub._push(SessionOpened(0.0, "smtp1.syr.edu/smtp/999", "smtp", "smtp1.syr.edu", "127.0.0.1:1"))
    app._pump()                                 # as a timer would, after the widgets are gone
    app._tick()
    log = app.lab.state.log_dir / "tui-errors.log"
    assert not log.exists(), log.read_text()
