"""The Textual app: the lab on the same event loop, with live dialogues and maillog.

This first version shows the two streams a student watches most: every line
of every SMTP dialogue as it happens, and the maillog.  Events reach the UI
through a bounded bus subscription drained every 50 ms, so a flood of mail
never floods the screen's work queue.
"""

from __future__ import annotations

import time

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Header, Log, Static

from ..events import SessionClosed, SessionLine, SessionOpened
from ..lab import Lab, LabError
from ..maillog import format_event
from ..state import StateError

_ARROW = {"client": ">>>", "server": "<<<", "note": "..."}


class MailLabApp(App[None]):
    TITLE = "maillab"
    CSS = """
    #dialogues { height: 2fr; border: round $accent; }
    #maillog { height: 1fr; border: round $secondary; }
    #endpoints { height: auto; color: $text-muted; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("c", "clear", "Clear panels"),
    ]

    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.lab = lab
        self.startup_error = ""
        self._sub = lab.bus.subscribe(maxlen=20_000)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        with Vertical():
            yield Static("starting the lab…", id="endpoints")
            dialogues = Log(id="dialogues", max_lines=5_000)
            dialogues.border_title = "SMTP dialogues"
            yield dialogues
            maillog = Log(id="maillog", max_lines=5_000)
            maillog.border_title = "maillog"
            yield maillog
        yield Footer()

    async def on_mount(self) -> None:
        self.sub_title = f"world {self.lab.world.name}"
        try:
            await self.lab.start()
        except (LabError, StateError, OSError) as e:
            self.startup_error = str(e)
            self.exit()
            return
        smtp = [e for e in self.lab.endpoints if e.service == "smtp"]
        self.query_one("#endpoints", Static).update(
            f"{len(self.lab.endpoints)} endpoints; try: telnet {smtp[0].address} {smtp[0].port}"
            if smtp else f"{len(self.lab.endpoints)} endpoints")
        self.set_interval(0.05, self._drain)

    def _drain(self) -> None:
        events = self._sub.drain()
        if not events:
            return
        dialogue_lines, log_lines = [], []
        for e in events:
            if isinstance(e, SessionLine):
                stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
                dialogue_lines.append(f"{stamp} {e.session:<28} {_ARROW[e.direction]} {e.text}")
            elif isinstance(e, SessionOpened):
                dialogue_lines.append(f"--- {e.session}: {e.protocol} session with "
                                      f"{e.peer_name or '?'} [{e.peer}]")
            elif isinstance(e, SessionClosed):
                dialogue_lines.append(f"--- {e.session}: {e.reason}")
            line = format_event(e)
            if line is not None:
                log_lines.append(line)
        if dialogue_lines:
            self.query_one("#dialogues", Log).write_lines(dialogue_lines)
        if log_lines:
            self.query_one("#maillog", Log).write_lines(log_lines)

    def action_clear(self) -> None:
        self.query_one("#dialogues", Log).clear()
        self.query_one("#maillog", Log).clear()

    async def on_unmount(self) -> None:
        self._sub.close()
        if self.lab.ctx is not None:
            await self.lab.stop()
