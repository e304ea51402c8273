"""The Log panel: the maillog as it is written, filterable.

The lines are those the lab's maillog writer just wrote to
`<state>/log/maillog` (`Lab.maillog_tail`), so the panel and the file agree
and no line is made twice.  The writer keeps the last `maillog.RECENT`
lines; the filter (every word must appear, case ignored) applies to them and
to what arrives.  A hidden panel does nothing: it catches up when shown.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Log

from ...lab.maillog import RECENT
from ..panel import Panel, PanelContext, append_lines, guarded



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

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self._seen = 0                     # maillog lines taken so far
        self.words: list[str] = []

    def compose_panel(self) -> ComposeResult:
        yield Input(placeholder="/ filter: words that must all appear (queue ID, host, deferred...)",
                    id="log-filter")
        yield Log(id="maillog", max_lines=RECENT)

    def focus_main(self) -> None:
        self.query_one("#maillog", Log).focus()

    def _match(self, line: str) -> bool:
        low = line.lower()
        return all(w in low for w in self.words)

    def flush(self) -> None:
        self._seen, new = self.lab.maillog_tail(self._seen)
        if new:
            lines = [x for x in new if self._match(x)] if self.words else new
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
        self._seen, lines = self.lab.maillog_tail()
        log.write_lines([x for x in lines if self._match(x)])

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
