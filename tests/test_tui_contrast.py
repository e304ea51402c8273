"""Issue 13: every text the TUI draws is readable (WCAG 2 AA, 4.5:1) in both themes it offers.

The screen is read as the compositor renders it (every segment's foreground
and background, after Textual's styles and the panels' own colours); a dim
segment counts as the colour a terminal shows for it (half-way to its
background, Textual's DimFilter).  Panels are filled over real sockets: a
deferred message (smtp1 down), an authenticated submission (an explained
transcript with the clear-text password warning), a journey.
"""

from __future__ import annotations

import dataclasses
import unicodedata

from rich.segment import Segment
from textual.color import Color
from textual.filter import dim_color
from textual.screen import ModalScreen
from textual.widgets import RichLog

from maillab.lab.world import load_world
from maillab.tui.app import MailLabApp
from maillab.tui.forms import FormScreen, HelpScreen
from maillab.tui.palette import contrast, readable
from maillab.tui.rowlist import RowList

from test_tui_support import course_session, in_thread, richlog_text, running_app, submit, table_rows, until

AA = 4.5


def _is_text(ch: str) -> bool:
    """A character a person reads: not a space, box-drawing line, block or scrollbar glyph."""
    if ch.isspace() or "\u2500" <= ch <= "\u259f" or "\u2800" <= ch <= "\u28ff":
        return False
    return unicodedata.category(ch)[0] in "LNPS"


def _colours(app: MailLabApp, segment: Segment) -> tuple[Color, Color] | None:
    style = segment.style
    if style is None or style.color is None or style.bgcolor is None:
        return None
    fg = Color.from_rich_color(style.color, app.ansi_theme)
    bg = Color.from_rich_color(style.bgcolor, app.ansi_theme)
    if style.reverse:
        fg, bg = bg, fg
    if style.dim:
        fg = Color.from_rich_color(dim_color(bg.rich_color, fg.rich_color))
    return fg, bg


def unreadable(app: MailLabApp) -> list[tuple[float, str, str, str]]:
    """(ratio, text, foreground, background) of every text segment on screen below 4.5:1; under
    a dialog only the dialog's own (the screen behind it is faded on purpose)."""
    found: dict[tuple[str, str, str], float] = {}
    uncoloured: list[str] = []
    dialog = app.screen.query_one(".dialog").region if isinstance(app.screen, ModalScreen) else None
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        x = 0
        for segment in strip:
            x += segment.cell_length
            if not any(_is_text(ch) for ch in segment.text):
                continue
            if dialog is not None and not (dialog.y <= y < dialog.bottom
                                           and dialog.x <= x - segment.cell_length and x <= dialog.right):
                continue
            colours = _colours(app, segment)
            if colours is None:
                uncoloured.append(segment.text)
                continue
            fg, bg = colours
            ratio = contrast(fg, bg)
            if ratio < AA:
                found[(segment.text.strip()[:40], fg.hex, bg.hex)] = ratio
    assert not uncoloured, f"text without a resolved colour: {uncoloured[:5]}"
    return sorted((ratio, *key) for key, ratio in found.items())


def test_contrast_formula_matches_wcag():
    assert round(contrast(Color(0, 0, 0), Color(255, 255, 255)), 1) == 21.0
    assert round(contrast(Color(0x77, 0x77, 0x77), Color(255, 255, 255)), 2) == 4.48
    assert contrast(Color(10, 20, 30), Color(10, 20, 30)) == 1.0
    light = Color.parse("#D8D8D8")
    orange = Color.parse("#FF8700")              # Rich's dark_orange: the old server label
    assert contrast(orange, light) < 2
    assert contrast(readable(orange, light), light) >= AA
    assert readable(Color.parse("#111111"), light) == Color.parse("#111111")   # readable already: kept


async def _fill(app: MailLabApp, pilot) -> None:
    """A deferred message, an authenticated submission (in plaintext: the cleartext warning is
    shown too) and its journey, over real sockets."""
    await in_thread(submit, "127.0.0.3", app.lab.ports.submission, tls=False)
    await until(pilot, lambda: app.journeys.deliveries)
    await app.lab.host_down("smtp1.syr.edu")
    await in_thread(course_session, app.lab.ports.smtp, "127.0.0.2")


async def _panel_views(app: MailLabApp, pilot):
    """Show each panel in the state worth checking; yields its name once it is on screen."""
    await pilot.press("1")
    dialogues = app.query_one("#dialogues-panel")
    if not dialogues.explain:
        await pilot.press("e")
    table = app.query_one("#sessions", RowList)
    submission = next(sid for sid, s in app.sessions.sessions.items()
                      if any(line.text.startswith("AUTH PLAIN") for line in s.lines))
    table.move_cursor(table.get_row_index(submission))
    await pilot.press("enter")
    transcript = app.query_one("#transcript", RichLog)
    await until(pilot, lambda: "AUTH PLAIN" in richlog_text(transcript) and "⚠" in richlog_text(transcript))
    yield "Dialogues, explained"
    await pilot.press("2")
    queue = app.query_one("#queue-table", RowList)
    await until(pilot, lambda: any(r[2] == "deferred" for r in table_rows(queue)))
    await pilot.press("enter")
    await until(pilot, lambda: "refused" in richlog_text(app.query_one("#queue-detail", RichLog)))
    yield "Queue with its detail"
    for key, name in (("3", "Hosts"), ("4", "DNS"), ("6", "Mailboxes"), ("7", "Log"), ("8", "Monitor")):
        await pilot.press(key)
        await pilot.pause(0.2)
        yield name
    await pilot.press("5")
    await until(pilot, lambda: app.query_one("#deliveries", RowList).row_count)
    await pilot.press("enter")
    await until(pilot, lambda: "hops" in richlog_text(app.query_one("#hops", RichLog)))
    await until(pilot, lambda: "What the lab saw" in richlog_text(app.query_one("#record", RichLog)))
    yield "Journey"
    await pilot.press("1", "p")                   # follows the newest session (smtp2's retries to smtp1)
    await until(pilot, lambda: app.sessions.newest().id in richlog_text(transcript))
    yield "Dialogues, presenter mode"
    await pilot.press("p", "f1")
    await until(pilot, lambda: isinstance(app.screen, HelpScreen))
    yield "Help"
    await pilot.press("escape", "2", "a")
    await until(pilot, lambda: isinstance(app.screen, FormScreen))
    yield "Clock form"
    await pilot.press("escape")
    for severity in ("information", "warning", "error"):
        app.notify(f"a {severity} notification", title=severity, severity=severity)   # type: ignore[arg-type]
    yield "Notifications"


async def test_every_text_of_every_panel_reaches_aa_in_both_themes(tmp_path):
    world = dataclasses.replace(load_world(), auth_over_plaintext=True)      # the eavesdropping lesson's
    async with running_app(tmp_path, size=(160, 50), world=world) as (app, pilot):
        await _fill(app, pilot)
        failures: list[str] = []
        for theme in ("textual-dark", "textual-light"):
            if app.theme != theme:
                await pilot.press("t")
            assert app.theme == theme
            app.clear_notifications()
            async for view in _panel_views(app, pilot):
                await pilot.pause(0.2)
                if view != "Notifications":
                    app.clear_notifications()
                    await pilot.pause()
                for ratio, text, fg, bg in unreadable(app)[:6]:
                    failures.append(f"{theme} · {view}: {ratio:.1f}:1 {fg} on {bg}: {text!r}")
        assert not failures, "text below 4.5:1:\n" + "\n".join(failures)


async def test_a_theme_change_recolours_text_already_written(tmp_path):
    """The transcript was written in the dark theme; after `t` its server label has the light colours."""
    async with running_app(tmp_path, size=(120, 40)) as (app, pilot):
        assert app.theme == "textual-dark"
        await in_thread(course_session, app.lab.ports.smtp)
        transcript = app.query_one("#transcript", RichLog)
        await until(pilot, lambda: "221" in richlog_text(transcript))
        await pilot.press("t")
        await pilot.pause(0.2)
        assert app.theme == "textual-light"
        assert not unreadable(app)
