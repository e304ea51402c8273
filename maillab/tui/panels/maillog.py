"""The Log panel: the maillog as it is written, filterable.

Lines are made by `maillog.format_event`, the same function that writes
`<state>/log/maillog`, so the panel and the file agree.  The last `KEEP`
lines are kept; the filter (every word must appear, case ignored) applies to
them and to what arrives.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Log

from ...maillog import format_event
from ..panel import Batch, Panel, append_lines, guarded

if TYPE_CHECKING:
    from ..app import MailLabApp

KEEP = 5_000


class LogPanel(Panel):
    TITLE = "Log"
    HELP = """\
The maillog, in the shape of Postfix's: `timestamp host program[pid]: QUEUEID: ...`.
Follow one message by its queue ID: `smtpd` accepts it (`client=`), `qmgr`
queues it (`from=`, `size=`, `nrcpt=`), `smtp` relays it or `local` delivers it
(`to=`, `relay=`, `delay=`, `dsn=`, `status=sent`, *deferred* or *bounced*).

- `/` filters: type words that must all appear (a queue ID, `deferred`, a
  host); Escape returns to the log. The file is `<state>/log/maillog`.
"""
    COMMANDS = [("Log: filter the maillog", "Show only lines with these words", "filter")]
    BINDINGS = [Binding("slash", "filter", "Filter")]
    DEFAULT_CSS = """
    LogPanel #log-filter { height: 3; }
    LogPanel #maillog { height: 1fr; }
    """

    def __init__(self, app: "MailLabApp", **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.lines: deque[str] = deque(maxlen=KEEP)
        self._pending: deque[str] = deque(maxlen=KEEP)
        self.words: list[str] = []

    def compose_panel(self) -> ComposeResult:
        yield Input(placeholder="/ filter: words that must all appear (queue ID, host, deferred...)",
                    id="log-filter")
        yield Log(id="maillog", max_lines=KEEP)

    def focus_main(self) -> None:
        self.query_one("#maillog", Log).focus()

    def feed(self, batch: Batch) -> None:
        for e in batch.events:
            line = format_event(e)
            if line is not None:
                self.lines.append(line)
                self._pending.append(line)

    def _match(self, line: str) -> bool:
        low = line.lower()
        return all(w in low for w in self.words)

    def flush(self) -> None:
        if self._pending:
            lines = [x for x in self._pending if self._match(x)] if self.words else list(self._pending)
            self._pending.clear()
            if lines:
                append_lines(self.query_one("#maillog", Log), lines,
                             "{n} more lines in this burst; the maillog file has them all")

    @guarded
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "log-filter":
            return
        self.words = event.value.lower().split()
        log = self.query_one("#maillog", Log)
        log.clear()
        self._pending.clear()
        log.write_lines([x for x in self.lines if self._match(x)])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "log-filter":
            event.stop()
            self.focus_main()

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape" and self.query_one("#log-filter", Input).has_focus:
            event.stop()
            self.focus_main()

    @guarded
    def action_filter(self) -> None:
        self.query_one("#log-filter", Input).focus()
