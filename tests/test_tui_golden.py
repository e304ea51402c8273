"""Golden snapshots: the main screens, cell for cell, against files kept in tests/snapshots/.

Each screen is read from Textual's own SVG screenshot as a grid of cells
(every text span at its column and line), with what changes from run to run
masked: clock times, dates, SOA serials, the port offset's numbers and queue ids.  Everything else — layout,
titles, columns, key bar, every word — must match the stored file.  After a
deliberate change of the UI, refresh the files and review their diff:

    MAILLAB_UPDATE_SNAPSHOTS=1 python3 -m pytest tests/test_tui_golden.py
"""

from __future__ import annotations

import asyncio
import html
import os
import re
from pathlib import Path

from maillab.tui.forms import HelpScreen
from maillab.tui.rowlist import RowList

from test_tui_support import running_app, until

SNAPSHOTS = Path(__file__).parent / "snapshots"
_MASKS = [
    (re.compile(r"\b\d\d:\d\d(:\d\d)?\b"), "hh:mm:ss"),
    (re.compile(r"\b\d{4}-\d\d-\d\d\b"), "yyyy-mm-dd"),
    (re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d\d?\b"), "mmm dd"),
    (re.compile(r"\b\d{10}\b"), "SERIAL"),                    # SOA serials start with today's date
    (re.compile(r"\b\d{4,5}\b"), "PORT"),                     # ports move with the offset
    (re.compile(r"\b[0-9B-Z]{12}\b"), "QUEUEID"),
    (re.compile(r"p=[A-Za-z0-9+/]+(=*)"), "p=PUBLICKEY"),         # DKIM keys are made on each first run
]


_SPAN = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="([\d.]+)" '
                   r'clip-path="url\(#terminal-\d+-line-(\d+)\)">(.*?)</text>', re.S)


def screen_grid(app) -> str:
    """The screen as lines of text, each span of the SVG screenshot at its own column."""
    lines: dict[int, list[str]] = {}
    for x, length, line, raw in _SPAN.findall(app.export_screenshot()):
        text = html.unescape(raw).replace("\xa0", " ").replace("\n", "")
        if not text:
            continue
        width = float(length) / len(text)
        column = round(float(x) / width)
        row = lines.setdefault(int(line), [])
        row.extend(" " * (column + len(text) - len(row)))
        row[column:column + len(text)] = text
    return "\n".join("".join(lines.get(i, [])) for i in range(max(lines, default=-1) + 1))


def masked(text: str) -> str:
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


async def settled_grid(pilot, timeout: float = 15.0) -> str:
    """The screen's grid once two looks 0.25 s apart agree (masked): on a loaded machine a
    table may still be laying out its rows right after they arrive."""
    app, last = pilot.app, None
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        grid = screen_grid(app)
        if last is not None and masked(grid) == masked(last):
            return grid
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the screen never settled in {timeout:g} s")
        last = grid
        await pilot.pause(0.25)


def check(name: str, text: str) -> None:
    got = masked(text)
    golden = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("MAILLAB_UPDATE_SNAPSHOTS") or not golden.exists():
        golden.write_text(got, encoding="utf-8")
        if not os.environ.get("MAILLAB_UPDATE_SNAPSHOTS"):
            raise AssertionError(f"{golden} did not exist: written now, review it and run again")
    want = golden.read_text(encoding="utf-8")
    if got != want:
        diff = [f"line {i + 1}:\n  want {w!r}\n  got  {g!r}"
                for i, (w, g) in enumerate(zip(want.splitlines(), got.splitlines())) if w != g]
        raise AssertionError(f"{name} differs from {golden}:\n" + "\n".join(diff[:8]))


async def test_golden_help_screen(tmp_path):
    async with running_app(tmp_path, size=(100, 30)) as (app, pilot):
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        check("help-100x30", await settled_grid(pilot))


async def test_golden_hosts_panel_at_80x24(tmp_path):
    async with running_app(tmp_path, size=(80, 24)) as (app, pilot):
        await pilot.press("3")
        await until(pilot, lambda: app.query_one("#hosts-table", RowList).row_count == len(app.lab.world.hosts))
        check("hosts-80x24", await settled_grid(pilot))


async def test_golden_dns_panel(tmp_path):
    async with running_app(tmp_path, size=(120, 40)) as (app, pilot):
        await pilot.press("4")
        await until(pilot, lambda: app.query_one("#dns-records", RowList).row_count > 10)
        check("dns-120x40", await settled_grid(pilot))
