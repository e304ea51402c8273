"""The TUI's own widgets: RowList (the table of every panel: rows, columns, the cursor, a reloaded listing,
keys and clicks) and Hint (a status line that asks for a layout only when its height changes)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widget import Widget

from maillab.tui.panel import Hint
from maillab.tui.rowlist import RowList


class Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.picked: list[str] = []
        self.highlighted: list[str] = []

    def compose(self) -> ComposeResult:
        yield RowList(("started", "protocol", "peer"), id="rows")

    def on_row_list_selected(self, event: RowList.Selected) -> None:
        self.picked.append(event.key)

    def on_row_list_highlighted(self, event: RowList.Highlighted) -> None:
        self.highlighted.append(event.key)


def refreshes(widget: Widget) -> list[bool]:
    """From now on, each refresh `widget` asks for: True when it asks for a layout of the screen."""
    asked: list[bool] = []
    original = widget.refresh

    def refresh(*args, layout: bool = False, **kwargs):
        asked.append(layout)
        return original(*args, layout=layout, **kwargs)

    widget.refresh = refresh                     # type: ignore[method-assign]
    return asked


def fill(rows: RowList, count: int) -> None:
    for n in range(count):
        rows.upsert(str(n), ("10:00:00", "smtp", str(n)))


def lines(app: Host, count: int) -> list[str]:
    rows = app.query_one(RowList)
    return [rows.render_line(y).text.rstrip() for y in range(count)]


async def test_rows_line_up_under_a_header_that_stays_put():
    app = Host()
    async with app.run_test(size=(60, 8)) as pilot:
        rows = app.query_one(RowList)
        rows.focus()
        rows.upsert("a", ("10:00:00", "smtp", "127.0.0.1:4000"))
        rows.upsert("b", ("10:00:01", "submission", "mail.northpole.org [127.0.0.3]"))
        await pilot.pause()
        assert lines(app, 3) == [" started   protocol    peer",
                                 " 10:00:00  smtp        127.0.0.1:4000",
                                 " 10:00:01  submission  mail.northpole.org [127.0.0.3]"]
        rows.upsert("a", ("10:00:00", "smtp", "closed"))           # in place, the order kept
        assert rows.get_row_at(0) == ("10:00:00", "smtp", "closed") and rows.row_count == 2
        for n in range(20):
            rows.upsert(f"k{n}", ("10:00:02", "imap", f"peer {n}"))
        rows.move_cursor(rows.row_count - 1)                       # scrolled into view
        await pilot.pause()
        shown = lines(app, 8)
        assert shown[0].startswith(" started") and shown[-1].endswith("peer 19")
        assert app.highlighted == []                               # the program moved it: no message


async def test_keys_and_clicks_move_the_cursor_and_pick_a_row():
    app = Host()
    async with app.run_test(size=(60, 10)) as pilot:
        rows = app.query_one(RowList)
        rows.focus()
        for key in "abcde":
            rows.upsert(key, ("10:00:00", "smtp", key))
        await pilot.pause()
        await pilot.press("down", "down")
        assert rows.cursor_row == 2 and app.highlighted == ["b", "c"]
        await pilot.press("enter")
        assert app.picked == ["c"]
        await pilot.press("end")
        assert rows.cursor_row == 4
        await pilot.press("home", "up")                            # clamped at the first row
        assert rows.cursor_row == 0
        await pilot.click(RowList, offset=(3, 2))                  # line 2: the second row
        assert rows.cursor_row == 1 and app.picked[-1] == "b"


async def test_trimming_keeps_the_cursor_on_its_row_and_clear_empties():
    app = Host()
    async with app.run_test(size=(60, 10)) as pilot:
        rows = app.query_one(RowList)
        fill(rows, 10)
        rows.move_cursor(7)
        rows.keep_last(5)
        assert rows.keys() == ["5", "6", "7", "8", "9"] and rows.get_row_at(rows.cursor_row)[2] == "7"
        rows.remove("7")
        assert "7" not in rows and rows.row_count == 4
        rows.clear()
        await pilot.pause()
        assert rows.row_count == 0 and lines(app, 2) == [" started  protocol  peer", ""]   # widths anew


async def test_replace_reloads_a_listing_and_the_cursor_follows_its_row():
    app = Host()
    async with app.run_test(size=(60, 10)) as pilot:
        rows = app.query_one(RowList)
        assert rows.selected is None
        rows.replace({k: ("10:00:00", "smtp", f"peer {k} with a long name") for k in "abcd"})
        rows.move_cursor(2)
        assert rows.selected == ("10:00:00", "smtp", "peer c with a long name")
        rows.replace({"x": ("10:00:01", "imap", "new"), "a": ("10:00:00", "smtp", "a"),
                      "c": ("10:00:00", "pop3", "c")})      # b and d gone, c changed and moved
        assert rows.keys() == ["x", "a", "c"] and rows.selected == ("10:00:00", "pop3", "c")
        await pilot.pause()
        assert lines(app, 4) == [" started   protocol  peer",        # the long cells left: narrower
                                 " 10:00:01  imap      new",
                                 " 10:00:00  smtp      a",
                                 " 10:00:00  pop3      c"]
        rows.replace({"y": ("10:00:02", "smtp", "y")})     # its row gone: the cursor stays in range
        assert rows.cursor_row == 0 and rows.selected == ("10:00:02", "smtp", "y")
        assert app.highlighted == []


async def test_a_batch_that_ends_at_the_same_size_asks_for_no_layout():
    app = Host()
    async with app.run_test(size=(60, 10)) as pilot:
        rows = app.query_one(RowList)
        fill(rows, 5)
        await pilot.pause()
        asked = refreshes(rows)
        with rows.batch():                       # a flood frame: one in, one out
            rows.upsert("5", ("10:00:01", "smtp", "5"))
            rows.keep_last(5)
        assert asked and not any(asked) and rows.keys() == ["1", "2", "3", "4", "5"]
        before = len(asked)
        with rows.batch():
            rows.upsert("6", ("10:00:02", "smtp", "6"))
        assert asked[before:].count(True) == 1   # one more row: one layout, at the end
        await pilot.pause()
        assert lines(app, 7)[-1].endswith("6")


class HintHost(App[None]):
    def compose(self) -> ComposeResult:
        yield Hint("3 of 3 sessions", id="hint")


async def test_a_hint_asks_for_a_layout_only_when_its_height_changes():
    app = HintHost()
    async with app.run_test(size=(30, 6)) as pilot:
        hint = app.query_one(Hint)
        await pilot.pause()
        asked = refreshes(hint)
        hint.show("4 of 4 sessions")                   # one line still: a repaint
        hint.show("4 of 4 sessions")                   # no change: nothing
        assert asked == [False]
        hint.show("telnet 127.0.0.1 2525 · f follow ON · 4 of 4 sessions")   # wraps: taller
        assert asked == [False, True]
        await pilot.pause()
        assert hint.size.height == 2 and "4 of 4 sessions" in str(hint.render())
