"""The Monitoring panel: the course's checklist as sparklines over the last two minutes.

The numbers come from the app's `Monitor` (fed from the event stream, closed
once a second with the sampled queue depth and disk usage); this panel only
draws them, as lines of block characters: Textual's Sparkline widget costs
ten times more to paint, and the lab shares the app's loop.  All metrics are
one text in one widget: switching to this tab with a widget per label and per
line (28 of them) cost Textual 120 ms of layout and painting.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widgets import Static

from ..metrics import Series, spark
from ..palette import MUTED
from ..panel import Hint, Panel, PanelContext


HINTS = {
    "in": "messages accepted and queued, every hop",
    "out": "recipients delivered or relayed",
    "queue": "messages waiting in all queues",
    "deferred": "temporary failures: will be retried",
    "failed": "permanent failures: bounced",
    "connections": "SMTP/POP3/IMAP sessions opened",
    "disk": "spool + Maildirs on disk",
    "held": "new SMTP sessions kept waiting while this display caught up",
}


class MonitorPanel(Panel):
    TITLE = "Monitor"
    HELP = """\
What an admin watches on a mail server, second by second over the last two
minutes: messages in (queued) and out (delivered) per second, the queue depth,
deferrals (temporary failures, retried later), delivery failures (bounces),
connections per second, and the size of the spool and the Maildirs on disk.
In a flood the lab holds new SMTP sessions back before their banner while this
display catches up (the overload valve, like a busy server's listen queue):
*sessions held* counts them; nothing is refused or lost.
A growing queue with deferrals usually means a host or DNS is down: look at the
Hosts and DNS panels.
"""
    LABEL = 40              # columns before the sparklines

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.monitor = ctx.monitor

    def compose_panel(self) -> ComposeResult:
        yield Hint(id="monitor-status")
        with VerticalScroll(id="metrics"):
            yield Static("", id="metrics-view")

    def on_mount(self) -> None:
        self.tick()

    def show(self) -> None:
        self.tick()

    def focus_main(self) -> None:
        self.query_one("#metrics", VerticalScroll).focus()

    def head(self, key: str, s: Series) -> str:
        """` label: value (peak P)` within LABEL - 1 columns: the peak in the value's own
        format (a 0.4 MB disk is not "peak 0"), and the label, never a number, shortened."""
        digits = 1 if key == "disk" else 0
        figures = f": {s.latest:.{digits}f}{s.unit} (peak {s.peak:.{digits}f})"
        room = max(self.LABEL - 2 - len(figures), 1)
        label = s.label if len(s.label) <= room else s.label[:room - 1] + "…"
        return f" {label}{figures}"

    def tick(self) -> None:
        view = self.query_one("#metrics-view", Static)
        width = max((view.size.width or 100) - self.LABEL, 10)
        gap = "\n" if self.has_class("-presenter") else ""
        rows = []
        for key, s in self.monitor.series.items():
            rows.append(f"{escape(self.head(key, s).ljust(self.LABEL))}[$accent]{spark(s.points, width)}[/]\n"
                        f"[{MUTED}]{escape(f' {HINTS[key]}')}[/]\n{gap}")
        view.update("".join(rows).rstrip("\n"))
        dropped = self.monitor.dropped
        self.query_one("#monitor-status", Hint).show(
            "last 2 minutes, one point per second"
            + (f" · {dropped} events skipped by the display in floods" if dropped else ""))
