"""The TUI's table, cheap in a flood: sessions, the queue, deliveries, hosts, DNS records, mailboxes.

Textual's DataTable renders every cell through Rich and drops its render
caches whenever rows come and go; in a flood of sessions (hundreds a second,
the newest always shown) that drawing took a sixth of the loop the lab runs
on, and a busy queue or delivery list took 100 ms to come on screen.
`RowList` keeps each row as one line of text, its columns padded to the
widest cell, and draws a line as one styled segment: adding a row is a list
append, drawing it a slice of a string.

It offers what the panels need: a header that stays put while the rows
scroll (up and down; left and right when wider than the screen), zebra
stripes, a row cursor (up/down, page up/down, home/end), Enter or a click to
pick a row (`RowList.Selected`), and a `RowList.Highlighted` message when the
user moves the cursor (a move made by the program says nothing).  Rows are
keyed by a string; `upsert` adds or changes one row (a live list),
`replace` makes the table exactly a new set of rows (a listing reloaded),
the cursor staying on its row.

A table wider than its widget first gives up what the panel said it may
(`shrink`: (column, the narrowest it may get, 0 for a column that may go),
in that order; a column may come twice): cut with an ellipsis, or dropped, so the
key columns stay whole at 80 columns; what still does not fit scrolls.  In
presenter mode (`presenter`) the columns that may go are not shown at all.

A change of the table's size asks Textual for a layout of the whole screen
(a full redraw): `with rows.batch():` around several changes asks once, and
not at all when they end at the size they started from, as adding a row and
trimming one does in a flood.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Iterator, Mapping, Sequence

from rich.cells import cell_len
from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

GAP = "  "                  # between two columns (and one space before the first, as DataTable)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - cell_len(text))


def _cut(text: str, width: int) -> str:
    """`text` in at most `width` cells, an ellipsis at the end if it was cut."""
    if cell_len(text) <= width:
        return text
    while text and cell_len(text) > width - 1:
        text = text[:-1]
    return text + "…" if width > 0 else ""


def fit(widths: Sequence[int], room: int, shrink: Sequence[tuple[int, int]]) -> list[int]:
    """Column widths that fit a line of `room` cells (one space before, GAP between shown
    columns; a width of 0 is a column not shown), giving up what `shrink` allows, in its
    order: (column, narrowest width; 0: it goes)."""
    shown = list(widths)

    def total() -> int:
        n = sum(1 for w in shown if w)
        return 1 + sum(shown) + len(GAP) * max(n - 1, 0)

    for column, narrowest in shrink:
        excess = total() - room
        if excess <= 0:
            break
        shown[column] = 0 if narrowest == 0 else max(shown[column] - excess, min(narrowest, shown[column]))
    return shown


class RowList(ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"rowlist--header", "rowlist--cursor", "rowlist--even-row"}
    DEFAULT_CSS = """
    RowList {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
            & > .rowlist--cursor {
                background: $block-cursor-background;
                color: auto 100%;   /* $block-cursor-foreground is 87%: 3.8:1 on textual-dark's blue */
                text-style: $block-cursor-text-style;
            }
        }
        &:dark > .rowlist--even-row { background: $surface-darken-1 40%; }
        & > .rowlist--even-row { background: $surface-lighten-1 50%; }
        & > .rowlist--header { text-style: bold; background: $panel; color: $foreground; }
        & > .rowlist--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    @dataclass
    class RowMessage(Message):
        row_list: "RowList"
        key: str

        @property
        def control(self) -> "RowList":
            return self.row_list

    class Selected(RowMessage):
        """Enter or a click on a row."""

    class Highlighted(RowMessage):
        """The user moved the cursor to a row."""

    def __init__(self, columns: Sequence[str], *, id: str | None = None, classes: str | None = None,
                 shrink: Sequence[tuple[str, int]] = ()) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = tuple(columns)
        self._shrink = [(self.columns.index(c), n) for c, n in shrink]
        self._shown: list[int] | None = None     # the widths drawn (fitted to the widget); None: not yet
        self._room = 0                           # the width they were fitted to
        self.presenter = False
        self._keys: list[str] = []
        self._cells: dict[str, tuple[str, ...]] = {}
        self._lines: dict[str, str] = {}          # key -> its row as one padded line (cache)
        self._widths = [cell_len(c) for c in self.columns]
        self._header = ""
        self.cursor_row = 0
        self._batched = 0                          # inside batch(): the size is set at its end
        self._batch_changed = False                # ... if something changed in it

    def on_mount(self) -> None:
        self._changed()                              # the header, before any row

    # --- the rows ------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._cells

    def keys(self) -> list[str]:
        return list(self._keys)

    def get_row_at(self, row: int) -> tuple[str, ...]:
        return self._cells[self._keys[row]]

    def get_row_index(self, key: str) -> int:
        return self._keys.index(key)

    @property
    def selected(self) -> tuple[str, ...] | None:
        """The cells of the row under the cursor; None when there are no rows."""
        return self._cells[self._keys[self.cursor_row]] if self._keys else None

    def upsert(self, key: str, cells: Sequence[str], first: bool = False) -> None:
        """Add row `key` at the end (at the top if `first`: the cursor stays on its row), or
        change its cells in place."""
        cells = tuple(cells)
        if key not in self._cells and first:
            self._keys.insert(0, key)
            if len(self._keys) > 1:
                self.cursor_row += 1
        elif key not in self._cells:
            self._keys.append(key)
        elif self._cells[key] == cells:
            return
        self._cells[key] = cells
        self._lines.pop(key, None)
        widths = [max(w, cell_len(c)) for w, c in zip(self._widths, cells)]
        if widths != self._widths:
            self._widths = widths
            self._lines.clear()
            self._header = ""
        self._changed()

    def replace(self, rows: Mapping[str, Sequence[str]]) -> None:
        """Make the table exactly `rows`, in their order: the cursor stays on its row if it is
        kept (else at the same place), columns fit the new cells, unchanged lines stay cached."""
        at = self._keys[self.cursor_row] if self._keys else None
        cells = {key: tuple(c) for key, c in rows.items()}
        if cells == self._cells and list(cells) == self._keys:
            return                  # a panel reloading each second with nothing new: no repaint
        widths = [cell_len(c) for c in self.columns]
        for row in cells.values():
            widths = [max(w, cell_len(c)) for w, c in zip(widths, row)]
        if widths != self._widths:
            self._widths = widths
            self._lines.clear()
            self._header = ""
        else:
            self._lines = {k: line for k, line in self._lines.items() if self._cells.get(k) == cells.get(k)}
        self._keys = list(cells)
        self._cells = cells
        if at in cells:
            self.cursor_row = self._keys.index(at)
        self.cursor_row = max(0, min(self.cursor_row, len(self._keys) - 1))
        self._changed()

    def remove(self, key: str) -> None:
        if key in self._cells:
            self._keys.remove(key)
            del self._cells[key]
            self._lines.pop(key, None)
            self.cursor_row = min(self.cursor_row, max(len(self._keys) - 1, 0))
            self._changed()

    def keep_last(self, count: int) -> None:
        """Drop all but the last `count` rows (in one go), the cursor staying on its row if kept."""
        drop = len(self._keys) - count
        if drop <= 0:
            return
        for key in self._keys[:drop]:
            del self._cells[key]
            self._lines.pop(key, None)
        del self._keys[:drop]
        self.cursor_row = max(self.cursor_row - drop, 0)
        self._changed()

    def clear(self) -> None:
        self._keys.clear()
        self._cells.clear()
        self._lines.clear()
        self._widths = [cell_len(c) for c in self.columns]
        self._header = ""
        self.cursor_row = 0
        self.scroll_to(0, 0, animate=False, immediate=True)
        self._changed()

    @contextmanager
    def batch(self) -> Iterator["RowList"]:
        """Several changes, one new size (if any) at the end; none, no repaint."""
        self._batched += 1
        try:
            yield self
        finally:
            self._batched -= 1
            if not self._batched and self._batch_changed:
                self._batch_changed = False
                self._changed()

    def set_presenter(self, presenter: bool) -> None:
        """Presenter mode: the columns that may go are not shown."""
        self.presenter = presenter
        self._refit()

    def on_resize(self, event: events.Resize) -> None:
        self._refit()

    def _refit(self) -> None:
        self._shown = None
        self._lines.clear()
        self._header = ""
        self._changed()

    def _fitted(self) -> list[int]:
        room = self.scrollable_content_region.width or self.size.width
        if self._shown is None or room != self._room:
            self._room = room
            widths = [0 if self.presenter and (i, 0) in self._shrink else w for i, w in enumerate(self._widths)]
            self._shown = fit(widths, room, self._shrink) if room > 0 else widths
            self._lines.clear()
            self._header = ""
            # the width follows the fit at once: a room that shrank (a vertical scrollbar came)
            # must not leave the old, wider size behind, or a horizontal scrollbar stays
            shown = [w for w in self._shown if w]
            width = 1 + sum(shown) + len(GAP) * (len(shown) - 1)
            # the header is line 0; a size that differs asks for a layout (an equal one does nothing)
            self.virtual_size = Size(width, len(self._keys) + 1)
        return self._shown

    def _changed(self) -> None:
        if self._batched:
            self._batch_changed = True
            return
        self._shown = None
        self._fitted()
        self.refresh()

    # --- the cursor -------------------------------------------------------------------
    def move_cursor(self, row: int, scroll: bool = True) -> None:
        """Put the cursor on `row` (clamped); scroll it into view.  Says nothing: the program moved it."""
        self.cursor_row = max(0, min(row, len(self._keys) - 1))
        if scroll:
            self._scroll_to_cursor()
            self.call_after_refresh(self._scroll_to_cursor)     # again once rows just added are laid out
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        shown = max(self.scrollable_content_region.height - 1, 1)   # rows under the header
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + shown:
            self.scroll_to(y=self.cursor_row - shown + 1, animate=False, immediate=True)

    def _user_moved(self, row: int) -> None:
        before = self.cursor_row
        self.move_cursor(row)
        if self._keys and self.cursor_row != before:
            self.post_message(self.Highlighted(self, self._keys[self.cursor_row]))

    def action_cursor(self, step: int) -> None:
        self._user_moved(self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        self._user_moved(self.cursor_row + direction * max(self.scrollable_content_region.height - 1, 1))

    def action_cursor_to(self, row: int) -> None:
        self._user_moved(row if row >= 0 else len(self._keys) - 1)

    def action_select(self) -> None:
        if self._keys:
            self.post_message(self.Selected(self, self._keys[self.cursor_row]))

    def on_click(self, event: events.Click) -> None:
        row = event.y - 1 + round(self.scroll_y)
        if event.y >= 1 and 0 <= row < len(self._keys):
            self._user_moved(row)
            self.action_select()

    # --- drawing ------------------------------------------------------------------------
    def _line(self, cells: Sequence[str]) -> str:
        shown = [(c, w) for c, w in zip(cells, self._fitted()) if w]
        last = len(shown) - 1
        return " " + GAP.join(_cut(c, w) if i == last else _pad(_cut(c, w), w) for i, (c, w) in enumerate(shown))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            if not self._header:
                self._header = self._line(self.columns)
            text, style = self._header, base + self.get_component_rich_style("rowlist--header")
        else:
            row = scroll_y + y - 1
            if row >= len(self._keys):
                return Strip.blank(width, base)
            key = self._keys[row]
            text = self._lines.get(key)
            if text is None:
                text = self._lines[key] = self._line(self._cells[key])
            if row == self.cursor_row:
                style = base + self.get_component_rich_style("rowlist--cursor")
            elif row % 2 == 0:
                style = base + self.get_component_rich_style("rowlist--even-row")
            else:
                style = base
        return Strip([Segment(text, style)], cell_len(text)).crop_extend(scroll_x, scroll_x + width, style)
