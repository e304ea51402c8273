"""The TUI's header: the world's name and the lab clock, redrawn once a second without a layout.

Textual's Header re-lays the screen out whenever the title changes
(`Static.update` defaults to a layout), and the app's `sub_title` repaints
the whole screen: with the lab clock in the sub-title, an idle TUI wrote the
full screen to the terminal every second (bench/tui_idle.py).  The title's
size never depends on its text (one row, the header's width), so
`LabHeader` repaints only that row.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.visual import VisualType
from textual.widgets import Header
from textual.widgets._header import HeaderClockSpace, HeaderIcon, HeaderTitle


class _Title(HeaderTitle):
    def update(self, content: VisualType = "", *, layout: bool = False) -> None:
        super().update(content, layout=False)       # one row, the header's width: no layout


class LabHeader(Header):
    def compose(self) -> ComposeResult:
        yield HeaderIcon().data_bind(Header.icon)
        yield _Title()
        yield HeaderClockSpace()
