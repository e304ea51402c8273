"""The Monitoring panel: the course's checklist as sparklines over the last two minutes.

The numbers come from the app's `Monitor` (fed from the event stream, closed
once a second with the sampled queue depth and disk usage); this panel only
draws them, as lines of block characters: Textual's Sparkline widget costs
ten times more to paint, and the lab shares the app's loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, Static

from ..metrics import spark
from ..panel import Panel

if TYPE_CHECKING:
    from ..app import MailLabApp

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
    DEFAULT_CSS = """
    MonitorPanel .metric { height: 2; }
    MonitorPanel .metric Label { width: 40; padding: 0 1; }
    MonitorPanel .metric .spark { width: 1fr; height: 1; color: $accent; }
    MonitorPanel.-presenter .metric { height: 3; }
    """

    def __init__(self, app: "MailLabApp", **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.monitor = app.monitor

    def compose_panel(self) -> ComposeResult:
        yield Static("", id="monitor-status", classes="hint", markup=False)
        with VerticalScroll(id="metrics"):
            for key in self.monitor.series:
                with Horizontal(classes="metric"):
                    yield Label("", id=f"label-{key}")
                    yield Static("", id=f"spark-{key}", classes="spark", markup=False)

    def on_mount(self) -> None:
        self.tick()

    def show(self) -> None:
        self.tick()

    def focus_main(self) -> None:
        self.query_one("#metrics", VerticalScroll).focus()

    def tick(self) -> None:
        for key, s in self.monitor.series.items():
            value = f"{s.latest:.1f}" if key == "disk" else f"{s.latest:.0f}"
            self.query_one(f"#label-{key}", Label).update(
                f"{s.label}: {value}{s.unit} (peak {s.peak:.0f})\n[dim]{HINTS[key]}[/]")
            line = self.query_one(f"#spark-{key}", Static)
            line.update(spark(s.points, line.size.width or 60))
        dropped = self.monitor.dropped
        self.query_one("#monitor-status", Static).update(
            "last 2 minutes, one point per second"
            + (f" · {dropped} events skipped by the display in floods" if dropped else ""))
