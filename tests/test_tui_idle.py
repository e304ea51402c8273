"""Issue 13: an idle TUI repaints only what changes, the lab clock in the header, once a second.

The lab clock used to be the app's sub-title, which repaints the whole
screen, and Textual's header lays the screen out again on every title change;
panels that reload their table every second repainted it unchanged.  An idle
120x40 TUI wrote ~10-22 KB/s to the terminal, now ~240 B/s
(bench/tui_idle.py measures it on a pty).  Here every widget refresh is
counted while each panel sits idle for three clock ticks.
"""

from __future__ import annotations

from collections import Counter

from textual.widget import Widget

from test_tui_support import course_session, in_thread, running_app, until

# what may repaint on an idle panel: the header's title (the lab clock), the Queue's status
# line (it shows the lab clock), the Monitor's graphs (a point per second, updated with a layout)
MAY_REPAINT = {"_Title"}
MAY_REPAINT_ON = {"Queue": {"Hint"}, "Monitor": {"Hint", "Static"}}
MAY_LAY_OUT_ON = {"Monitor": {"Static"}}


async def test_idle_panels_repaint_only_the_lab_clock(tmp_path, monkeypatch):
    async with running_app(tmp_path) as (app, pilot):
        await in_thread(course_session, app.lab.ports.smtp)       # something in the tables
        await until(pilot, lambda: app.journeys.deliveries)
        for n, panel in enumerate(app.panels, 1):
            await pilot.press(str(n))
            await until(pilot, lambda: app.active_panel is panel)
            ticks: list[int] = []
            tick = panel.tick
            monkeypatch.setattr(panel, "tick", lambda: (tick(), ticks.append(1)))
            await until(pilot, lambda: ticks)                  # the switch's own redraw is done
            refreshed: Counter[tuple[str, bool]] = Counter()
            refresh = Widget.refresh

            def spy(widget: Widget, *args: object, **kwargs: object) -> Widget:
                refreshed[(type(widget).__name__, bool(kwargs.get("layout")))] += 1
                return refresh(widget, *args, **kwargs)        # type: ignore[arg-type]

            monkeypatch.setattr(Widget, "refresh", spy)
            ticks.clear()
            await until(pilot, lambda: len(ticks) >= 3)
            monkeypatch.undo()
            allowed = MAY_REPAINT | MAY_REPAINT_ON.get(panel.TITLE, set())
            assert {name for name, layout in refreshed if not layout} <= allowed, (panel.TITLE, refreshed)
            assert {name for name, layout in refreshed if layout} <= MAY_LAY_OUT_ON.get(panel.TITLE, set()), \
                (panel.TITLE, refreshed)
