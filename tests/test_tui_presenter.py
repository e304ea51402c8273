"""Issue 13: presenter mode (`p`) helps on every panel, and says so without covering the transcript.

On each panel: the header says presenter mode is on (no notification over
the content), every text of the panel is bold, the tables leave out the
columns they may do without (the same ones that go first when the terminal
is narrow), and `p` again brings it all back.  On Dialogues it turns follow
on, so the audience sees the session being typed.
"""

from __future__ import annotations

from textual.widgets import RichLog

from maillab.tui.app import MailLabApp
from maillab.tui.panel import Panel
from maillab.tui.rowlist import RowList

from test_tui_contrast import _is_text
from test_tui_support import course_session, in_thread, richlog_text, running_app, screen_text, until

# columns a table leaves out in presenter mode (they go first when narrow)
LEFT_OUT = {"Queue": {"sender", "attempts", "next attempt"}, "Dialogues": {"started"},
            "DNS": {"ttl", "zone"}, "Hosts": {"mailboxes of", "chaos"}, "Mailboxes": {"folders", "size"}, "Journey": {"host"}}


def panel_text_segments(app: MailLabApp, panel: Panel) -> list[tuple[str, bool]]:
    """(text, bold) of every text segment drawn inside the panel's region."""
    region = panel.region
    found = []
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        if not region.y <= y < region.bottom:
            continue
        x = 0
        for segment in strip:
            width = segment.cell_length
            inside = region.x <= x and x + width <= region.right
            x += width
            if inside and any(_is_text(ch) for ch in segment.text):
                found.append((segment.text.strip(), bool(segment.style and segment.style.bold)))
    return found


def headers(panel: Panel) -> list[set[str]]:
    return [{c for c, w in zip(t.columns, t._fitted()) if w} for t in panel.query(RowList)]


async def test_presenter_mode_on_every_panel(tmp_path):
    async with running_app(tmp_path, size=(160, 45)) as (app, pilot):
        await in_thread(course_session, app.lab.ports.smtp)
        await until(pilot, lambda: app.journeys.deliveries)
        for n, panel in enumerate(app.panels, 1):
            await pilot.press(str(n))
            await until(pilot, lambda: app.active_panel is panel)
            before = headers(panel)
            await pilot.press("p")
            await pilot.pause(0.2)
            assert app.active_panel is panel, "presenter mode stays on the panel shown"
            assert "PRESENTER MODE" in " ".join(screen_text(app).splitlines()[:3]), "the header says it"
            assert not list(app._notifications), "no notification over the content"
            segments = panel_text_segments(app, panel)
            assert segments and not [text for text, bold in segments if not bold], (panel.TITLE, segments[:5])
            shown = headers(panel)
            for table_before, table_now in zip(before, shown):
                assert table_now == table_before - LEFT_OUT.get(panel.TITLE, set()), (panel.TITLE, table_now)
            await pilot.press("p")
            await pilot.pause(0.2)
            assert "PRESENTER MODE" not in screen_text(app)
            assert headers(panel) == before
            assert [text for text, bold in panel_text_segments(app, panel) if not bold], "bold only when on"


async def test_presenter_mode_follows_the_newest_session_in_full_view(tmp_path):
    async with running_app(tmp_path, size=(100, 30)) as (app, pilot):
        await pilot.press("f")                          # follow off
        dialogues = app.query_one("#dialogues-panel")
        assert not dialogues.follow
        await pilot.press("p")
        assert dialogues.follow
        transcript = app.query_one("#transcript", RichLog)
        await in_thread(course_session, app.lab.ports.smtp)
        await until(pilot, lambda: "SERVER ‹ 221" in richlog_text(transcript))
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "SERVER ‹ 221" in text and "CLIENT › QUIT" in text       # the newest lines on screen
        assert "started" not in text                                     # no session table
        await pilot.press("p")
        await pilot.pause()
        assert app.focused is app.query_one("#sessions", RowList), "keys reach the table shown again"
